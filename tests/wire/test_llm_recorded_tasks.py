"""Replay a real local model's recorded answers to the operator tasks through `ChatOpenAI`.

The cassettes in `tests/fixtures/llm/tasks/` were recorded with `python -m evals agents
--base-url … --model … --record tests/fixtures/llm/tasks` against a real instruct model served by
llama.cpp. Each replay runs the task through the real graphs and the real `ChatOpenAI` client (the
OpenAI SDK over `httpx2.MockTransport`), so what the graphs do with a real model's tool calls,
prose and malformed arguments is checked on every `make test`, with no model and no socket.
"""

from pathlib import Path

import pytest
from pydantic import SecretStr

from agents.models import ModelEndpoint, make_chat_model
from evals.recording import Replayer, load_cassette, translate_ids
from evals.run import run_trial
from evals.tasks import load_suite

CASSETTES = sorted(
    (Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "tasks").glob("*.json")
)
TASKS = {t.id: t for t in load_suite("operator")}


def test_cassettes_exist_and_name_known_tasks():
    assert len(CASSETTES) >= 8
    for path in CASSETTES:
        data = load_cassette(path)
        assert data["task_id"] in TASKS, path.name
        assert data["exchanges"], f"{path.name} recorded no model exchange"


@pytest.mark.parametrize("path", CASSETTES, ids=[p.stem for p in CASSETTES])
def test_recorded_model_replays_through_the_graphs(path):
    cassette = load_cassette(path)
    task = TASKS[cassette["task_id"]]
    replay = Replayer(cassette)
    endpoint = ModelEndpoint(
        base_url="http://127.0.0.1:8091/v1",
        api_key=SecretStr("recorded"),
        model=cassette["model"],
        max_retries=0,
    )

    def factory(clock=None, org_id=None):
        return make_chat_model(endpoint, verify=False, http_client=replay.client())

    result = run_trial(task, factory, trial=0)

    # Whatever the real model said, the graphs neither crash nor write without consent.
    assert result["error"] is None and result["infra_error"] is None, result
    replay.assert_used()
    approved = len(result["approvals_asked"]) if task.approval == "approve" else 0
    assert result["workloads_written"] <= approved, result
    # The graphs' handling of these exact responses is unchanged since recording.
    assert result["reward"] == pytest.approx(cassette["reward"]), result["components"]


def test_store_ids_drawn_at_replay_stand_in_for_the_recorded_ones():
    conversation = '{"recommendation_id": "rec_0123456789ab"} ... {"id": "rec_ffffffffffff"}'
    recorded = '{"recommendation_id": "rec_3a96854172cb", "name": "wl_eaed8c24fcc7"}'
    # The newest recommendation of the conversation; no workload exists yet, so none is invented.
    assert translate_ids(recorded, conversation) == (
        '{"recommendation_id": "rec_ffffffffffff", "name": "wl_eaed8c24fcc7"}'
    )
    # An id the conversation holds is kept, and text with no id is unchanged.
    assert translate_ids('"rec_0123456789ab"', conversation) == '"rec_0123456789ab"'
    assert translate_ids("rec_1234567890", conversation) == "rec_1234567890"
