"""Report profitability per workload, organisation or node, with carbon ROI.

The report is always computed from the ledger; with a Paid.ai key, `tools.integrations.paid` also
sends one signal per routing decision (without one, signals are labelled demo). Revenue is the
platform fee; costs are the Solana network fees of the workload's payout and receipt transactions
(5,000 lamports per signature, converted at the payout rate and rounded up once per workload, so
a group's figures are exactly the sums of its workloads' whatever the grouping); carbon ROI is kg
CO2 avoided per euro of fee. Amounts are integer minor units of each line's `currency`: workloads
billed in different currencies are never added together.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal, TypeGuard

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.ledger import ChainSubmission, LedgerEntry, PayoutIntent
from store.models import CarbonReceipt, RoutingDecision, Transaction, Workload

GroupBy = Literal["workload", "org", "node"]
LAMPORTS_PER_SIGNATURE = 5_000


def is_group_by(value: str) -> TypeGuard[GroupBy]:
    """Tell whether `value` is a grouping `profitability_report` accepts."""
    return value in ("workload", "org", "node")


class ProfitLine(BaseModel):
    """Money and carbon of one workload, organisation or node."""

    key: str
    group_by: GroupBy
    currency: str
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


@dataclass
class _WorkloadMoney:
    """What the ledger and the chain say about one billed workload."""

    txn: str
    gross: int
    currency: str
    org: str
    node: str | None
    fee: int = 0
    share: int = 0
    co2_avoided: float = 0.0
    sigs: int = 0


def _per_workload(session: Session) -> dict[str, _WorkloadMoney]:
    rows: dict[str, _WorkloadMoney] = {}
    usages = session.execute(
        select(Transaction.id, Transaction.amount_minor, Transaction.currency, Workload)
        .join(Workload, Workload.id == Transaction.workload_id)
        .where(Transaction.kind == "usage")
    ).all()
    for txn_id, gross, currency, w in usages:  # the join makes the transaction's workload w.id
        rows[w.id] = _WorkloadMoney(
            txn=txn_id, gross=int(gross), currency=currency, org=w.org_id, node=w.node_id
        )
    by_txn = {r.txn: r for r in rows.values()}
    for txn_id, account, amount in session.execute(
        select(LedgerEntry.transaction_id, LedgerEntry.account_id, LedgerEntry.amount_minor).where(
            LedgerEntry.side == "credit", LedgerEntry.transaction_id.in_(list(by_txn))
        )
    ):
        r = by_txn[txn_id]
        if account == "platform_revenue":
            r.fee += int(amount)
        else:
            r.share += int(amount)
    refs: dict[str, str] = {}
    for pid, wid in session.execute(select(PayoutIntent.id, PayoutIntent.workload_id)):
        refs[pid] = wid
    for rid, wid, avoided in session.execute(
        select(CarbonReceipt.id, CarbonReceipt.workload_id, CarbonReceipt.co2_avoided_kg)
    ):
        refs[rid] = wid
        if wid in rows:
            rows[wid].co2_avoided = avoided or 0.0
    for ref_id in session.scalars(
        select(ChainSubmission.ref_id).where(ChainSubmission.status.in_(("finalized", "failed")))
    ):
        ref_wid = refs.get(ref_id)
        if ref_wid in rows:
            rows[ref_wid].sigs += 1
    return rows


def chain_cost_minor(signatures: int, lamports_per_minor: int) -> int:
    """Return the network fees of `signatures` Solana transactions in minor units, rounded up."""
    lamports = LAMPORTS_PER_SIGNATURE * signatures
    return -(-lamports // lamports_per_minor)


def profitability_report(
    *, session: Session, group_by: GroupBy, lamports_per_minor: int
) -> list[ProfitLine]:
    """Return one line per workload, organisation or node, biggest fee first."""
    if group_by not in ("workload", "org", "node"):
        raise ValueError(f"group_by {group_by!r}: use 'workload', 'org' or 'node'")
    groups: dict[tuple[str, str], list[_WorkloadMoney]] = defaultdict(list)
    for wid, r in _per_workload(session).items():
        key = wid if group_by == "workload" else str(r.org if group_by == "org" else r.node)
        groups[key, r.currency].append(r)
    lines = []
    for (key, currency), rs in groups.items():
        gross = sum(r.gross for r in rs)
        fee = sum(r.fee for r in rs)
        share = sum(r.share for r in rs)
        lamports = LAMPORTS_PER_SIGNATURE * sum(r.sigs for r in rs)
        cost = sum(chain_cost_minor(r.sigs, lamports_per_minor) for r in rs)
        avoided = sum(float(r.co2_avoided) for r in rs)
        lines.append(
            ProfitLine(
                key=key,
                group_by=group_by,
                currency=currency,
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
