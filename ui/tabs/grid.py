"""Grid tab: zones on an offline map by carbon intensity, time series, curtailment events."""

from __future__ import annotations

from typing import Any

import gradio as gr

from tools.grid import ZONE_CODES
from ui import console_actions as actions
from ui import console_views as views
from ui import dashboard as analytics
from ui import zone_map
from ui.console_runtime import ConsoleRuntime
from ui.tabs import Refresh

DEFAULT_ZONES = ["FR", "DE", "ES", "US-TEX-ERCO"]
EVENT_COLUMNS = ["zone", "start", "end", "hours", "source", "peak renewable %"]


def _events(rt: ConsoleRuntime) -> list[dict[str, Any]]:
    now = rt.svc.clock.now()
    rows = rt.read(lambda s: analytics.curtailment_events(session=s, now=now))
    return [
        {
            "zone": e.zone,
            "start": f"{e.start:%Y-%m-%d %H:%M}",
            "end": f"{e.end:%H:%M}",
            "hours": e.hours,
            "source": e.source,
            "peak renewable %": e.peak_renewable_pct,
        }
        for e in rows
    ]


def build(rt: ConsoleRuntime) -> list[Refresh]:
    """Build the grid tab."""
    zone_map.warm_in_background()
    with gr.Row():
        refresh = gr.Button("Refresh grid", variant="primary", elem_id="grid-refresh", scale=1)
        status = gr.Markdown("", elem_id="grid-status")
    map_html = gr.HTML(elem_id="grid-map")
    with gr.Row():
        zones = gr.Dropdown(
            list(ZONE_CODES), value=DEFAULT_ZONES, multiselect=True, label="Zones", scale=3
        )
        hours = gr.Slider(6, 168, value=48, step=6, label="Hours back", scale=2)
    chart = gr.Plot(label="Carbon intensity and price", elem_id="grid-chart")
    table = gr.Dataframe(label="Zones now", interactive=False, elem_id="grid-table")
    events = gr.Dataframe(
        label="Curtailment events (last 24 h and upcoming)",
        interactive=False,
        elem_id="grid-events",
    )

    def render(selected: list[str], back: float) -> tuple[Any, ...]:
        now = rt.svc.clock.now()
        points = rt.read(lambda s: analytics.zone_snapshot(session=s, grid=rt.svc.grid(), now=now))
        chosen = list(selected or DEFAULT_ZONES)
        series = rt.read(
            lambda s: analytics.zone_series(
                session=s,
                grid=rt.svc.grid(),
                zones=chosen,
                now=now,
                hours_back=int(back),
                hours_ahead=1,
            )
        )
        return (
            zone_map.zone_map_svg(points),
            views.series_figure(series, chosen),
            views.zone_table(points),
            views.frame(_events(rt), EVENT_COLUMNS),
        )

    outputs = [map_html, chart, table, events]

    def do_refresh(selected: list[str], back: float) -> tuple[Any, ...]:
        step = actions.refresh_grid(rt)
        return (step.summary, *render(selected, back))

    refresh.click(do_refresh, [zones, hours], [status, *outputs], api_visibility="private")
    zones.change(render, [zones, hours], outputs, api_visibility="private")
    hours.release(render, [zones, hours], outputs, api_visibility="private")
    return [(render, [zones, hours], outputs)]
