"""Profitability tab: fee, chain costs, margin and carbon ROI per workload, organisation or node."""

from __future__ import annotations

from typing import Any

import gradio as gr

from tools.broker.baseline import NEGATIVE_NOTE
from tools.money.profitability import GroupBy
from ui import console_actions as actions
from ui import console_views as views
from ui.console_runtime import ConsoleRuntime
from ui.tabs import Refresh

COLUMNS = [
    "key",
    "workloads",
    "gross",
    "platform fee",
    "provider share",
    "chain cost",
    "margin",
    "kg CO2 avoided",
    "kg CO2 per € of fee",
    "mode",
]


def _render(rt: ConsoleRuntime, group_by: GroupBy) -> tuple[str, Any]:
    lines = actions.profitability(rt, group_by)  # the radio offers only GroupBy values
    rows = [
        {
            "key": x.key,
            "workloads": x.workloads,
            "gross": views.money(x.gross_minor, x.currency),
            "platform fee": views.money(x.fee_minor, x.currency),
            "provider share": views.money(x.provider_share_minor, x.currency),
            "chain cost": views.money(x.chain_cost_minor, x.currency),
            "margin": views.money(x.margin_minor, x.currency),
            "kg CO2 avoided": round(x.co2_avoided_kg, 3),
            "kg CO2 per € of fee": None
            if x.carbon_roi_kg_per_eur is None
            else round(x.carbon_roi_kg_per_eur, 3),
            "mode": x.mode,
        }
        for x in lines
    ]
    if not lines:
        empty = "No settled work yet: complete workloads (Demo tab, step 6) to bill them."
        return empty, views.frame([], COLUMNS)
    fee = sum(x.fee_minor for x in lines)
    avoided = sum(x.co2_avoided_kg for x in lines)
    roi = f"{avoided / (fee / 100):.3f} kg CO2 per € of fee" if fee else "n/a"
    money = [x.model_dump() for x in lines]
    head = (
        f"**Total** fees {actions.money_total(money, 'fee_minor')} · margin "
        f"{actions.money_total(money, 'margin_minor')} · {avoided:,.3f} kg CO2 avoided · "
        f"carbon ROI {roi} (sums of the rows; the same whatever the grouping)\n\n"
        f"{actions.AVOIDED_NOTE}"
        + (NEGATIVE_NOTE if any(x.co2_avoided_kg < 0 for x in lines) else "")
    )
    return head, views.frame(rows, COLUMNS)


def build(rt: ConsoleRuntime) -> list[Refresh]:
    """Build the profitability tab."""
    group = gr.Radio(
        ["workload", "org", "node"], value="workload", label="Group by", elem_id="profit-group"
    )
    head = gr.Markdown(elem_id="profit-head")
    table = gr.Dataframe(label="Profitability", interactive=False, elem_id="profit-table")
    group.change(lambda g: _render(rt, g), group, [head, table], api_visibility="private")
    return [(lambda g: _render(rt, g), [group], [head, table])]
