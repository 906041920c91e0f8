"""Re-plan all free work jointly: the background loop's (hourly) and incidents' use of the planner.

Free work is every pending workload and every scheduled workload whose planned start is still
ahead. `plan_jointly` plans it in one call of `tools.broker.planner.plan_hour` over (node, start
hour) within each deadline, against the capacity already committed by running work (and by
scheduled work the plan does not move); a scheduled job's own reservation never blocks it, and
its slot is passed as `PlanJob.planned`, so the plan may move it but never leaves it without one.
Nodes are eligible per job by `tools.broker.placement.evaluate_nodes` (room is the planner's
business, hour by hour).

A scheduled job keeps its window unless the joint plan's window for it has at least
`DEFER_MIN_SAVING` less forecast CO2 under the same forecast, or its node can no longer take
it. Such *pinned* jobs go back into committed capacity and the rest is planned once more, so
the plan that is applied fits around them.

`tools.broker.replan_apply` applies the plan workload by workload. Work already running moves
only to make room for work the plan starts now (`tools.broker.make_room`, the 25 % rule applied
to the moves as a whole): such a slot carries its `room` moves, made first when it is applied
(`tools.broker.room_moves`). Otherwise running work keeps the 25 % / 5 moves rule of
`tools.broker.rerouting.reroute_workload`.

Two callers. The background loop (`graphs.incident_watch.run_schedule`) re-plans once an hour:
work decided on this hour is left out. An incident (`tools.incidents.response`) re-plans the
free work it affects at once, on the grid with its overrides, naming it in `force`: that work
is planned even when it was decided on this hour, together with the rest of the free work, so
the plan fits.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store import repo
from store.models import ComputeNode, RoutingDecision, Workload
from tools.broker.blocking import stored_history
from tools.broker.placement import evaluate_nodes
from tools.broker.planner import Objective, PlanGrid, PlanJob, plan_hour
from tools.broker.room_moves import RoomMove, running_work
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.windows import (
    DEFER_MIN_SAVING,
    HORIZON_HOURS,
    PLAN_TIME_BUDGET_S,
    ZoneForecast,
    forecast_grid,
    latest_start,
    window_kg,
)
from tools.broker.workloads import WorkloadView
from tools.grid import GridSource
from tools.grid.models import HOUR, floor_hour
from tools.grid.outlook import ForecastProvider


@dataclass(frozen=True)
class JointSlot:
    """One free workload's place in the joint plan."""

    workload_id: str
    status: str
    """`pending` or `scheduled` when planned."""
    node_id: str | None
    """None: it fits nowhere within its deadline (or, scheduled, its window stands)."""
    start_at: datetime | None
    co2_kg: float | None
    """Forecast kg CO2 in the planned window."""
    current_kg: float | None
    """Scheduled work: forecast kg CO2 of its current window under the same forecast."""
    pinned: bool
    """Scheduled work whose current window stands (no move clears `DEFER_MIN_SAVING`)."""
    method: str
    note: str = ""
    """Why a scheduled job moves although its own window gains less than `DEFER_MIN_SAVING`."""
    room: tuple[RoomMove, ...] = ()
    """Running work to move first so that this workload starts on its node now."""


def _same(slot: JointSlot, w: Workload) -> bool:
    return slot.node_id == w.node_id and slot.start_at == w.planned_start_at


def _rank(
    slots: dict[str, JointSlot], jobs: dict[str, tuple[Workload, PlanJob]]
) -> tuple[float, float, float]:
    """Order plans by unplaced no-slack GPU-hours, unplaced GPU-hours, then forecast kg CO2."""
    now_gh = all_gh = kg = 0.0
    for key, s in slots.items():
        job = jobs[key][1]
        if s.pinned and s.node_id is None:
            kg += s.current_kg or 0.0
        elif s.node_id is None:
            all_gh += job.gpus * job.hours
            now_gh += job.gpus * job.hours if job.latest_start <= 0 else 0.0
        else:
            kg += s.co2_kg or 0.0
    return (round(now_gh, 9), round(all_gh, 9), kg)


def _decided_this_hour(session: Session, now: datetime) -> set[str]:
    stmt = (
        select(RoutingDecision.workload_id)
        .group_by(RoutingDecision.workload_id)
        .having(func.max(RoutingDecision.decided_at) >= floor_hour(now))
    )
    return set(session.scalars(stmt))


def free_work(*, session: Session, now: datetime) -> list[Workload]:
    """Return pending work and scheduled work not started yet, oldest first."""
    stmt = (
        select(Workload)
        .where(
            (Workload.status == "pending")
            | ((Workload.status == "scheduled") & (Workload.planned_start_at > now))
        )
        .order_by(Workload.submitted_at, Workload.id)
    )
    return list(session.scalars(stmt))


