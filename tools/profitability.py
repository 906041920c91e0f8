"""Report profitability per workload, organisation or node, with carbon ROI.

The report is always computed from the ledger; with a Paid.ai key, `tools.paid` also sends one
signal per routing decision (without one, signals are labelled demo). Revenue is
the platform fee; costs are the Solana network fees of the workload's payout and receipt
transactions (5,000 lamports per signature, converted at the payout rate, rounded up); carbon
ROI is kg CO2 avoided per euro of fee.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.ledger import ChainSubmission, LedgerEntry, PayoutIntent
from store.models import CarbonReceipt, RoutingDecision, Transaction, Workload

GroupBy = Literal["workload", "org", "node"]
LAMPORTS_PER_SIGNATURE = 5_000


class ProfitLine(BaseModel):
    """Money and carbon of one workload, organisation or node."""

    key: str
    group_by: GroupBy
    workloads: int
    gross_minor: int
    fee_minor: int
    provider_share_minor: int
    chain_fee_lamports: int
    chain_cost_minor: int
    margin_minor: int
    co2_avoided_kg: float
    carbon_roi_kg_per_eur: float | None
    """kg CO2 avoided per euro of platform fee; None when the fee is zero."""
    mode: str = "demo: computed locally (no Paid.ai key)"


def _per_workload(session: Session) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    usages = session.execute(
        select(Transaction.id, Transaction.workload_id, Transaction.amount_minor, Workload)
        .join(Workload, Workload.id == Transaction.workload_id)
        .where(Transaction.kind == "usage")
    ).all()
    for txn_id, wid, gross, w in usages:
        rows[wid] = {"txn": txn_id, "gross": int(gross), "org": w.org_id, "node": w.node_id}
    by_txn = {str(r["txn"]): r for r in rows.values()}
    for txn_id, account, amount in session.execute(
        select(LedgerEntry.transaction_id, LedgerEntry.account_id, LedgerEntry.amount_minor).where(
            LedgerEntry.side == "credit", LedgerEntry.transaction_id.in_(list(by_txn))
        )
    ):
        r = by_txn[txn_id]
        key = "fee" if account == "platform_revenue" else "share"
        r[key] = int(r.get(key, 0)) + int(amount)  # type: ignore[call-overload]
    refs: dict[str, str] = {}
    for pid, wid in session.execute(select(PayoutIntent.id, PayoutIntent.workload_id)):
        refs[pid] = wid
    for rid, wid, avoided in session.execute(
        select(CarbonReceipt.id, CarbonReceipt.workload_id, CarbonReceipt.co2_avoided_kg)
    ):
        refs[rid] = wid
        if wid in rows:
            rows[wid]["co2_avoided"] = avoided or 0.0
    for ref_id in session.scalars(
        select(ChainSubmission.ref_id).where(ChainSubmission.status.in_(("finalized", "failed")))
    ):
        wid = refs.get(ref_id)
        if wid in rows:
            rows[wid]["sigs"] = int(rows[wid].get("sigs", 0)) + 1  # type: ignore[call-overload]
    return rows


def profitability_report(
    *, session: Session, group_by: GroupBy, lamports_per_minor: int
) -> list[ProfitLine]:
    """Return one line per workload, organisation or node, biggest fee first."""
    if group_by not in ("workload", "org", "node"):
        raise ValueError(f"group_by {group_by!r}: use 'workload', 'org' or 'node'")
    groups: dict[str, list[dict[str, object]]] = defaultdict(list)
    for wid, r in _per_workload(session).items():
        key = wid if group_by == "workload" else str(r["org"] if group_by == "org" else r["node"])
        groups[key].append(r)
    lines = []
    for key, rs in groups.items():
        gross = sum(int(r["gross"]) for r in rs)  # type: ignore[call-overload]
        fee = sum(int(r.get("fee", 0)) for r in rs)  # type: ignore[call-overload]
        share = sum(int(r.get("share", 0)) for r in rs)  # type: ignore[call-overload]
        lamports = LAMPORTS_PER_SIGNATURE * sum(int(r.get("sigs", 0)) for r in rs)  # type: ignore[call-overload]
        cost = -(-lamports // lamports_per_minor)
        avoided = sum(float(r.get("co2_avoided", 0.0)) for r in rs)  # type: ignore[arg-type]
        lines.append(
            ProfitLine(
                key=key,
                group_by=group_by,
                workloads=len(rs),
                gross_minor=gross,
                fee_minor=fee,
                provider_share_minor=share,
                chain_fee_lamports=lamports,
                chain_cost_minor=cost,
                margin_minor=fee - cost,
                co2_avoided_kg=round(avoided, 6),
                carbon_roi_kg_per_eur=round(avoided / (fee / 100), 6) if fee else None,
            )
        )
    return sorted(lines, key=lambda line: (-line.fee_minor, line.key))


class PaidSignal(BaseModel):
    """A Paid.ai-shaped usage signal for one routing decision (cost, revenue, margin, carbon)."""

    event_name: str = "routing_decision"
    idempotency_key: str
    """The routing decision id: re-sending never double counts."""
    customer_id: str
    workload_id: str
    node_id: str | None
    revenue_minor: int
    cost_minor: int
    margin_minor: int
    co2_avoided_kg: float
    mode: str = "demo: computed locally (no Paid.ai key)"


def routing_signals(*, session: Session, lamports_per_minor: int) -> list[PaidSignal]:
    """Return one signal per placing decision of a billed workload (the decision that earned).

    Revenue is the platform fee; cost is the chain fees of its payout and receipt. Earlier
    decisions that a reroute superseded earn nothing and are not signalled.
    """
    lines = {
        line.key: line
        for line in profitability_report(
            session=session, group_by="workload", lamports_per_minor=lamports_per_minor
        )
    }
    signals = []
    for wid, line in sorted(lines.items()):
        decision = session.scalars(
            select(RoutingDecision)
            .where(
                RoutingDecision.workload_id == wid,
                RoutingDecision.outcome.in_(("routed", "rerouted")),
            )
            .order_by(RoutingDecision.decided_at.desc(), RoutingDecision.id.desc())
            .limit(1)
        ).one_or_none()
        w = session.get(Workload, wid)
        if decision is None or w is None:
            continue
        signals.append(
            PaidSignal(
                idempotency_key=decision.id,
                customer_id=w.org_id,
                workload_id=wid,
                node_id=decision.node_id,
                revenue_minor=line.fee_minor,
                cost_minor=line.chain_cost_minor,
                margin_minor=line.margin_minor,
                co2_avoided_kg=line.co2_avoided_kg,
            )
        )
    return signals
