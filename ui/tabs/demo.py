"""Demo tab: five controls and the guided 7-step demo flow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from tools.errors import DomainError
from tools.grid import ZONE_CODES
from tools.incidents.ports import SpeechError
from ui import console_actions as actions
from ui import demo_flow
from ui.console_runtime import ConsoleRuntime
from ui.demo import NewWorkload
from ui.tabs import Refresh
from ui.tabs.alerts import load_audio

Outputs = tuple[str, Any, Any]


def _line(result: actions.StepResult) -> str:
    head = f"Step {result.step} · {result.title}" if result.step else result.title
    return f"**✓ {head}**: {result.summary}"


def _run(rt: ConsoleRuntime, action: Callable[[], actions.StepResult]) -> Outputs:
    try:
        result = action()
    except (DomainError, SpeechError) as exc:
        return f"**✗ failed:** {exc}", None, gr.update()
    audio = load_audio(rt, result.audio_alert_id) if result.audio_alert_id else gr.update()
    return _line(result), result.model_dump(mode="json")["details"], audio


def build(rt: ConsoleRuntime) -> list[Refresh]:
    """Build the demo tab."""
    gr.Markdown("### Guided demo flow")
    gr.Markdown("\n".join(f"{i}. {t}" for i, t in enumerate(demo_flow.DEMO_STEPS, 1)))
    step = gr.State(0)
    with gr.Row():
        next_btn = gr.Button("Run next step", variant="primary", elem_id="demo-next")
        all_btn = gr.Button("Run the whole demo", elem_id="demo-all")
        reset = gr.Button("Restart flow", elem_id="demo-reset")
    log = gr.Markdown("Press **Run next step** to start.", elem_id="demo-log")
    gr.Markdown("### Controls")
    with gr.Row():
        cycle = gr.Button("Grid cycle", elem_id="ctl-grid")
        create = gr.Button("Create workload", elem_id="ctl-create")
        reroute = gr.Button("Trigger reroute", elem_id="ctl-reroute")
        zone = gr.Dropdown(
            list(ZONE_CODES), value="FR", label="Curtailment zone", scale=0, min_width=140
        )
        curtail = gr.Button("Trigger curtailment", elem_id="ctl-curtail")
        complete = gr.Button("Complete workloads", elem_id="ctl-complete")
    status = gr.Markdown(elem_id="demo-status")
    with gr.Row():
        audio = gr.Audio(
            label="Latest audio alert", interactive=False, autoplay=True, elem_id="demo-audio"
        )
        details = gr.JSON(label="Details", elem_id="demo-details", open=False)

    def run_next(done: int, text: str) -> tuple[int, str, Any, Any]:
        if done >= len(demo_flow.DEMO_STEPS):
            finished = "The flow is complete; press **Restart flow** to run it again."
            return done, f"{text}\n\n{finished}", None, gr.update()
        line, payload, sound = _run(rt, lambda: demo_flow.run_step(rt, done + 1))
        ok = line.startswith("**✓")
        body = f"{text}\n\n{line}" if done else line
        return done + (1 if ok else 0), body, payload, sound

    def run_all(done: int, text: str) -> Iterator[tuple[int, str, Any, Any]]:
        while done < len(demo_flow.DEMO_STEPS):
            new, text, payload, sound = run_next(done, text)
            yield new, text, payload, sound
            if new == done:
                return
            done = new

    flow_out = [step, log, details, audio]
    next_btn.click(run_next, [step, log], flow_out, api_name="demo_next")
    all_btn.click(run_all, [step, log], flow_out, api_visibility="private")
    reset.click(
        lambda: (0, "Flow restarted: press **Run next step**."),
        None,
        [step, log],
        api_visibility="private",
    )
    controls: list[tuple[gr.Button, Callable[..., actions.StepResult], list[Any]]] = [
        (cycle, lambda: actions.refresh_grid(rt), []),
        (create, lambda: actions.create_workload(rt, NewWorkload()), []),
        (reroute, lambda: actions.trigger_reroute(rt), []),
        (curtail, lambda z: actions.trigger_curtailment(rt, z), [zone]),
        (complete, lambda: actions.complete_workloads(rt), []),
    ]
    for button, fn, inputs in controls:
        button.click(
            lambda *a, f=fn: _run(rt, lambda: f(*a)),
            inputs,
            [status, details, audio],
            api_visibility="private",
        )
    return []
