"""Recorded broker decisions: the stored row, its view, and writing one with every candidate."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.orm import Session

from store.models import RoutingDecision, Workload
from tools.broker.baseline import explain_avoided, workload_forecast
from tools.broker.placement import Candidate, Rejection
from tools.broker.scoring import ScoreWeights
from tools.broker.windows import StartPlan
from tools.broker.workloads import flush_or_conflict
from tools.grid import GridSource

DecisionKind = Literal["route", "reroute", "replan", "start"]
DecisionOutcome = Literal[
    "routed",
    "rerouted",
    "kept",
    "no_eligible_node",
    "limit_reached",
    "scheduled",
    "rescheduled",
    "started",
]


class DecisionView(BaseModel):
    """A recorded routing decision: where, when, and the forecast CO2 of waiting or not."""

    id: str
    workload_id: str
    kind: DecisionKind
    outcome: DecisionOutcome
    node_id: str | None
    zone: str | None
    previous_node_id: str | None
    score: float | None
    previous_score: float | None
    improvement: float | None
    reason: str
    candidates: list[dict[str, object]]
    rejected: list[dict[str, object]]
    weights: dict[str, float]
    grid_source: str
    decided_at: datetime
    reroute_count: int
    node: str | None = None
    """The chosen node (same as `node_id`)."""
    start_at: datetime | None = None
    """When the work starts on `node` (aware UTC): the decision time, or a planned later hour."""
    co2_kg: float | None = None
    """Forecast kg CO2 of the work in the chosen window."""
    co2_kg_if_started_now: float | None = None
    saving_pct: float | None = None
    why: str = ""
    """Why this node and this hour (the decision's reason)."""
    baseline_node: str | None = None
    """The workload's carbon-agnostic baseline (`tools.broker.baseline`); set on the decision a
    call just made."""
    co2_avoided_kg: float | None = None
    """Forecast kg CO2 avoided versus `baseline_node` at this decision (same energy); set on the
    decision a call just made. Settled figures live on the carbon receipt."""
    co2_avoided_note: str | None = None
    """The forecast in words (what a negative figure means)."""
    forecast_source: str | None = None
    """Who forecast the hours the plan weighed (None: it started now without a forecast)."""

    @classmethod
    def of(cls, d: RoutingDecision, *, zone: str | None, reroute_count: int) -> DecisionView:
        """Build the view of an ORM decision."""
        plan = d.plan or {}
        return cls(
            node=d.node_id,
            start_at=d.planned_start_at,
            co2_kg=plan.get("co2_kg"),
            co2_kg_if_started_now=plan.get("co2_kg_if_started_now"),
            saving_pct=plan.get("saving_pct"),
            forecast_source=plan.get("forecast_source"),
            why=d.reason,
            id=d.id,
            workload_id=d.workload_id,
            kind=d.kind,
            outcome=d.outcome,
            node_id=d.node_id,
            zone=zone,
            previous_node_id=d.previous_node_id,
            score=d.score,
            previous_score=d.previous_score,
            improvement=d.improvement,
            reason=d.reason,
            candidates=d.candidates,
            rejected=d.rejected,
            weights=d.weights,
            grid_source=d.grid_source,
            decided_at=d.decided_at,
            reroute_count=reroute_count,
        )


def record_decision(
    *,
    session: Session,
    workload: Workload,
    kind: str,
    outcome: str,
    node: Candidate | None,
    previous_node_id: str | None,
    previous_score: float | None,
    improvement: float | None,
    reason: str,
    candidates: list[Candidate],
    rejected: list[Rejection],
    weights: ScoreWeights,
    grid: GridSource,
    now: datetime,
    plan: StartPlan | None = None,
) -> DecisionView:
    """Store a decision with every candidate, rejection and the planned start; return its view."""
    decision = RoutingDecision(
        id=f"rd_{uuid.uuid4().hex[:12]}",
        workload_id=workload.id,
        kind=kind,
        outcome=outcome,
        node_id=node.node_id if node else None,
        previous_node_id=previous_node_id,
        score=node.score if node else None,
        previous_score=previous_score,
        improvement=improvement,
        weights=weights.model_dump(),
        candidates=[c.model_dump(mode="json") for c in candidates],
        rejected=[r.model_dump(mode="json") for r in rejected],
        reason=reason,
        grid_source=grid.name,
        decided_at=now,
        planned_start_at=plan.start_at if plan and node else None,
        plan=(
            plan.model_dump(
                mode="json",
                include={
                    "co2_kg",
                    "co2_kg_if_started_now",
                    "saving_pct",
                    "objective",
                    "forecast_source",
                },
            )
            if plan and node
            else None
        ),
    )
    session.add(decision)
    flush_or_conflict(session, workload)
    view = DecisionView.of(
        decision, zone=node.zone if node else None, reroute_count=workload.reroute_count
    )
    if node is None:
        return view
    base, avoided = workload_forecast(
        session=session,
        workload_id=workload.id,
        energy_kwh=workload.energy_kwh_estimate,
        co2_kg=workload.co2_kg_estimate,
    )
    return view.model_copy(
        update={
            "baseline_node": base.node_id if base else None,
            "co2_avoided_kg": None if avoided is None else round(avoided, 3),
            "co2_avoided_note": explain_avoided(
                avoided, base.node_id if base else None, forecast=True
            ),
        }
    )


def place_on(workload: Workload, best: Candidate, now: datetime) -> None:
    """Put the workload on `best`'s node with that placement's score and estimates."""
    workload.node_id = best.node_id
    workload.score = best.score
    workload.energy_kwh_estimate = best.energy_kwh
    workload.co2_kg_estimate = best.co2_kg
    workload.routed_at = now
    workload.updated_at = now
