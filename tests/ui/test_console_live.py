"""The console keeps up with events: new alerts are selected and played, and every action
redraws the header at once instead of waiting for the timer."""

from __future__ import annotations

import asyncio

import gradio as gr
import pytest

from ui import console_actions as actions
from ui.tabs import alerts as alerts_tab

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _picked(update: dict) -> int | None:
    return update["value"]


def test_a_new_alert_is_selected_and_loaded_into_the_player(runtime):
    first = actions.trigger_curtailment(runtime, "FR")
    assert first.audio_alert_id is not None
    table, pick, _, _, player, seen = alerts_tab._render(runtime, None, None)
    # Opening the console selects the newest alert but plays nothing by itself.
    assert _picked(pick) == first.audio_alert_id == seen
    assert player == gr.update()
    assert list(table["revision"]) == [1] * len(table)

    second = actions.trigger_curtailment(runtime, "ES")
    assert second.audio_alert_id > first.audio_alert_id
    table, pick, _, _, player, seen = alerts_tab._render(runtime, first.audio_alert_id, seen)
    assert _picked(pick) == second.audio_alert_id == seen
    rate, samples = player
    assert rate > 0 and len(samples) > rate  # more than a second of speech
    assert list(table["id"])[0] == second.audio_alert_id  # newest first

    # Nothing new: the operator's own choice stays and the player is left alone.
    _, pick, _, _, player, seen = alerts_tab._render(runtime, first.audio_alert_id, seen)
    assert _picked(pick) == first.audio_alert_id and player == gr.update()


def test_every_action_result_redraws_the_header(runtime):
    from ui.app import ACTION_RESULTS, build_console

    async def build() -> gr.Blocks:  # inside a loop, as create_server builds it
        return build_console(runtime)

    config = asyncio.run(build()).get_config_file()
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    by_elem = {elem: cid for cid, elem in ids.items() if elem}
    header = by_elem["dashboard"]
    assert set(ACTION_RESULTS) <= set(by_elem), set(ACTION_RESULTS) - set(by_elem)
    for elem in ACTION_RESULTS:
        assert any(
            [by_elem[elem], "change"] in [list(t) for t in d["targets"]] and header in d["outputs"]
            for d in config["dependencies"]
        ), elem
