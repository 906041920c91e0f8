"""Run scheduled work: start it at its hour, or now on an operator's word.

A scheduled workload takes its GPUs on its planned node (or, if that node cannot take it now,
the best eligible node) and gives up its reservation in the same transaction. At its planned
hour it becomes `routed`, as work routed now does; an operator's start makes it `running` at
once. No node with room: it stays scheduled and the decision says why.

Re-planning scheduled work that has not started is the joint re-plan's business
(`tools.broker.replan`, applied by `tools.broker.replan_apply`): hourly, and at once when an
incident affects it.

Every outcome is a recorded decision with every candidate. Functions flush and never commit.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from store import repo
from store.models import Workload
from tools.broker.decisions import DecisionView, place_on, record_decision
from tools.broker.placement import evaluate_nodes, take_first
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.windows import (
    StartPlan,
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


def due_for_start(*, session: Session, now: datetime) -> list[str]:
    """Return ids of scheduled work whose planned start has come, earliest first."""
    stmt = (
        select(Workload.id)
        .where(Workload.status == "scheduled", Workload.planned_start_at <= now)
        .order_by(Workload.planned_start_at, Workload.id)
    )
    return list(session.scalars(stmt))
