"""Place workloads on nodes and move them, with an audit trail of every decision.

Rules (exact and tested):
* Route: work without slack goes to the best eligible node from `tools.broker.placement` now;
  work with slack goes where and when `tools.broker.windows.plan_start` finds the greenest
  forecast window (scheduled, GPUs reserved from that hour). Every decision stores each
  candidate's score breakdown, each rejected node's reason, and the planned start.
* Reroute (`tools.broker.rerouting`, re-exported here): moves only when the best alternative is
  at least 25 % better now, at most 5 times; failover when the node cannot run it; work that
  cannot checkpoint moves only off a node that is down, and restarts there.

Functions flush and never commit: the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.orm import Session

from store import repo
from tools.broker.decisions import DecisionView, place_on, record_decision
from tools.broker.placement import (
    Candidate,
    Recommendation,
    Rejection,
    evaluate_nodes,
    recommend,
    take_first,
)
from tools.broker.planner import Objective
from tools.broker.rerouting import (
    MAX_REROUTES,
    REROUTE_THRESHOLD,
    node_down,
    reroute_options,
    reroute_workload,
)
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
from tools.errors import IllegalTransitionError
from tools.grid import GridSource
from tools.grid.outlook import ForecastProvider

__all__ = [
    "MAX_REROUTES",
    "REROUTE_THRESHOLD",
    "Candidate",
    "DecisionView",
    "JobSpec",
    "Recommendation",
    "Rejection",
    "WorkloadView",
    "node_down",
    "recommend",
    "reroute_options",
    "reroute_workload",
    "route_workload",
    "set_workload_status",
    "submit_workload",
]


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
