"""Place workloads on nodes and move them, with an audit trail of every decision.

Rules (exact and tested):
* Route: the best eligible node from `tools.broker.placement` wins; every decision stores each
  candidate's score breakdown and each rejected node's reason.
* Reroute: moves only when the best alternative is at least 25 % better than the current
  placement's score now, i.e. `current - best >= 0.25 * |current|`; at most 5 reroutes per
  workload. If the current node went offline the move is a failover and needs no improvement.
  Refused reroutes are recorded too.

Functions flush and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial
from typing import Literal

import numpy as np
from pydantic import BaseModel
from sqlalchemy.orm import Session

from store import repo
from store.models import RoutingDecision, Workload
from tools.broker.placement import Candidate, Recommendation, Rejection, evaluate_nodes, recommend
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.workloads import (
    JobSpec,
    WorkloadView,
    check_transition,
    flush_or_conflict,
    load_workload,
    set_workload_status,
    submit_workload,
)
from tools.errors import RerouteRefusedError
from tools.grid import GridSource

__all__ = [
    "Candidate",
    "DecisionView",
    "JobSpec",
    "Recommendation",
    "Rejection",
    "WorkloadView",
    "recommend",
    "reroute_workload",
    "route_workload",
    "set_workload_status",
    "submit_workload",
]

REROUTE_THRESHOLD = 0.25
MAX_REROUTES = 5
_EPS = 1e-9


class DecisionView(BaseModel):
    """A recorded routing decision."""

    id: str
    workload_id: str
    kind: Literal["route", "reroute"]
    outcome: Literal["routed", "rerouted", "kept", "no_eligible_node", "limit_reached"]
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

    @classmethod
    def of(cls, d: RoutingDecision, *, zone: str | None, reroute_count: int) -> DecisionView:
        """Build the view of an ORM decision."""
        return cls(
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


def _record(
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
) -> DecisionView:
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
    )
    session.add(decision)
    flush_or_conflict(session, workload)
    return DecisionView.of(
        decision, zone=node.zone if node else None, reroute_count=workload.reroute_count
    )


def _place(workload: Workload, best: Candidate, now: datetime) -> None:
    workload.node_id = best.node_id
    workload.score = best.score
    workload.energy_kwh_estimate = best.energy_kwh
    workload.co2_kg_estimate = best.co2_kg
    workload.routed_at = now
    workload.updated_at = now


def route_workload(
    *,
    session: Session,
    grid: GridSource,
    workload_id: str,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> DecisionView:
    """Place a pending workload on the lowest-scoring eligible node and record the decision.

    With no eligible node the workload stays pending and the decision says why, node by node.
    """
    workload = load_workload(session=session, workload_id=workload_id, for_update=True)
    check_transition(workload.status, "routed", workload_id)
    spec = WorkloadView.of(workload).spec()
    candidates, rejected = evaluate_nodes(
        session=session, grid=grid, spec=spec, now=now, weights=weights, lock=True
    )
    record = partial(
        _record,
        session=session,
        workload=workload,
        kind="route",
        previous_node_id=None,
        previous_score=None,
        improvement=None,
        candidates=candidates,
        rejected=rejected,
        weights=weights,
        grid=grid,
        now=now,
    )
    if not candidates:
        return record(
            outcome="no_eligible_node",
            node=None,
            reason=f"no eligible node among {len(rejected)}; see each rejection",
        )
    best = next(
        (
            c
            for c in candidates
            if repo.take_gpus(session=session, node_id=c.node_id, gpus=workload.gpu_count)
        ),
        None,
    )
    if best is None:
        return record(
            outcome="no_eligible_node",
            node=None,
            reason=(
                f"all {len(candidates)} eligible nodes were filled by concurrent placements; "
                "route again"
            ),
        )
    workload.status = "routed"
    _place(workload, best, now)
    return record(
        outcome="routed",
        node=best,
        reason=f"lowest score {best.score:.4f} of {len(candidates)} eligible nodes",
    )


def _remaining_hours(workload: Workload, now: datetime) -> float:
    if workload.status != "running" or workload.started_at is None:
        return workload.duration_hours
    elapsed = (now - workload.started_at).total_seconds() / 3600.0
    return max(workload.duration_hours - elapsed, 1e-6)


def reroute_workload(
    *,
    session: Session,
    grid: GridSource,
    workload_id: str,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> DecisionView:
    """Move a routed or running workload if an alternative is >= 25 % better; record either way."""
    workload = load_workload(session=session, workload_id=workload_id, for_update=True)
    if workload.status not in ("routed", "running"):
        raise RerouteRefusedError(
            f"workload {workload_id!r} is {workload.status!r}; only routed or running work moves"
        )
    current_id = workload.node_id
    spec = (
        WorkloadView.of(workload)
        .spec()
        .model_copy(update={"duration_hours": _remaining_hours(workload, now)})
    )
    candidates, rejected = evaluate_nodes(
        session=session,
        grid=grid,
        spec=spec,
        now=now,
        weights=weights,
        exclude_workload_id=workload.id,
        lock=True,
    )
    current = next((c for c in candidates if c.node_id == current_id), None)
    others = [c for c in candidates if c.node_id != current_id]
    best = others[0] if others else None
    current_score = current.score if current else workload.score
    record = partial(
        _record,
        session=session,
        workload=workload,
        kind="reroute",
        previous_node_id=current_id,
        previous_score=current_score,
        candidates=candidates,
        rejected=rejected,
        weights=weights,
        grid=grid,
        now=now,
    )
    if workload.reroute_count >= MAX_REROUTES:
        return record(
            outcome="limit_reached",
            node=current,
            improvement=None,
            reason=f"already rerouted {workload.reroute_count} times; the limit is {MAX_REROUTES}",
        )
    if best is None:
        return record(
            outcome="kept",
            node=current,
            improvement=None,
            reason="no other eligible node",
        )
    failover = current is None
    if not failover:
        assert current_score is not None
        best_gain = _improvement(current_score, best.score)
        if best_gain < REROUTE_THRESHOLD - _EPS:
            return record(
                outcome="kept",
                node=current,
                improvement=float(best_gain),
                reason=(
                    f"best alternative {best.node_id} scores {best.score:.3f} vs current "
                    f"{current_score:.3f}: "
                    + (f"{best_gain:.1%} better" if best_gain >= 0 else f"{-best_gain:.1%} worse")
                    + f", below the {REROUTE_THRESHOLD:.0%} threshold"
                ),
            )
    chosen: Candidate | None = None
    for alternative in others:
        if (
            current_score is not None
            and not failover
            and _improvement(current_score, alternative.score) < REROUTE_THRESHOLD - _EPS
        ):
            break
        if repo.take_gpus(session=session, node_id=alternative.node_id, gpus=workload.gpu_count):
            chosen = alternative
            break
    if chosen is None:
        return record(
            outcome="kept",
            node=current,
            improvement=None,
            reason="every better node was filled by concurrent placements; try again",
        )
    improvement = (
        None if failover or current_score is None else _improvement(current_score, chosen.score)
    )
    current_reason = next((r.reason for r in rejected if r.node_id == current_id), "not eligible")
    if current_id is not None:
        repo.release_gpus(session=session, node_id=current_id, gpus=workload.gpu_count)
    workload.reroute_count += 1
    _place(workload, chosen, now)
    reason = (
        f"failover: current node {current_id} {current_reason}"
        if failover
        else f"{improvement:.1%} better than current {current_score:.4f}"
    )
    return record(
        outcome="rerouted",
        node=chosen,
        improvement=None if improvement is None else float(improvement),
        reason=reason,
    )


def _improvement(current: float, alternative: float) -> float:
    """Return the relative gain of `alternative` over `current` (lower scores are better)."""
    gain = current - alternative
    if current == 0:
        return float(np.inf) if gain > 0 else 0.0
    return gain / abs(current)
