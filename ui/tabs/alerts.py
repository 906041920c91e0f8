"""Alerts tab: spoken curtailment and incident alerts (playable) and incident timelines.

Alerts are listed newest first and never change once spoken (a changed event is listed again as
its next revision). When a new alert arrives in an open console the player selects it and plays
it (Gradio `autoplay`; the browser may hold the sound until the page has been clicked once).
"""

from __future__ import annotations

import io
import wave
from typing import Any

import gradio as gr
import numpy as np

from tools.errors import NotFoundError
from tools.incidents import alerts
from ui import console_views as views
from ui.console_runtime import ConsoleRuntime
from ui.tabs import Refresh

ALERT_COLUMNS = ["id", "kind", "zone", "revision", "spoken (UTC)", "engine", "seconds", "text"]
INCIDENT_COLUMNS = ["id", "zone", "trigger", "state", "opened", "reroutes", "summary"]


def load_audio(rt: ConsoleRuntime, alert_id: int | None) -> tuple[int, np.ndarray] | None:
    """Return a stored alert's audio as (sample rate, samples) for gr.Audio, or None."""
    if not alert_id:
        return None
    try:
        path = rt.read(
            lambda s: alerts.audio_alert_file(
                session=s, data_dir=rt.svc.settings.data_dir, alert_id=int(alert_id)
            )
        )
    except NotFoundError:
        return None
    with wave.open(io.BytesIO(path.read_bytes()), "rb") as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return rate, samples


def timeline_markdown(t: alerts.IncidentTimeline) -> str:
    """Return one incident's timeline as markdown."""
    lines = [f"#### {t.id} · {t.trigger.replace('_', ' ')} in {t.zone} · **{t.state}**"]
    lines += [
        f"- `{x.at:%H:%M:%S}` {x.from_state or '—'} → **{x.to_state}**: {x.reason}"
        for x in t.transitions
    ]
    lines += [
        f"- reroute {r['workload_id']}: **{r['outcome']}** "
        f"{r['from_node_id'] or ''} → {r['to_node_id'] or ''}"
        for r in t.reroutes
    ]
    if t.summary:
        lines.append(f"\n> {t.summary}")
    return "\n".join(lines)


def _label(a: alerts.AudioAlertView) -> str:
    revision = f" (revision {a.revision})" if a.revision > 1 else ""
    return f"#{a.id} {a.kind} {a.zone}{revision} · {a.created_at:%m-%d %H:%M}"


def _render(rt: ConsoleRuntime, current: int | None, seen: int | None) -> tuple[Any, ...]:
    """Return the tables, the picker, the player and the newest alert id seen so far.

    The first render selects the newest alert without playing it; later renders that find a
    newer alert than `seen` select it and load it into the (autoplaying) player.
    """
    spoken = rt.read(lambda s: alerts.list_audio_alerts(session=s, limit=100))
    incidents = rt.read(lambda s: alerts.incident_timelines(session=s, limit=20))
    rows = [
        {
            "id": a.id,
            "kind": a.kind,
            "zone": a.zone,
            "revision": a.revision,
            "spoken (UTC)": f"{a.created_at:%m-%d %H:%M:%S}",
            "engine": a.engine,
            "seconds": round(a.duration_s, 1),
            "text": a.text,
        }
        for a in spoken
    ]
    inc = [
        {
            "id": t.id,
            "zone": t.zone,
            "trigger": t.trigger,
            "state": t.state,
            "opened": f"{t.opened_at:%m-%d %H:%M}",
            "reroutes": len(t.reroutes),
            "summary": t.summary or "",
        }
        for t in incidents
    ]
    choices = [(_label(a), a.id) for a in spoken]
    ids = [a.id for a in spoken]
    newest = max(ids, default=None)
    fired = newest is not None and seen is not None and newest > seen
    if fired or current not in ids:
        picked = newest
    else:
        picked = current
    player = load_audio(rt, newest) if fired else gr.update()
    timelines = "\n\n".join(timeline_markdown(t) for t in incidents[:5]) or "No incidents yet."
    return (
        views.frame(rows, ALERT_COLUMNS),
        gr.update(choices=choices, value=picked),
        views.frame(inc, INCIDENT_COLUMNS),
        timelines,
        player,
        newest if newest is not None else (seen or 0),
    )


def build(rt: ConsoleRuntime) -> list[Refresh]:
    """Build the alerts tab."""
    gr.Markdown(f"Audio alerts are spoken by **{rt.speech.name}** from fixed templates.")
    table = gr.Dataframe(
        label="Audio alerts (newest first)", interactive=False, elem_id="alerts-table"
    )
    with gr.Row():
        pick = gr.Dropdown(choices=[], label="Play alert", elem_id="alert-pick", scale=1)
        player = gr.Audio(
            label="Alert audio",
            interactive=False,
            autoplay=True,
            elem_id="alert-audio",
            scale=2,
        )
    incidents = gr.Dataframe(label="Incidents", interactive=False, elem_id="incidents-table")
    timelines = gr.Markdown(elem_id="incident-timelines")
    seen = gr.State(None)
    pick.input(lambda i: load_audio(rt, i), pick, player, api_visibility="private")
    return [
        (
            lambda current, last: _render(rt, current, last),
            [pick, seen],
            [table, pick, incidents, timelines, player, seen],
        )
    ]
