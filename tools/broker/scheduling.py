"""Run scheduled work: start it at its hour (or now, on an operator's word) and re-plan it hourly.

* Start: a scheduled workload takes its GPUs on its planned node (or, if that node cannot take
  it now, the best eligible node) and gives up its reservation in the same transaction. At its
  planned hour it becomes `routed`, as work routed now does; an operator's start makes it
  `running` at once. No node with room: it stays scheduled and the decision says why.
* Re-plan: once an hour, scheduled work that has not started is planned again on the newest
  forecasts; it moves only when the new window's forecast CO2 is at least `DEFER_MIN_SAVING`
  below its current window's under the same forecast (work already running keeps the 25 % / 5
  moves rule of `reroute_workload`).

Every outcome is a recorded decision with every candidate. Functions flush and never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store import repo
from store.models import ComputeNode, RoutingDecision, Workload
from tools.broker.decisions import DecisionView, place_on, record_decision
from tools.broker.placement import Candidate, evaluate_nodes
from tools.broker.routing import take_first
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.windows import (
    DEFER_MIN_SAVING,
    StartPlan,
    forecast_grid,
    plan_start,
    window_kg,
)
from tools.broker.workloads import (
    WorkloadView,
    check_transition,
    load_workload,
    set_workload_status,
)
from tools.grid import GridSource
from tools.grid.models import floor_hour


class SchedulePass(BaseModel):
    """What one pass of the background loop did to scheduled work."""

    started: list[str]
    rescheduled: list[str]
    kept: list[str]
    routed: list[str] = []
    """Pending work the joint re-plan started now."""
    scheduled: list[str] = []
    """Pending work the joint re-plan scheduled for a later hour."""
    unplaced: list[str] = []
    """Pending work that fits nowhere yet (it stays pending)."""


def start_workload(
    *,
    session: Session,
    grid: GridSource,
    workload_id: str,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    by_operator: bool = True,
    why: str | None = None,
    prefer: str | None = None,
) -> DecisionView:
    """Start scheduled work now: take GPUs, drop the reservation, record the decision.

    `by_operator` (start now) makes it `running`; the loop (at its planned hour, or when a
    re-plan finds now best, saying `why`) makes it `routed`. Raises IllegalTransitionError
    unless the workload is scheduled.
    """
    workload = load_workload(session=session, workload_id=workload_id, for_update=True)
    target = "running" if by_operator else "routed"
    check_transition(workload.status, target, workload_id)
    if workload.status != "scheduled":
        check_transition(workload.status, "scheduled", workload_id)
    spec = WorkloadView.of(workload).spec()
    candidates, rejected = evaluate_nodes(
        session=session,
        grid=grid,
        spec=spec,
        now=now,
        weights=weights,
        exclude_workload_id=workload.id,
        lock=True,
    )
    planned = workload.node_id
    first = prefer or planned
    ordered = sorted(candidates, key=lambda c: c.node_id != first)
    record = partial(
        record_decision,
        session=session,
        workload=workload,
        kind="start",
        previous_node_id=planned,
        previous_score=workload.score,
        improvement=None,
        candidates=candidates,
        rejected=rejected,
        weights=weights,
        grid=grid,
        now=now,
    )
    best = take_first(
        session=session,
        candidates=ordered,
        gpus=workload.gpu_count,
        now=now,
        hours=workload.duration_hours,
        workload_id=workload.id,
    )
    if best is None:
        return record(
            outcome="kept",
            node=None,
            reason=(
                f"no eligible node has {workload.gpu_count} GPUs free now "
                f"({len(candidates)} eligible); it stays scheduled and is tried again"
            ),
        )
    repo.release_reservation(session=session, workload_id=workload.id)
    workload.status = target
    place_on(workload, best, now)
    workload.planned_start_at = None
    if by_operator:
        workload.started_at = now
    where = "its planned node" if best.node_id == planned else f"{best.node_id} instead"
    when = why or ("started now by an operator" if by_operator else "its planned start has come")
    plan = StartPlan(
        start_at=now,
        node_id=best.node_id,
        zone=best.zone,
        co2_kg=best.co2_kg,
        co2_kg_if_started_now=best.co2_kg,
        saving_pct=0.0,
        why=when,
        objective="carbon",
        forecast_issued_at=floor_hour(now),
    )
    return record(outcome="started", node=best, reason=f"{when}: on {where}", plan=plan)


def start_now(
    *,
    session: Session,
    grid: GridSource,
    workload_id: str,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> tuple[WorkloadView, DecisionView | None]:
    """Start work now on an operator's word: routed work runs; scheduled work takes its GPUs now.

    Returns the workload and, for scheduled work, the recorded start decision (outcome `kept`
    when no node has room now: the workload stays scheduled).
    """
    workload = load_workload(session=session, workload_id=workload_id)
    if workload.status != "scheduled":
        view = set_workload_status(
            session=session, workload_id=workload_id, status="running", now=now
        )
        return view, None
    decision = start_workload(
        session=session, grid=grid, workload_id=workload_id, now=now, weights=weights
    )
    return WorkloadView.of(load_workload(session=session, workload_id=workload_id)), decision


def _current_kg(
    session: Session, grid: GridSource, workload: Workload, now: datetime
) -> float | None:
    """Return the forecast kg CO2 of the workload's current window under today's forecast."""
    node = session.get(ComputeNode, workload.node_id) if workload.node_id else None
    if node is None or workload.planned_start_at is None:
        return None
    fc = forecast_grid(grid=grid, zones=[node.zone], now=now)
    return window_kg(
        fc,
        node.zone,
        WorkloadView.of(workload).spec(),
        node.power_kw_per_gpu,
        workload.planned_start_at,
    )


def replan_workload(
    *,
    session: Session,
    grid: GridSource,
    workload_id: str,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> DecisionView:
    """Plan scheduled work again on the newest forecast; move it only when clearly better."""
    workload = load_workload(session=session, workload_id=workload_id, for_update=True)
    check_transition(workload.status, "scheduled", workload_id)
    spec = WorkloadView.of(workload).spec()
    candidates, rejected = evaluate_nodes(
        session=session,
        grid=grid,
        spec=spec,
        now=now,
        weights=weights,
        exclude_workload_id=workload.id,
        lock=True,
    )
    record = partial(
        record_decision,
        session=session,
        workload=workload,
        kind="replan",
        previous_node_id=workload.node_id,
        previous_score=workload.score,
        improvement=None,
        candidates=candidates,
        rejected=rejected,
        weights=weights,
        grid=grid,
        now=now,
    )
    current = next((c for c in candidates if c.node_id == workload.node_id), None)
    keep_plan = _kept_plan(session, grid, workload, current, now)
    plan = plan_start(
        session=session,
        grid=grid,
        spec=spec,
        candidates=candidates,
        now=now,
        workload_id=workload.id,
        weights=weights,
    )
    if plan is None:
        return record(
            outcome="kept",
            node=current,
            reason="no eligible node on the newest forecast; the plan stands",
            plan=keep_plan,
        )
    # The planned node can no longer take it: any feasible plan is better than none.
    current_kg = keep_plan.co2_kg if keep_plan else float("inf")
    gain = (current_kg - plan.co2_kg) / current_kg if current_kg > 0 else 0.0
    same = plan.node_id == workload.node_id and plan.start_at == workload.planned_start_at
    if not same and gain >= DEFER_MIN_SAVING and not plan.deferred:
        return start_workload(
            session=session,
            grid=grid,
            workload_id=workload.id,
            now=now,
            weights=weights,
            by_operator=False,
            prefer=plan.node_id,
            why=(
                f"re-planned: starting now on {plan.node_id} is {gain:.0%} greener by the "
                "newest forecast than the planned window"
            ),
        )
    if same or gain < DEFER_MIN_SAVING:
        return record(
            outcome="kept",
            node=current,
            reason=(
                f"best window on the newest forecast saves {max(gain, 0.0):.1%} over the "
                "planned one "
                f"({plan.co2_kg:.1f} vs {current_kg:.1f} kg CO2), below "
                f"{DEFER_MIN_SAVING:.0%}; the plan stands"
            ),
            plan=keep_plan,
        )
    chosen = next(c for c in candidates if c.node_id == plan.node_id)
    if not repo.reserve_gpus(
        session=session,
        workload_id=workload.id,
        node_id=chosen.node_id,
        gpus=workload.gpu_count,
        start=plan.start_at,
        end=plan.start_at + timedelta(hours=workload.duration_hours),
        now=now,
    ):
        return record(
            outcome="kept",
            node=current,
            reason="the better window was taken meanwhile; the plan stands",
            plan=keep_plan,
        )
    place_on(workload, chosen, now)
    workload.planned_start_at = plan.start_at
    workload.co2_kg_estimate = plan.co2_kg
    return record(
        outcome="rescheduled",
        node=chosen,
        reason=(
            f"{gain:.0%} less forecast CO2 than the planned window: {plan.why}"
            if keep_plan
            else f"the planned node {workload.node_id} can no longer take it: {plan.why}"
        ),
        plan=plan,
    )


def _kept_plan(
    session: Session,
    grid: GridSource,
    workload: Workload,
    current: Candidate | None,
    now: datetime,
) -> StartPlan | None:
    kg = _current_kg(session, grid, workload, now)
    if current is None or kg is None or workload.planned_start_at is None:
        return None
    return StartPlan(
        start_at=workload.planned_start_at,
        node_id=current.node_id,
        zone=current.zone,
        co2_kg=kg,
        co2_kg_if_started_now=kg,
        saving_pct=0.0,
        why="the plan stands",
        objective="carbon",
        forecast_issued_at=floor_hour(now),
    )


def due_for_start(*, session: Session, now: datetime) -> list[str]:
    """Return ids of scheduled work whose planned start has come, earliest first."""
    stmt = (
        select(Workload.id)
        .where(Workload.status == "scheduled", Workload.planned_start_at <= now)
        .order_by(Workload.planned_start_at, Workload.id)
    )
    return list(session.scalars(stmt))


def due_for_replan(*, session: Session, now: datetime) -> list[str]:
    """Return ids of scheduled work not yet started and not decided on since this hour began."""
    hour = floor_hour(now)
    last = (
        select(RoutingDecision.workload_id, func.max(RoutingDecision.decided_at).label("at"))
        .group_by(RoutingDecision.workload_id)
        .subquery()
    )
    stmt = (
        select(Workload.id)
        .outerjoin(last, last.c.workload_id == Workload.id)
        .where(Workload.status == "scheduled", Workload.planned_start_at > now)
        .where((last.c.at.is_(None)) | (last.c.at < hour))
        .order_by(Workload.planned_start_at, Workload.id)
    )
    return list(session.scalars(stmt))
