"""Payouts tab: gamer payouts waiting for a person, with Approve / Reject.

A payout above the approval threshold waits in its billing run; Approve or Reject resumes that
run exactly as `POST /api/v1/payouts/{id}/approve|reject` and `tgtg payouts --approve|--reject` do,
and the logged-in operator is stored as the one who decided.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from tools.errors import DomainError
from tools.money.payouts import PayoutView, list_payouts
from ui import console_views as views
from ui.console_runtime import ConsoleRuntime
from ui.tabs import Refresh

AWAITING = "awaiting_approval"
COLUMNS = ["payout", "workload", "gamer", "amount", "lamports", "wallet"]


def _pending(rt: ConsoleRuntime) -> list[PayoutView]:
    return rt.read(lambda s: list_payouts(session=s, status=AWAITING))


def _render(rt: ConsoleRuntime, chosen: str | None = None) -> tuple[Any, Any, Any]:
    pending = _pending(rt)
    rows = [
        {
            "payout": p.id,
            "workload": p.workload_id,
            "gamer": p.org_id,
            "amount": views.money(p.amount_minor, p.currency),
            "lamports": p.lamports,
            "wallet": p.wallet_address,
        }
        for p in pending
    ]
    ids = [p.id for p in pending]
    head = (
        f"**{len(ids)} payout(s) waiting for approval.** Nothing is paid until you approve."
        if ids
        else "No payout is waiting for approval."
    )
    pick = gr.update(choices=ids, value=chosen if chosen in ids else (ids[0] if ids else None))
    return head, views.frame(rows, COLUMNS), pick


def build(rt: ConsoleRuntime) -> list[Refresh]:
    """Build the payouts tab."""
    head = gr.Markdown(elem_id="payouts-head")
    table = gr.Dataframe(label="Waiting for approval", interactive=False, elem_id="payouts-table")
    with gr.Row():
        # Any id may be typed (API clients do); the decision refuses one that is not waiting.
        chosen = gr.Dropdown(
            label="Payout", choices=[], allow_custom_value=True, scale=4, elem_id="payout-id"
        )
        approve = gr.Button("Approve", variant="primary", scale=1, elem_id="payout-approve")
        reject = gr.Button("Reject", variant="stop", scale=1, elem_id="payout-reject")
    outcome = gr.Markdown(elem_id="payout-outcome")

    def decider(approved: bool) -> Any:
        def decide(payout_id: str | None, request: gr.Request) -> tuple[Any, ...]:
            if not payout_id:
                raise gr.Error("no payout chosen: pick one waiting for approval")
            by = getattr(request, "username", None) or "console"
            try:
                view = rt.decide_payout(payout_id, approve=approved, by=by)
            except DomainError as exc:
                raise gr.Error(str(exc)) from None
            done = (
                f"Payout `{view['id']}` {'approved' if approved else 'rejected'} by {by}: "
                f"status **{view['status']}**"
            )
            return done, *_render(rt)

        return decide

    outputs = [outcome, head, table, chosen]
    approve.click(decider(True), [chosen], outputs, api_name="payout_approve")
    reject.click(decider(False), [chosen], outputs, api_name="payout_reject")
    return [(lambda c: _render(rt, c), [chosen], [head, table, chosen])]
