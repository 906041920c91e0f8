"""Running work in the joint re-plan: what may move, and moving it to make room.

The joint re-plan (`tools.broker.replan.plan_jointly`) passes the work holding GPUs now (routed
or running) to the planner, which may move some of it so that a workload it starts now starts
on a cleaner node (`tools.broker.make_room`). `running_work` reads that work from the store;
`move_for_room` makes the moves in the starting workload's transaction, all or none (a
savepoint): each moved workload is re-checked (still on its node, moves left, the new node still
eligible and with room for its hours left), takes its GPUs there and gives them up where it was,
keeps the hours it has left, counts a reroute, and gets a recorded `reroute` decision with every
candidate and the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from store import repo
from store.models import ComputeNode, Workload
from tools.broker.decisions import place_on, record_decision
from tools.broker.placement import evaluate_nodes, static_rejection, take_first
from tools.broker.plan_types import RunningJob
from tools.broker.rerouting import MAX_REROUTES
from tools.broker.scoring import ScoreWeights
from tools.broker.workloads import WorkloadView, load_workload
from tools.grid import GridSource
from tools.grid.models import HOUR


@dataclass(frozen=True)
class RoomMove:
    """A running workload moved so that `for_workload` can start on the node it leaves."""

    workload_id: str
    from_node: str
    to_node: str
    for_workload: str
    kg_before: float
    """Forecast kg CO2 of the plan and the moved work without the moves."""
    kg_after: float
    """The same with them."""


def _end(w: Workload, now: datetime) -> datetime:
    """Return when active work ends as `repo.hourly_use` counts it (at least `now`)."""
    began = w.started_at or w.routed_at or now
    return max(began + timedelta(hours=w.duration_hours), now)


def running_work(
    *,
    session: Session,
    nodes: Sequence[ComputeNode],
    issued: datetime,
    now: datetime,
) -> list[RunningJob]:
    """Return the routed and running workloads on `nodes` as the planner's running jobs.

    Work that is not `movable` (it cannot checkpoint), has no hours or moves left is left out.
    Hours left count from `issued` (the plan's first hour) as `repo.hourly_use` does. A job may
    move to the nodes `placement.static_rejection` accepts for it (online, GPU model, zones):
    no query per workload; the rest of `evaluate_nodes` is checked when a move is made.
    """
    index = {n.id: i for i, n in enumerate(nodes)}
    stmt = (
        select(Workload)
        .where(Workload.status.in_(repo.ACTIVE_WORKLOAD_STATUSES), Workload.node_id.is_not(None))
        .order_by(Workload.id)
    )
    out: list[RunningJob] = []
    for w in session.scalars(stmt):
        if w.node_id not in index:
            continue
        left = math.ceil((_end(w, now) - issued) / HOUR)
        if left <= 0 or w.reroute_count >= MAX_REROUTES or not w.movable:
            continue
        spec = WorkloadView.of(w).spec()
        ok = np.array([static_rejection(n, spec) is None for n in nodes], dtype=bool)
        moves_left = MAX_REROUTES - w.reroute_count
        out.append(RunningJob(w.id, index[w.node_id], float(w.gpu_count), left, moves_left, ok))
    return out


class _Refused(Exception):
    """A move can no longer be made; the savepoint rolls every move back."""


def move_for_room(
    *,
    session: Session,
    grid: GridSource,
    moves: Sequence[RoomMove],
    now: datetime,
    weights: ScoreWeights,
) -> str | None:
    """Make `moves` in the caller's transaction, all or none; return None, or why none was made."""
    try:
        with session.begin_nested():
            # Workload rows first, in id order, then nodes (as every reroute locks them).
            for workload_id in sorted({m.workload_id for m in moves}):
                load_workload(session=session, workload_id=workload_id, for_update=True)
            for move in moves:
                _move(session, grid, move, now, weights)
    except _Refused as refused:
        return str(refused)
    return None


def _move(
    session: Session, grid: GridSource, move: RoomMove, now: datetime, weights: ScoreWeights
) -> None:
    w = load_workload(session=session, workload_id=move.workload_id, for_update=True)
    if w.status not in repo.ACTIVE_WORKLOAD_STATUSES or w.node_id != move.from_node:
        raise _Refused(f"{w.id} is no longer routed or running on {move.from_node}")
    if w.reroute_count >= MAX_REROUTES:
        raise _Refused(f"{w.id} already moved {w.reroute_count} times")
    if not w.movable:
        raise _Refused(f"{w.id} is not movable (it cannot checkpoint)")
    hours = max((_end(w, now) - now) / HOUR, 1e-6)
    spec = WorkloadView.of(w).spec().model_copy(update={"duration_hours": hours})
    candidates, rejected = evaluate_nodes(
        session=session,
        grid=grid,
        spec=spec,
        now=now,
        weights=weights,
        exclude_workload_id=w.id,
        lock=True,
    )
    target = next((c for c in candidates if c.node_id == move.to_node), None)
    if target is None or not take_first(
        session=session, candidates=[target], gpus=w.gpu_count, now=now, hours=hours
    ):
        raise _Refused(f"{move.to_node} no longer has room for {w.id}")
    current = next((c for c in candidates if c.node_id == move.from_node), None)
    previous_score = current.score if current else w.score
    repo.release_gpus(session=session, node_id=move.from_node, gpus=w.gpu_count)
    w.reroute_count += 1
    began = w.routed_at
    place_on(w, target, now)
    if w.started_at is None and began is not None:
        w.routed_at = began  # it keeps the hours it has left (`repo.hourly_use` counts from here)
    record_decision(
        session=session,
        workload=w,
        kind="reroute",
        outcome="rerouted",
        node=target,
        previous_node_id=move.from_node,
        previous_score=previous_score,
        improvement=None,
        reason=(
            f"makes room on {move.from_node} for {move.for_workload}, which starts now: "
            f"forecast CO2 of the joint plan and the moved work {move.kg_before:.1f} -> "
            f"{move.kg_after:.1f} kg"
        ),
        candidates=candidates,
        rejected=rejected,
        weights=weights,
        grid=grid,
        now=now,
    )
