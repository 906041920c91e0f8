"""Rank nodes for a job without writing: eligibility rules, composite scores, the baseline.

Eligible: node online, GPU model matches (if asked), zone allowed and not denied, enough free
GPUs, can finish by the deadline, a carbon reading exists and is within the job's limit. The
lowest score wins (ties: lowest node id). The carbon-agnostic baseline is the cheapest eligible
node per GPU-hour; `tools.broker.baseline` defines CO2 avoided against it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from pydantic import BaseModel
from sqlalchemy.orm import Session

from store import repo
from store.models import ComputeNode
from tools.broker.baseline import cheapest, forecast_avoided_kg
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreBreakdown, ScoreWeights, rank, score_arrays
from tools.broker.workloads import JobSpec, normalise_gpu_model
from tools.errors import NoGridDataError
from tools.grid import ZONE_CODES, GridReading, GridSource

NO_READING = "no grid reading"
"""How a node's rejection starts when its zone has no reading at the time asked about."""


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
    """Forecast kg CO2 avoided (`tools.broker.baseline`): the best choice's energy at the
    baseline's intensity minus the best choice's CO2, both at the current readings."""


def _readings(grid: GridSource, zones: set[str], at: datetime) -> dict[str, GridReading | str]:
    out: dict[str, GridReading | str] = {}
    for zone in sorted(zones):
        try:
            out[zone] = grid.reading(zone, at)
        except NoGridDataError as exc:
            out[zone] = str(exc)
    return out


def static_rejection(node: ComputeNode, spec: JobSpec) -> str | None:
    """Return why `node` can never take `spec` as it stands (status, GPU model, zones), or None.

    The checks that need no room or grid reading: the first of `evaluate_nodes`'s.
    """
    if node.status != "online":
        return f"node is {node.status}"
    if spec.gpu_model and normalise_gpu_model(node.gpu_model) != spec.gpu_model:
        return f"GPU model {node.gpu_model} is not the requested {spec.gpu_model}"
    if spec.allowed_zones is not None and node.zone not in spec.allowed_zones:
        return f"zone {node.zone} is not among the allowed zones {spec.allowed_zones}"
    if spec.denied_zones and node.zone in spec.denied_zones:
        return f"zone {node.zone} is denied"
    return None


def _rejection_reason(
    node: ComputeNode,
    spec: JobSpec,
    free: int,
    reading: GridReading | str,
    now: datetime,
) -> str | None:
    static = static_rejection(node, spec)
    if static is not None:
        return static
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
        return f"{NO_READING}: {reading}"
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


def _held_by(session: Session, workload_id: str | None) -> dict[str, int]:
    """Return the GPUs `workload_id` itself holds, by node (its own GPUs count as free)."""
    if workload_id is None:
        return {}
    w = repo.get_workload(session=session, workload_id=workload_id)
    if w is None or w.node_id is None or w.status not in repo.ACTIVE_WORKLOAD_STATUSES:
        return {}
    return {w.node_id: w.gpu_count}


def _reserved_ahead(
    session: Session, now: datetime, hours: float, exclude_workload_id: str | None
) -> dict[str, int]:
    """Return, per node, the most GPUs scheduled work reserves while this job would run now."""
    return repo.reserved_peaks(
        session=session,
        start=now,
        end=now + timedelta(hours=hours),
        exclude_workload_id=exclude_workload_id,
    )


def evaluate_nodes(
    *,
    session: Session,
    grid: GridSource,
    spec: JobSpec,
    now: datetime,
    weights: ScoreWeights,
    exclude_workload_id: str | None = None,
    lock: bool = False,
    room_now: bool = True,
) -> tuple[list[Candidate], list[Rejection]]:
    """Return eligible nodes best first, and every other node with its reason.

    Args:
        session: Open session.
        grid: Grid source read once per zone at `now`.
        spec: The job's requirements.
        now: Decision time.
        weights: Score weights.
        exclude_workload_id: Do not count this workload's own GPUs or reservation as taken.
        lock: Lock the node rows (PostgreSQL) so concurrent placements cannot oversubscribe.
        room_now: Reject nodes without the GPUs free now. False (the joint re-plan, which
            books capacity per hour itself) counts every GPU not held by other tenants as free.
    """
    nodes = repo.list_nodes(session=session, for_update=lock)
    held = _held_by(session, exclude_workload_id)
    ahead = _reserved_ahead(session, now, spec.duration_hours, exclude_workload_id)
    readings = _readings(grid, {n.zone for n in nodes}, now)
    eligible: list[tuple[ComputeNode, int, GridReading]] = []
    rejected: list[Rejection] = []
    for node in nodes:
        free = (
            node.gpu_count
            - node.reserved_gpus
            - node.allocated_gpus
            + held.get(node.id, 0)
            - ahead.get(node.id, 0)
        )
        if not room_now:
            free = node.gpu_count - node.reserved_gpus
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
        breakdown = scored.breakdown(int(i), ci, util)
        candidates.append(
            Candidate(
                node_id=node.id,
                zone=node.zone,
                gpu_model=node.gpu_model,
                free_gpus=free,
                price_per_gpu_hour_minor=node.price_per_gpu_hour_minor,
                currency=node.currency,
                score=breakdown.score,
                breakdown=breakdown,
                energy_kwh=energy,
                co2_kg=energy * float(ci[i]) / 1000.0,
            )
        )
    return candidates, rejected


def recommend(
    *,
    session: Session,
    grid: GridSource,
    spec: JobSpec,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> Recommendation:
    """Rank every node for `spec` at `now` without writing anything."""
    candidates, rejected = evaluate_nodes(
        session=session, grid=grid, spec=spec, now=now, weights=weights
    )
    best = candidates[0] if candidates else None
    base = cheapest(candidates)
    return Recommendation(
        at=now,
        grid_source=grid.name,
        spec=spec,
        candidates=candidates,
        rejected=rejected,
        best=best,
        baseline=base,
        co2_saved_kg=(
            forecast_avoided_kg(chosen=best, baseline=base, chosen_co2_kg=best.co2_kg)
            if best and base
            else None
        ),
    )


def coverage_gap(grid: GridSource, at: datetime, rejected: list[Rejection]) -> str | None:
    """Return why no zone has a grid reading at `at`, when that is why nodes were rejected.

    None when no node was rejected for a missing reading, or some zone has one (then the
    rejections themselves say what is wrong).
    """
    if not any(r.reason.startswith(NO_READING) for r in rejected):
        return None
    reason = None
    for zone in ZONE_CODES:
        try:
            grid.reading(zone, at)
        except NoGridDataError as exc:
            reason = reason or str(exc)
        else:
            return None
    return reason


def take_first(
    *,
    session: Session,
    candidates: list[Candidate],
    gpus: int,
    now: datetime,
    hours: float,
    workload_id: str | None = None,
) -> Candidate | None:
    """Allocate GPUs now on the first candidate that still has room; return it (or None).

    Room counts the GPUs scheduled work (other than `workload_id`'s own) has reserved on the
    node while this work would run.
    """
    end = now + timedelta(hours=hours)
    for c in candidates:
        ahead = repo.reserved_peak(
            session=session, node_id=c.node_id, start=now, end=end, exclude_workload_id=workload_id
        )
        if repo.take_gpus(session=session, node_id=c.node_id, gpus=gpus, ahead=ahead):
            return c
    return None
