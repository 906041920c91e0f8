"""Place workloads on nodes and move them, with an audit trail of every decision.

Rules (exact and tested):
* Route: work without slack goes to the best eligible node from `tools.broker.placement` now;
  work with slack goes where and when `tools.broker.windows.plan_start` finds the greenest
  forecast window (scheduled, GPUs reserved from that hour). Every decision stores each
  candidate's score breakdown, each rejected node's reason, and the planned start.
* Reroute: moves only when the best alternative is at least 25 % better than the current
  placement's score now, i.e. `current - best >= 0.25 * |current|`; at most 5 reroutes per
  workload. If the current node went offline the move is a failover and needs no improvement.
  Work that is not `movable` (it cannot checkpoint) moves only by failover, and if it was
  running it restarts from the beginning there. Refused reroutes are recorded too.

Functions flush and never commit: the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

import numpy as np
from sqlalchemy.orm import Session

from store import repo
from store.models import Workload
from tools.broker.decisions import DecisionView, place_on, record_decision
from tools.broker.placement import Candidate, Recommendation, Rejection, evaluate_nodes, recommend
from tools.broker.planner import Objective
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.windows import plan_start
from tools.broker.workloads import (
    JobSpec,
    WorkloadView,
    check_transition,
    load_workload,
    set_workload_status,
    submit_workload,
)
from tools.errors import IllegalTransitionError, RerouteRefusedError
from tools.grid import GridSource
from tools.grid.outlook import ForecastProvider

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


def route_workload(
    *,
    session: Session,
    grid: GridSource,
    workload_id: str,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    objective: Objective = "carbon",
    forecasts: ForecastProvider | None = None,
    move_running: bool = True,
) -> DecisionView:
    """Place a pending workload where and when it is greenest by forecast; record the decision.

    Work without slack (no deadline, or none to spare) goes to the lowest-scoring eligible node
    now, as `routed`. Work with slack whose greenest forecast window is later becomes
    `scheduled` on that node, its GPUs reserved from the planned hour (see `plan_start`). With no
    eligible node the workload stays pending and the decision says why, node by node.
    `forecasts` is the process's forecast provider (`tools.broker.windows.forecast_grid`);
    `move_running` is the operator's `TGTG_MOVE_RUNNING_WORK` (see `plan_start`).
    """
    workload = load_workload(session=session, workload_id=workload_id, for_update=True)
    check_transition(workload.status, "routed", workload_id)
    if workload.status != "pending":
        raise IllegalTransitionError(
            f"workload {workload_id!r} is {workload.status!r}; only pending work is routed "
            "(scheduled work starts at its hour, or when an operator starts it)"
        )
    spec = WorkloadView.of(workload).spec()
    candidates, rejected = evaluate_nodes(
        session=session, grid=grid, spec=spec, now=now, weights=weights, lock=True
    )
    record = partial(
        record_decision,
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
    plan = plan_start(
        session=session,
        grid=grid,
        spec=spec,
        candidates=candidates,
        now=now,
        workload_id=workload.id,
        objective=objective,
        weights=weights,
        forecasts=forecasts,
        move_running=move_running,
    )
    assert plan is not None
    if plan.deferred:
        chosen = next(c for c in candidates if c.node_id == plan.node_id)
        if repo.reserve_gpus(
            session=session,
            workload_id=workload.id,
            node_id=chosen.node_id,
            gpus=workload.gpu_count,
            start=plan.start_at,
            end=plan.start_at + timedelta(hours=workload.duration_hours),
            now=now,
        ):
            workload.status = "scheduled"
            place_on(workload, chosen, now)
            workload.planned_start_at = plan.start_at
            workload.co2_kg_estimate = plan.co2_kg
            return record(outcome="scheduled", node=chosen, reason=plan.why, plan=plan)
        plan = plan.model_copy(
            update={
                "start_at": now,
                "co2_kg": plan.co2_kg_if_started_now,
                "saving_pct": 0.0,
                "why": "the planned window was taken by concurrent placements; starts now",
            }
        )
    best = take_first(
        session=session,
        candidates=candidates,
        gpus=workload.gpu_count,
        now=now,
        hours=workload.duration_hours,
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
    place_on(workload, best, now)
    workload.planned_start_at = None
    if best.node_id != plan.node_id:
        plan = plan.model_copy(update={"node_id": best.node_id, "zone": best.zone})
    return record(
        outcome="routed",
        node=best,
        reason=f"lowest score {best.score:.4f} of {len(candidates)} eligible nodes; {plan.why}",
        plan=plan,
    )


def _remaining_hours(workload: Workload, now: datetime) -> float:
    if workload.status != "running" or workload.started_at is None:
        return workload.duration_hours
    elapsed = (now - workload.started_at).total_seconds() / 3600.0
    return max(workload.duration_hours - elapsed, 1e-6)


def reroute_spec(*, session: Session, workload: Workload, now: datetime) -> JobSpec:
    """Return what a move asks of the new node: the hours left, or all of them for a restart.

    Running work that cannot checkpoint restarts when its node is down (`node_down`).
    """
    restart = restarts(session=session, workload=workload)
    hours = workload.duration_hours if restart else _remaining_hours(workload, now)
    return WorkloadView.of(workload).spec().model_copy(update={"duration_hours": hours})


def restarts(*, session: Session, workload: Workload) -> bool:
    """Return whether moving the workload now restarts it: running, no checkpoint, node down."""
    return (
        workload.status == "running"
        and not workload.movable
        and node_down(session=session, node_id=workload.node_id)
    )


def reroute_workload(
    *,
    session: Session,
    grid: GridSource,
    workload_id: str,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> DecisionView:
    """Move a routed or running workload if an alternative is >= 25 % better; record either way.

    Work that is not `movable` (it cannot checkpoint) is kept while its node is online
    (`node_down`). When that node is down, such work that was running restarts from the beginning:
    the new node must fit all its hours before the deadline, and its `started_at` becomes `now`
    (so its run, its GPUs and its measured CO2 count from the restart; billing still charges
    the booked duration once).
    """
    workload = load_workload(session=session, workload_id=workload_id, for_update=True)
    if workload.status not in ("routed", "running"):
        raise RerouteRefusedError(
            f"workload {workload_id!r} is {workload.status!r}; only routed or running work moves"
        )
    current_id = workload.node_id
    left = _remaining_hours(workload, now)
    spec = WorkloadView.of(workload).spec().model_copy(update={"duration_hours": left})
    evaluate = partial(
        evaluate_nodes,
        session=session,
        grid=grid,
        now=now,
        weights=weights,
        exclude_workload_id=workload.id,
        lock=True,
    )
    candidates, rejected = evaluate(spec=spec)
    current = next((c for c in candidates if c.node_id == current_id), None)
    current_reason = next((r.reason for r in rejected if r.node_id == current_id), "not eligible")
    down = node_down(session=session, node_id=current_id)
    restart = restarts(session=session, workload=workload)
    if restart:  # it starts again from the beginning: the new node needs all its hours
        candidates, rejected = evaluate(
            spec=reroute_spec(session=session, workload=workload, now=now)
        )
    others = [c for c in candidates if c.node_id != current_id]
    best = others[0] if others else None
    current_score = current.score if current else workload.score
    record = partial(
        record_decision,
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
    failover = current is None
    if not workload.movable and not down:
        return record(
            outcome="kept",
            node=current,
            improvement=None,
            reason=(
                "not movable (it cannot checkpoint): it stays on its node while the node is online"
            ),
        )
    if best is None:
        reason = "no other eligible node"
        if failover:
            reason = (
                f"no eligible node: {current_id} cannot run it ({current_reason}) "
                "and no other node can take it"
            )
        if restart:
            reason += (
                f" for all its {workload.duration_hours:g} h (it cannot checkpoint, "
                "so it starts again from the beginning); see each rejection"
            )
        return record(outcome="kept", node=current, improvement=None, reason=reason)
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
        if take_first(
            session=session,
            candidates=[alternative],
            gpus=workload.gpu_count,
            now=now,
            hours=spec.duration_hours,
        ):
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
    if current_id is not None:
        repo.release_gpus(session=session, node_id=current_id, gpus=workload.gpu_count)
    workload.reroute_count += 1
    place_on(workload, chosen, now)
    reason = (
        f"failover: {current_id} cannot run it ({current_reason})"
        if failover
        else f"{improvement:.1%} better than current {current_score:.4f}"
    )
    if restart:  # only a failover moves it (see above)
        workload.started_at = now
        reason += (
            f"; it cannot checkpoint, so it restarts from the beginning on {chosen.node_id} "
            f"({workload.duration_hours:g} h)"
        )
    return record(
        outcome="rerouted",
        node=chosen,
        improvement=None if improvement is None else float(improvement),
        reason=reason,
    )


def node_down(*, session: Session, node_id: str | None) -> bool:
    """Return whether the node work is placed on is gone or not online (it cannot run work).

    Only then does work that cannot checkpoint move (`JobSpec.movable`).
    """
    node = repo.get_node(session=session, node_id=node_id) if node_id is not None else None
    return node is None or node.status != "online"


def _improvement(current: float, alternative: float) -> float:
    """Return the relative gain of `alternative` over `current` (lower scores are better)."""
    gain = current - alternative
    if current == 0:
        return float(np.inf) if gain > 0 else 0.0
    return gain / abs(current)
