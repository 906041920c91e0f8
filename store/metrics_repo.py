"""Aggregate counts for the Prometheus metrics, read from the store at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.incident_models import INCIDENT_STATES, Incident
from store.ledger_models import PAYOUT_STATUSES, PayoutIntent
from store.models import (
    DECISION_KINDS,
    DECISION_OUTCOMES,
    WORKLOAD_STATUSES,
    CarbonReceipt,
    RoutingDecision,
    Workload,
)


@dataclass(frozen=True)
class StoreMetrics:
    """What the store holds, counted: every known label value is present (zero when none)."""

    workloads_by_status: dict[str, int]
    decisions_by_kind_outcome: dict[tuple[str, str], int]
    co2_avoided_kg: float
    """Sum of `co2_avoided_kg` over the carbon receipts (negative receipts included)."""
    receipts: int
    incidents_by_state: dict[str, int]
    payouts_by_status: dict[str, int]


def store_metrics(*, session: Session) -> StoreMetrics:
    """Return the store's counts for the metrics endpoint (a handful of GROUP BY queries)."""
    workloads = dict.fromkeys(WORKLOAD_STATUSES, 0)
    for status, n in session.execute(
        select(Workload.status, func.count()).group_by(Workload.status)
    ):
        workloads[status] = int(n)
    decisions = {(k, o): 0 for k in DECISION_KINDS for o in DECISION_OUTCOMES}
    for kind, outcome, n in session.execute(
        select(RoutingDecision.kind, RoutingDecision.outcome, func.count()).group_by(
            RoutingDecision.kind, RoutingDecision.outcome
        )
    ):
        decisions[(kind, outcome)] = int(n)
    avoided, receipts = session.execute(
        select(
            func.coalesce(func.sum(CarbonReceipt.co2_avoided_kg), 0.0), func.count()
        ).select_from(CarbonReceipt)
    ).one()
    incidents = dict.fromkeys(INCIDENT_STATES, 0)
    for state, n in session.execute(select(Incident.state, func.count()).group_by(Incident.state)):
        incidents[state] = int(n)
    payouts = dict.fromkeys(PAYOUT_STATUSES, 0)
    for status, n in session.execute(
        select(PayoutIntent.status, func.count()).group_by(PayoutIntent.status)
    ):
        payouts[status] = int(n)
    return StoreMetrics(
        workloads_by_status=workloads,
        decisions_by_kind_outcome=decisions,
        co2_avoided_kg=float(avoided or 0.0),
        receipts=int(receipts),
        incidents_by_state=incidents,
        payouts_by_status=payouts,
    )
