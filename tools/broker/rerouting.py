"""Move placed workloads: the 25 % / 5-move rule, failover, and restarts of work.

Rules (exact and tested):
* A reroute moves only when the best alternative is at least 25 % better than the current
  placement's score now, i.e. `current - best >= 0.25 * |current|`; at most 5 reroutes per
  workload. If the current node cannot run it any more the move is a failover and needs no
  improvement.
* Work that is not `movable` (it cannot checkpoint) is kept while its node is online
  (`node_down`); when the node is down it fails over, and if it was running it restarts from the
  beginning there (`reroute_spec`).
* Refused reroutes are recorded too, with every candidate.

Functions flush and never commit: the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

import numpy as np
from sqlalchemy.orm import Session

from store import repo
from store.models import Workload
from tools.broker.decisions import DecisionView, place_on, record_decision
from tools.broker.placement import Candidate, evaluate_nodes, take_first
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.workloads import JobSpec, WorkloadView, load_workload
from tools.errors import RerouteRefusedError
from tools.grid import GridSource

REROUTE_THRESHOLD = 0.25
MAX_REROUTES = 5
_EPS = 1e-9


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


def reroute_options(
    *,
    session: Session,
    grid: GridSource,
    workload: Workload,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> tuple[Candidate | None, Candidate | None]:
    """Return (its node, the best other node) for moving the workload now, without writing.

    Nodes are asked what a reroute would ask (`reroute_spec`), beside the GPUs it holds.
    """
    candidates, _ = evaluate_nodes(
        session=session,
        grid=grid,
        spec=reroute_spec(session=session, workload=workload, now=now),
        now=now,
        weights=weights,
        exclude_workload_id=workload.id,
    )
    current = next((c for c in candidates if c.node_id == workload.node_id), None)
    best = next((c for c in candidates if c.node_id != workload.node_id), None)
    return current, best


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
