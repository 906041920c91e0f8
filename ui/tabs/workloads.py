"""Workloads tab: the table, a submit form, and route / reroute."""

from __future__ import annotations

from typing import Any

import gradio as gr
from pydantic import ValidationError

from tools.broker.workloads import WorkloadView
from tools.errors import DomainError
from ui import console_actions as actions
from ui import console_views as views
from ui.console_runtime import ConsoleRuntime
from ui.demo import NewWorkload
from ui.tabs import Refresh

COLUMNS = [
    "id",
    "name",
    "org_id",
    "status",
    "gpus",
    "node_id",
    "zone",
    "starts (UTC)",
    "score",
    "kg CO2 (est.)",
    "reroutes",
    "submitted",
]
GPU_MODELS = ["H100", "A100", "L40S", "RTX 4090", "any"]


def _starts(w: WorkloadView) -> str:
    at = w.planned_start_at or w.started_at or w.routed_at
    return "" if at is None else f"{at:%Y-%m-%d %H:%M}"


def _timeline(rt: ConsoleRuntime) -> Any:
    return views.timeline_figure(actions.list_workloads(rt), rt.svc.clock.now())


def _rows(rt: ConsoleRuntime) -> Any:
    rows = [
        {
            "id": w.id,
            "name": w.name,
            "org_id": w.org_id,
            "status": w.status,
            "gpus": f"{w.gpu_count}x{w.gpu_model or 'any'}",
            "node_id": w.node_id or "",
            "zone": w.zone or "",
            "starts (UTC)": _starts(w),
            "score": None if w.score is None else round(w.score, 3),
            "kg CO2 (est.)": None if w.co2_kg_estimate is None else round(w.co2_kg_estimate, 2),
            "reroutes": w.reroute_count,
            "submitted": f"{w.submitted_at:%Y-%m-%d %H:%M}",
        }
        for w in actions.list_workloads(rt)
    ]
    return views.frame(rows, COLUMNS)


def build(rt: ConsoleRuntime) -> list[Refresh]:
    """Build the workloads tab."""
    table = gr.Dataframe(
        label="Workloads (newest first)", interactive=False, elem_id="workloads-table"
    )
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown("### Submit a workload")
            with gr.Row():
                name = gr.Textbox("Mistral fine-tune", label="Name", elem_id="wl-name")
                org = gr.Textbox("acme-ai", label="Organisation id")
            with gr.Row():
                gpus = gr.Number(
                    4, label="GPUs", precision=0, minimum=1, maximum=64, elem_id="wl-gpus"
                )
                model = gr.Dropdown(GPU_MODELS, value="any", label="GPU model")
                hours = gr.Number(8, label="Hours", minimum=0.25, maximum=336)
                within = gr.Number(
                    0, label="Finish within (h; 0 = start now)", minimum=0, maximum=744
                )
                movable = gr.Checkbox(
                    True, label="Can checkpoint (may move while running)", elem_id="wl-movable"
                )
            with gr.Row():
                submit = gr.Button("Submit and route", variant="primary", elem_id="wl-submit")
                queue = gr.Button("Submit only (pending)")
        with gr.Column(scale=2):
            gr.Markdown("### Route or reroute")
            wid = gr.Textbox(label="Workload id", placeholder="wl_…", elem_id="wl-id")
            route = gr.Button("Route / reroute", elem_id="wl-route")
    result = gr.Markdown(elem_id="wl-result")
    chart = gr.Plot(label="Timeline of planned starts", elem_id="wl-timeline")

    def do_submit(
        n: str, o: str, g: float, m: str, h: float, f: float, mv: bool, *, routed: bool
    ) -> tuple[str, Any]:
        try:
            spec = NewWorkload(
                name=n,
                org_id=o,
                gpu_count=int(g or 0),
                gpu_model=None if m == "any" else m,
                duration_hours=h,
                finish_within_hours=f or None,
                movable=bool(mv),
            )
            step = actions.submit(rt, spec, route=routed)
            message = step.summary
        except ValidationError as exc:
            message = "✗ " + "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
        except DomainError as exc:
            message = f"✗ {exc}"
        return message, _rows(rt)

    def do_route(workload_id: str) -> tuple[str, Any]:
        try:
            message = actions.route_or_reroute(rt, workload_id.strip()).summary
        except DomainError as exc:
            message = f"✗ {exc}"
        return message, _rows(rt)

    form = [name, org, gpus, model, hours, within, movable]
    submit.click(
        lambda *a: do_submit(*a, routed=True), form, [result, table], api_visibility="private"
    )
    queue.click(
        lambda *a: do_submit(*a, routed=False), form, [result, table], api_visibility="private"
    )
    route.click(do_route, [wid], [result, table], api_visibility="private")

    def pick(evt: gr.SelectData) -> str:
        return str(evt.row_value[0]) if evt.row_value else ""

    table.select(pick, None, wid, api_visibility="private")
    return [(lambda: _rows(rt), [], [table]), (lambda: _timeline(rt), [], [chart])]
