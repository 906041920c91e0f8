"""Nodes tab: the fleet with free GPUs and utilisation."""

from __future__ import annotations

from typing import Any

import gradio as gr
import matplotlib.pyplot as plt

from tools.broker.fleet import node_views
from ui import console_views as views
from ui.console_runtime import ConsoleRuntime
from ui.tabs import Refresh

COLUMNS = [
    "id",
    "name",
    "kind",
    "zone",
    "status",
    "gpus",
    "free",
    "utilisation",
    "price per GPU-hour",
    "owner_id",
]


def _render(rt: ConsoleRuntime) -> tuple[Any, Any]:
    nodes = rt.read(lambda s: node_views(session=s))
    rows = [
        {
            "id": n.id,
            "name": n.name,
            "kind": n.kind,
            "zone": n.zone,
            "status": n.status,
            "gpus": f"{n.gpu_count}x{n.gpu_model}",
            "free": n.free_gpus,
            "utilisation": f"{n.utilization:.0%}",
            "price per GPU-hour": views.money(n.price_per_gpu_hour_minor, n.currency),
            "owner_id": n.owner_id,
        }
        for n in nodes
    ]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(nodes) + 1))
    labels = [f"{n.id} ({n.zone})" for n in nodes]
    colours = ["#1a9850" if n.kind == "datacenter" else "#6a3d9a" for n in nodes]
    ax.barh(labels, [n.utilization * 100 for n in nodes], color=colours)
    ax.set_xlim(0, 100)
    ax.set_xlabel("utilisation % (green: datacenter, purple: gamer node)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return views.frame(rows, COLUMNS), fig


def build(rt: ConsoleRuntime) -> list[Refresh]:
    """Build the nodes tab."""
    table = gr.Dataframe(label="Fleet", interactive=False, elem_id="nodes-table")
    chart = gr.Plot(label="Utilisation", elem_id="nodes-chart")
    return [(lambda: _render(rt), [], [table, chart])]
