"""Place workloads on nodes: eligibility, composite ranking, route and reroute, with an audit trail.

Rules (exact and tested):
* Eligible: node online, GPU model matches (if asked), zone allowed and not denied, enough free
  GPUs, can finish by the deadline, a carbon reading exists and is within the job's limit.
* Route: the lowest score wins (ties: lowest node id). Every decision stores each candidate's
  score breakdown and each rejected node's reason.
* Reroute: moves only when the best alternative is at least 25 % better than the current
  placement's score now, i.e. `current - best >= 0.25 * |current|`; at most 5 reroutes per
  workload. If the current node went offline the move is a failover and needs no improvement.
  Refused reroutes are recorded too.

Functions flush and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel
from sqlalchemy.orm import Session

from store import repo
from store.models import ComputeNode, RoutingDecision, Workload
from tools.errors import NoGridDataError, RerouteRefusedError
from tools.grid import GridReading, GridSource
from tools.scoring import DEFAULT_WEIGHTS, ScoreBreakdown, ScoreWeights, rank, score_arrays
from tools.workloads import (
    JobSpec,
    WorkloadView,
    check_transition,
    load_workload,
    set_workload_status,
    submit_workload,
)

__all__ = [
    "JobSpec",
    "WorkloadView",
    "recommend",
    "route_workload",
    "reroute_workload",
    "set_workload_status",
    "submit_workload",
]

REROUTE_THRESHOLD = 0.25
MAX_REROUTES = 5
_EPS = 1e-9


class Candidate(BaseModel):
    """An eligible node with its score breakdown and the job's estimated energy and CO2 there."""

    node_id: str
    zone: str
    gpu_model: str
    free_gpus: int
    price_per_gpu_hour_minor: int
    currency: str
    score: float
    breakdown: ScoreBreakdown
    energy_kwh: float
    co2_kg: float


class Rejection(BaseModel):
    """A node that could not take the job, and why."""

    node_id: str
    zone: str
    reason: str


class Recommendation(BaseModel):
    """The ranked placement options for a job, without any write."""

    at: datetime
    grid_source: str
    spec: JobSpec
    candidates: list[Candidate]
    rejected: list[Rejection]
    best: Candidate | None
    baseline: Candidate | None
    """The carbon-agnostic choice: the cheapest eligible node per GPU-hour."""
    co2_saved_kg: float | None
    """CO2 of the baseline minus CO2 of the best choice."""


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
            kind=d.kind,  # type: ignore[arg-type]  # checked by a DB constraint
            outcome=d.outcome,  # type: ignore[arg-type]
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


def _readings(grid: GridSource, zones: set[str], at: datetime) -> dict[str, GridReading | str]:
    out: dict[str, GridReading | str] = {}
    for zone in sorted(zones):
        try:
            out[zone] = grid.reading(zone, at)
        except NoGridDataError as exc:
            out[zone] = str(exc)
    return out


def _rejection_reason(
    node: ComputeNode,
    spec: JobSpec,
    free: int,
    reading: GridReading | str,
    now: datetime,
) -> str | None:
    if node.status != "online":
        return f"node is {node.status}"
    if spec.gpu_model and node.gpu_model.upper() != spec.gpu_model:
        return f"GPU model {node.gpu_model} is not the requested {spec.gpu_model}"
    if spec.allowed_zones is not None and node.zone not in spec.allowed_zones:
        return f"zone {node.zone} is not among the allowed zones {spec.allowed_zones}"
    if spec.denied_zones and node.zone in spec.denied_zones:
        return f"zone {node.zone} is denied"
    if free < spec.gpu_count:
        return f"only {free} of the {spec.gpu_count} GPUs needed are free"
    if spec.deadline is not None:
        finish = now + timedelta(hours=spec.duration_hours)
        if finish > spec.deadline:
            return (
                f"cannot finish by the deadline {spec.deadline.isoformat()} "
                f"(earliest finish {finish.isoformat()})"
            )
    if isinstance(reading, str):
        return f"no grid reading: {reading}"
    if reading.carbon_intensity is None:
        return f"no carbon intensity reading for {node.zone} at {reading.ts.isoformat()}"
    if (
        spec.max_carbon_intensity is not None
        and reading.carbon_intensity > spec.max_carbon_intensity
    ):
        return (
            f"carbon intensity {reading.carbon_intensity:.0f} g/kWh is above the job's limit "
            f"{spec.max_carbon_intensity:.0f}"
        )
    return None


