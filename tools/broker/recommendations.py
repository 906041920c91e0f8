"""Stored recommendations: a placement quote with an id and an expiry, committed at most once.

`save_recommendation` stores the best node of a `Recommendation` for an organisation.
`route_recommendation` commits it: the first call submits and routes one workload linked to the
recommendation; every later call (a second approval, a replayed tool call) returns that same
workload, and the unique index on `workloads.recommendation_id` holds this even under
concurrent calls. `preview_reroute` answers, without writing, what a reroute would do now.

Functions flush and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import repo
from store.models import Recommendation as StoredRecommendation
from store.models import Workload
from tools.broker.placement import Recommendation
from tools.broker.rerouting import MAX_REROUTES, REROUTE_THRESHOLD, node_down, reroute_options
from tools.broker.routing import DecisionView, route_workload
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.workloads import JobSpec, WorkloadView, load_workload, submit_workload
from tools.errors import DomainError, NotFoundError
from tools.grid import GridSource
from tools.grid.outlook import ForecastProvider

RECOMMENDATION_TTL = timedelta(minutes=30)
"""How long a recommendation may be routed after it was made (grid and capacity move on)."""


class RecommendationExpiredError(DomainError):
    """A recommendation is too old to commit; ask for a new one."""


@dataclass(frozen=True)
class CommittedRecommendation:
    """The workload a recommendation committed, and whether this call created it."""

    workload: WorkloadView
    decision: DecisionView | None
    """The routing decision made by this call (None when the workload already existed)."""
    created: bool


def save_recommendation(
    *, session: Session, org_id: str, rec: Recommendation, now: datetime
) -> StoredRecommendation | None:
    """Store the best placement of `rec` for `org_id`; None when no node can take the job."""
    best = rec.best
    if best is None:
        return None
    row = StoredRecommendation(
        id=f"rec_{uuid.uuid4().hex[:12]}",
        org_id=org_id,
        spec=rec.spec.model_dump(mode="json"),
        node_id=best.node_id,
        zone=best.zone,
        score=best.score,
        energy_kwh=best.energy_kwh,
        co2_kg=best.co2_kg,
        baseline_co2_kg=(best.co2_kg + rec.co2_saved_kg if rec.co2_saved_kg is not None else None),
        price_per_gpu_hour_minor=best.price_per_gpu_hour_minor,
        currency=best.currency,
        grid_source=rec.grid_source,
        created_at=now,
        expires_at=now + RECOMMENDATION_TTL,
    )
    repo.add(session=session, obj=row)
    return row


def load_recommendation(
    *, session: Session, recommendation_id: str, org_id: str, for_update: bool = False
) -> StoredRecommendation:
    """Return the organisation's recommendation, or raise naming the id.

    Raises:
        NotFoundError: No such recommendation for this organisation (another organisation's
            quote is reported the same way).
    """
    stmt = select(StoredRecommendation).where(StoredRecommendation.id == recommendation_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).one_or_none()
    if row is None or row.org_id != org_id:
        raise NotFoundError(
            f"recommendation {recommendation_id!r} does not exist; call recommend_placement "
            "and use the recommendation_id it returns"
        )
    return row


def committed_workload(*, session: Session, recommendation_id: str) -> Workload | None:
    """Return the workload that committed `recommendation_id`, if any."""
    return session.scalars(
        select(Workload).where(Workload.recommendation_id == recommendation_id)
    ).one_or_none()


def check_fresh(row: StoredRecommendation, now: datetime) -> None:
    """Raise when the recommendation can no longer be committed at `now`.

    Raises:
        RecommendationExpiredError: It expired; the message names the id and the expiry.
    """
    if now >= row.expires_at:
        raise RecommendationExpiredError(
            f"recommendation {row.id!r} expired at {row.expires_at.isoformat()}; "
            "call recommend_placement again for a fresh one"
        )


def route_recommendation(
    *,
    session: Session,
    grid: GridSource,
    recommendation_id: str,
    org_id: str,
    name: str,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    forecasts: ForecastProvider | None = None,
    move_running: bool = True,
) -> CommittedRecommendation:
    """Submit and route the workload of a recommendation once; later calls return it again.

    Raises:
        NotFoundError: Unknown recommendation (or another organisation's).
        RecommendationExpiredError: Never committed and now past its expiry.
    """
    row = load_recommendation(
        session=session, recommendation_id=recommendation_id, org_id=org_id, for_update=True
    )
    existing = committed_workload(session=session, recommendation_id=row.id)
    if existing is not None:
        return CommittedRecommendation(WorkloadView.of(existing), None, created=False)
    check_fresh(row, now)
    spec = JobSpec.model_validate(row.spec)
    try:
        with session.begin_nested():
            view = submit_workload(
                session=session,
                org_id=org_id,
                name=name,
                spec=spec,
                now=now,
                recommendation_id=row.id,
            )
    except IntegrityError:
        # A concurrent commit of the same recommendation won the unique index: return its work.
        winner = committed_workload(session=session, recommendation_id=row.id)
        if winner is None:
            raise
        return CommittedRecommendation(WorkloadView.of(winner), None, created=False)
    decision = route_workload(
        session=session,
        grid=grid,
        workload_id=view.id,
        now=now,
        weights=weights,
        forecasts=forecasts,
        move_running=move_running,
    )
    placed = WorkloadView.of(load_workload(session=session, workload_id=view.id))
    return CommittedRecommendation(placed, decision, created=True)


@dataclass(frozen=True)
class ReroutePreview:
    """What a reroute would do now, computed without writing."""

    workload_id: str
    node_id: str | None
    zone: str | None
    gpu_count: int
    best_node_id: str | None
    best_zone: str | None
    improvement: float | None
    """Relative gain of the best alternative over the current placement (None: not comparable)."""
    would_move: bool


def preview_reroute(
    *,
    session: Session,
    grid: GridSource,
    workload_id: str,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> ReroutePreview:
    """Return the best alternative node for a placed workload and whether the rule would move it.

    Raises:
        NotFoundError: No such workload.
    """
    workload = load_workload(session=session, workload_id=workload_id)
    view = WorkloadView.of(workload)
    current, best = reroute_options(
        session=session, grid=grid, workload=workload, now=now, weights=weights
    )
    improvement: float | None = None
    if best is not None and current is not None and current.score != 0:
        improvement = (current.score - best.score) / abs(current.score)
    if workload.movable:
        would_move = current is None or (
            improvement is not None and improvement >= REROUTE_THRESHOLD
        )
    else:
        would_move = node_down(session=session, node_id=workload.node_id)
    would_move = would_move and best is not None and workload.reroute_count < MAX_REROUTES
    return ReroutePreview(
        workload_id=workload.id,
        node_id=workload.node_id,
        zone=view.zone,
        gpu_count=workload.gpu_count,
        best_node_id=best.node_id if best else None,
        best_zone=best.zone if best else None,
        improvement=None if improvement is None else round(improvement, 4),
        would_move=would_move,
    )