def _committed(
    session: Session,
    nodes: list[ComputeNode],
    free_ids: set[str],
    issued: datetime,
    horizon: int,
    now: datetime,
) -> np.ndarray:
    """Return (nodes, horizon) GPUs busy per hour, without the free jobs' own reservations."""
    end = issued + horizon * HOUR
    out = np.zeros((len(nodes), horizon))
    for i, node in enumerate(nodes):
        use = repo.hourly_use(session=session, node_id=node.id, start=issued, end=end, now=now)
        row = np.array(use, dtype=np.float64)
        for r in repo.list_reservations(session=session, node_id=node.id, start=issued, end=end):
            if r.workload_id not in free_ids:
                continue
            for h in range(horizon):
                at = issued + h * HOUR
                if r.start_at < at + HOUR and r.end_at > at:
                    row[h] -= r.gpus
        out[i] = row
    return out


def _held_slot(w: Workload, index: dict[str, int], issued: datetime) -> tuple[int, int] | None:
    """Return a scheduled workload's (node index, start offset): the slot it holds, if any."""
    if w.status != "scheduled" or w.node_id not in index or w.planned_start_at is None:
        return None
    offset = (w.planned_start_at - issued) / HOUR
    return (index[w.node_id], int(offset)) if offset >= 0 and offset == int(offset) else None


def _pin_row(w: Workload, nodes: list[ComputeNode], issued: datetime, horizon: int) -> np.ndarray:
    row = np.zeros((len(nodes), horizon))
    if w.node_id is None or w.planned_start_at is None:
        return row
    site = next((i for i, n in enumerate(nodes) if n.id == w.node_id), None)
    if site is None:
        return row
    end = w.planned_start_at + timedelta(hours=w.duration_hours)
    for h in range(horizon):
        at = issued + h * HOUR
        if w.planned_start_at < at + HOUR and end > at:
            row[site, h] = w.gpu_count
    return row


def plan_horizon(*, session: Session, now: datetime) -> int:
    """Return the most hours a joint plan at `now` forecasts: `HORIZON_HOURS`, or longer work."""
    return max(
        [HORIZON_HOURS] + [math.ceil(w.duration_hours) for w in free_work(session=session, now=now)]
    )