def _evaluate(
    *,
    session: Session,
    grid: GridSource,
    spec: JobSpec,
    now: datetime,
    weights: ScoreWeights,
    exclude_workload_id: str | None = None,
    lock: bool = False,
) -> tuple[list[Candidate], list[Rejection]]:
    nodes = repo.list_nodes(session=session, for_update=lock)
    allocated = repo.allocated_gpus_by_node(
        session=session, exclude_workload_id=exclude_workload_id
    )
    readings = _readings(grid, {n.zone for n in nodes}, now)
    eligible: list[tuple[ComputeNode, int, GridReading]] = []
    rejected: list[Rejection] = []
    for node in nodes:
        free = node.gpu_count - node.reserved_gpus - allocated.get(node.id, 0)
        reading = readings[node.zone]
        reason = _rejection_reason(node, spec, free, reading, now)
        if reason is not None:
            rejected.append(Rejection(node_id=node.id, zone=node.zone, reason=reason))
        else:
            assert isinstance(reading, GridReading)
            eligible.append((node, free, reading))
    if not eligible:
        return [], rejected
    ci = np.array([r.carbon_intensity for _, _, r in eligible], dtype=np.float64)
    price = np.array(
        [np.nan if r.price_eur_per_mwh is None else r.price_eur_per_mwh for _, _, r in eligible]
    )
    util = np.array(
        [(n.gpu_count - free) / n.gpu_count for n, free, _ in eligible], dtype=np.float64
    )
    scored = score_arrays(ci, price, util, weights)
    candidates: list[Candidate] = []
    for i in rank(scored.score):
        node, free, _reading = eligible[i]
        energy = spec.gpu_count * node.power_kw_per_gpu * spec.duration_hours
        candidates.append(
            Candidate(
                node_id=node.id,
                zone=node.zone,
                gpu_model=node.gpu_model,
                free_gpus=free,
                price_per_gpu_hour_minor=node.price_per_gpu_hour_minor,
                currency=node.currency,
                score=float(scored.score[i]),
                breakdown=scored.breakdown(int(i), ci, util),
                energy_kwh=energy,
                co2_kg=energy * float(ci[i]) / 1000.0,
            )
        )
    return candidates, rejected


def _baseline(candidates: list[Candidate]) -> Candidate | None:
    if not candidates:
        return None
    return min(candidates, key=lambda c: (c.price_per_gpu_hour_minor, c.node_id))


def recommend(
    *,
    session: Session,
    grid: GridSource,
    spec: JobSpec,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> Recommendation:
    """Rank every node for `spec` at `now` without writing anything."""
    candidates, rejected = _evaluate(
        session=session, grid=grid, spec=spec, now=now, weights=weights
    )
    best = candidates[0] if candidates else None
    base = _baseline(candidates)
    return Recommendation(
        at=now,
        grid_source=grid.name,
        spec=spec,
        candidates=candidates,
        rejected=rejected,
        best=best,
        baseline=base,
        co2_saved_kg=(base.co2_kg - best.co2_kg) if best and base else None,
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
    repo.add(session=session, obj=decision)
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
    candidates, rejected = _evaluate(
        session=session, grid=grid, spec=spec, now=now, weights=weights, lock=True
    )
    common = dict(
        session=session, workload=workload, kind="route", previous_node_id=None,
        previous_score=None, improvement=None, candidates=candidates, rejected=rejected,
        weights=weights, grid=grid, now=now,
    )  # fmt: skip
    if not candidates:
        return _record(
            outcome="no_eligible_node",
            node=None,
            reason=f"no eligible node among {len(rejected)}; see each rejection",
            **common,  # type: ignore[arg-type]
        )
    best = candidates[0]
    workload.status = "routed"
    _place(workload, best, now)
    return _record(
        outcome="routed",
        node=best,
        reason=f"lowest score {best.score:.4f} of {len(candidates)} eligible nodes",
        **common,  # type: ignore[arg-type]
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
    candidates, rejected = _evaluate(
        session=session, grid=grid, spec=spec, now=now, weights=weights,
        exclude_workload_id=workload.id, lock=True,
    )  # fmt: skip
    current = next((c for c in candidates if c.node_id == current_id), None)
    others = [c for c in candidates if c.node_id != current_id]
    best = others[0] if others else None
    current_score = current.score if current else workload.score
    common = dict(
        session=session, workload=workload, kind="reroute", previous_node_id=current_id,
        previous_score=current_score, candidates=candidates, rejected=rejected,
        weights=weights, grid=grid, now=now,
    )  # fmt: skip
    if workload.reroute_count >= MAX_REROUTES:
        return _record(
            outcome="limit_reached", node=current, improvement=None,
            reason=f"already rerouted {workload.reroute_count} times; the limit is {MAX_REROUTES}",
            **common,  # type: ignore[arg-type]
        )  # fmt: skip
    if best is None:
        return _record(
            outcome="kept", node=current, improvement=None,
            reason="no other eligible node", **common,  # type: ignore[arg-type]
        )  # fmt: skip
    failover = current is None
    improvement: float | None = None
    if not failover:
        assert current_score is not None
        gain = current_score - best.score
        improvement = (
            gain / abs(current_score) if current_score != 0 else (np.inf if gain > 0 else 0.0)
        )
        if gain <= 0 or improvement < REROUTE_THRESHOLD - _EPS:
            return _record(
                outcome="kept", node=current, improvement=float(improvement),
                reason=(
                    f"best alternative {best.node_id} scores {best.score:.4f} vs current "
                    f"{current_score:.4f}: {improvement:.1%} better, below the "
                    f"{REROUTE_THRESHOLD:.0%} threshold"
                ),
                **common,  # type: ignore[arg-type]
            )  # fmt: skip
    current_reason = next((r.reason for r in rejected if r.node_id == current_id), "not eligible")
    workload.reroute_count += 1
    _place(workload, best, now)
    reason = (
        f"failover: current node {current_id} {current_reason}"
        if failover
        else f"{improvement:.1%} better than current {current_score:.4f}"
    )
    return _record(
        outcome="rerouted", node=best,
        improvement=None if improvement is None else float(improvement),
        reason=reason, **common,  # type: ignore[arg-type]
    )  # fmt: skip