def plan_jointly(
    *,
    session: Session,
    grid: GridSource,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    objective: Objective = "carbon",
    time_budget_s: float = PLAN_TIME_BUDGET_S,
    force: Collection[str] = frozenset(),
    forecasts: ForecastProvider | None = None,
    move_running: bool = True,
) -> list[JointSlot]:
    """Plan every free workload not yet decided on this hour jointly; write nothing.

    Scheduled work decided on this hour keeps its window (it counts as committed); pending work
    decided on this hour waits for the next hour. Work named in `force` (an incident's) is
    planned even when decided on this hour. Returns one slot per planned workload.
    `forecasts` is the process's forecast provider (`tools.broker.windows.forecast_grid`).
    With `move_running` (the default) routed and running work may move to make room for work
    the plan starts now (`tools.broker.make_room`), and a blocking charge is at most the cost
    of such a move; without it running work stays where it is.
    """
    issued = floor_hour(now)
    decided = _decided_this_hour(session, now) - set(force)
    work = [w for w in free_work(session=session, now=now) if w.id not in decided]
    nodes = list(repo.list_nodes(session=session))
    if not work or not nodes:
        return []
    held = {
        w.id
        for w in free_work(session=session, now=now)
        if w.status == "scheduled" and w.id not in decided
    }
    horizon = max([HORIZON_HOURS] + [math.ceil(w.duration_hours) for w in work])
    zones = sorted({n.zone for n in nodes})
    fc = forecast_grid(grid=grid, zones=zones, now=now, horizon=horizon, forecasts=forecasts)
    rows = [fc.row(n.zone) for n in nodes]
    kw = np.array([n.power_kw_per_gpu for n in nodes], dtype=np.float64)
    index = {n.id: i for i, n in enumerate(nodes)}
    jobs: dict[str, tuple[Workload, PlanJob]] = {}
    for w in work:
        spec = WorkloadView.of(w).spec()
        cands, _ = evaluate_nodes(
            session=session,
            grid=grid,
            spec=spec,
            now=now,
            weights=weights,
            exclude_workload_id=w.id,
            room_now=False,
        )
        eligible = np.zeros(len(nodes), dtype=bool)
        eligible[[index[c.node_id] for c in cands]] = True
        job = PlanJob(
            key=w.id,
            gpus=float(w.gpu_count),
            hours=math.ceil(w.duration_hours),
            latest_start=latest_start(spec, issued, horizon),
            eligible=eligible,
            planned=_held_slot(w, index, issued),
            movable=w.movable,
        )
        jobs[w.id] = (w, job)
    base = PlanGrid(
        ci=fc.ci[rows],
        price=fc.price[rows],
        capacity=np.array([n.gpu_count for n in nodes], dtype=np.float64),
        committed=_committed(session, nodes, held, issued, horizon, now),
        kw_per_gpu=kw,
    )

    arrivals = stored_history(session=session, now=now)
    running = (
        running_work(session=session, nodes=nodes, issued=issued, now=now) if move_running else None
    )

    def solve(pinned: set[str]) -> dict[str, JointSlot]:
        committed = base.committed.copy()
        for key in pinned:
            committed += _pin_row(jobs[key][0], nodes, issued, horizon)
        result = plan_hour(
            [job for key, (_, job) in jobs.items() if key not in pinned],
            replace(base, committed=committed),
            objective=objective,
            weights=weights,
            time_budget_s=time_budget_s,
            arrivals=arrivals,
            running=running,
        )
        room: dict[str, list[RoomMove]] = {}
        for m in result.moves:
            room.setdefault(m.for_key, []).append(
                RoomMove(
                    workload_id=m.key,
                    from_node=nodes[m.from_site].id,
                    to_node=nodes[m.to_site].id,
                    for_workload=m.for_key,
                    kg_before=m.cost_before,
                    kg_after=m.cost_after,
                )
            )
        out: dict[str, JointSlot] = {}
        for slot in result.slots:
            w, job = jobs[slot.key]
            start_at = issued + slot.start * HOUR
            node = nodes[slot.site]
            kg = window_kg(
                fc, node.zone, WorkloadView.of(w).spec(), node.power_kw_per_gpu, start_at
            )
            out[w.id] = replace(
                _slot(w, node.id, start_at, kg, fc, nodes, job, result.method),
                room=tuple(room.get(w.id, ())),
            )
        for key in result.unplaced:
            w, job = jobs[key]
            out[key] = _slot(w, None, None, None, fc, nodes, job, result.method)
        for key in pinned:
            w, job = jobs[key]
            out[key] = replace(_slot(w, None, None, None, fc, nodes, job, "kept"), pinned=True)
        return out

    free_plan = solve(set())
    marginal = {k for k, s in free_plan.items() if s.pinned and not _same(s, jobs[k][0])}
    slots = free_plan
    if marginal:
        kept_plan = solve(marginal)
        free_rank, kept_rank = _rank(free_plan, jobs), _rank(kept_plan, jobs)
        if free_rank[:2] < kept_rank[:2] or (
            free_rank[:2] == kept_rank[:2] and free_rank[2] <= kept_rank[2] * (1 - DEFER_MIN_SAVING)
        ):
            note = (
                f"the joint plan with this move has {free_rank[2]:.1f} kg CO2 by forecast "
                f"vs {kept_rank[2]:.1f} kg keeping the planned windows"
            )
            slots = {
                k: replace(s, pinned=False, note=note) if k in marginal else s
                for k, s in free_plan.items()
            }
        else:
            slots = kept_plan
    return [slots[w.id] for w in work if w.id in slots]


def _slot(
    w: Workload,
    node_id: str | None,
    start_at: datetime | None,
    kg: float | None,
    fc: ZoneForecast,
    nodes: list[ComputeNode],
    job: PlanJob,
    method: str,
) -> JointSlot:
    current = _current_kg(w, fc, nodes)
    keeps = job.eligible is not None and any(
        ok and n.id == w.node_id for ok, n in zip(job.eligible.tolist(), nodes, strict=True)
    )
    same = node_id == w.node_id and start_at == w.planned_start_at
    better = (
        current is not None
        and kg is not None
        and current > 0
        and (current - kg) / current >= DEFER_MIN_SAVING
    )
    pinned = w.status == "scheduled" and keeps and current is not None and (same or not better)
    return JointSlot(
        workload_id=w.id,
        status=w.status,
        node_id=node_id,
        start_at=start_at,
        co2_kg=kg,
        current_kg=current,
        pinned=pinned,
        method=method,
    )


def _current_kg(w: Workload, fc: ZoneForecast, nodes: list[ComputeNode]) -> float | None:
    node = next((n for n in nodes if n.id == w.node_id), None)
    if w.status != "scheduled" or node is None or w.planned_start_at is None:
        return None
    return window_kg(
        fc, node.zone, WorkloadView.of(w).spec(), node.power_kw_per_gpu, w.planned_start_at
    )
