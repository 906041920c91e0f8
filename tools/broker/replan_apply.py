"""Apply a joint re-plan (`tools.broker.replan.plan_jointly`), one workload at a time.

`apply_slot` applies one job's slot in the caller's transaction: now -> route it (pending) or
start it (scheduled) now, GPUs taken under the node lock; later -> reserve from that hour with
`repo.reserve_gpus`, which is refused when capacity changed meanwhile: the old plan stands and
the decision says so. Every outcome is a recorded decision with every candidate.
`apply_order` orders the slots so capacity is given up before it is taken. Functions flush and
never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store import repo
from store.models import RoutingDecision, Workload
from tools.broker.decisions import DecisionView, place_on, record_decision
from tools.broker.placement import Candidate, evaluate_nodes, take_first
from tools.broker.replan import JointSlot
from tools.broker.room_moves import move_for_room
from tools.broker.scheduling import start_workload
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.windows import DEFER_MIN_SAVING, StartPlan
from tools.broker.workloads import WorkloadView, load_workload
from tools.grid import GridSource
from tools.grid.models import floor_hour


def apply_slot(
    *,
    session: Session,
    grid: GridSource,
    slot: JointSlot,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    force: bool = False,
) -> DecisionView | None:
    """Apply one workload's joint slot in the caller's transaction; record the decision.

    None when the workload is no longer free (started, cancelled, or re-planned by another
    watcher since the plan was made): nothing is written. With `force` (an incident's re-plan,
    planned with `plan_jointly(force=...)`) a decision made earlier this hour does not stop it.
    A slot with `room` moves makes them and takes its node now in one savepoint; when either
    falls through, nothing of it stays and the slot is applied without the moves.
    """
    if not slot.room or slot.pinned:
        return _apply(session, grid, slot, now, weights, force, room="")
    moved = ", ".join(f"{m.workload_id} to {m.to_node}" for m in slot.room)
    try:
        with session.begin_nested():
            refused = move_for_room(
                session=session, grid=grid, moves=slot.room, now=now, weights=weights
            )
            if refused:
                raise _NoRoom(refused)
            room = f"; moved running work to make room: {moved}"
            decision = _apply(session, grid, slot, now, weights, force, room=room)
            if decision is None or decision.node_id != slot.node_id:
                raise _NoRoom(f"{slot.workload_id} did not take {slot.node_id} now")
            return decision
    except _NoRoom as why:
        room = f"; running work was not moved to make room ({why})"
        return _apply(session, grid, slot, now, weights, force, room=room)


class _NoRoom(Exception):
    """The moves for a slot, or the slot itself, fell through; its savepoint rolls back."""


def _apply(
    session: Session,
    grid: GridSource,
    slot: JointSlot,
    now: datetime,
    weights: ScoreWeights,
    force: bool,
    *,
    room: str,
) -> DecisionView | None:
    w = load_workload(session=session, workload_id=slot.workload_id, for_update=True)
    still_free = w.status == slot.status and (
        w.status == "pending"
        or (w.status == "scheduled" and w.planned_start_at is not None and w.planned_start_at > now)
    )
    if not still_free or (not force and floor_hour(now) in _decided_hours(session, w.id, now)):
        return None
    spec = WorkloadView.of(w).spec()
    candidates, rejected = evaluate_nodes(
        session=session,
        grid=grid,
        spec=spec,
        now=now,
        weights=weights,
        exclude_workload_id=w.id,
        lock=True,
        room_now=False,
    )
    pending = w.status == "pending"
    record = partial(
        record_decision,
        session=session,
        workload=w,
        kind="route" if pending else "replan",
        previous_node_id=w.node_id,
        previous_score=w.score,
        improvement=None,
        candidates=candidates,
        rejected=rejected,
        weights=weights,
        grid=grid,
        now=now,
    )
    current = next((c for c in candidates if c.node_id == w.node_id), None)
    kept = _plan(w, current, w.planned_start_at, slot.current_kg, slot.current_kg, now, "")
    chosen = next((c for c in candidates if c.node_id == slot.node_id), None)
    if chosen is None or slot.start_at is None or slot.co2_kg is None or slot.pinned:
        why = (
            "no move saves "
            f"{DEFER_MIN_SAVING:.0%} of forecast CO2 over the planned window in the joint "
            "re-plan of all free work; the plan stands"
            if slot.pinned
            else (
                f"the planned node {slot.node_id} is no longer eligible; planned again next hour"
                if slot.node_id is not None and chosen is None
                else "fits nowhere within its deadline in the joint re-plan of all free work"
            )
        )
        if pending:
            return record(outcome="no_eligible_node", node=None, reason=why)
        return record(outcome="kept", node=current, reason=why, plan=kept)
    now_kg = candidates[0].co2_kg if candidates else slot.co2_kg
    gain = ""
    if slot.current_kg:
        gain = f"{(slot.current_kg - slot.co2_kg) / slot.current_kg:.0%} less forecast CO2; "
    if slot.note:
        gain = f"{slot.note}; "
    if slot.start_at <= floor_hour(now):
        why = (
            f"joint re-plan of all free work ({slot.method}): {gain}starts now on "
            f"{chosen.node_id}{room}"
        )
        if not pending:
            return start_workload(
                session=session,
                grid=grid,
                workload_id=w.id,
                now=now,
                weights=weights,
                by_operator=False,
                prefer=chosen.node_id,
                why=why,
            )
        ordered = sorted(candidates, key=lambda c: c.node_id != chosen.node_id)
        best = take_first(
            session=session, candidates=ordered, gpus=w.gpu_count, now=now, hours=w.duration_hours
        )
        if best is None:
            return record(
                outcome="no_eligible_node",
                node=None,
                reason=f"{why}, but no eligible node has room now; it stays pending",
            )
        if best.node_id != chosen.node_id:
            why = f"{why}; {chosen.node_id} had no room now, so {best.node_id}"
        w.status = "routed"
        place_on(w, best, now)
        w.planned_start_at = None
        plan = _plan(w, best, now, best.co2_kg, now_kg, now, why)
        return record(outcome="routed", node=best, reason=why, plan=plan)
    why = (
        f"joint re-plan of all free work ({slot.method}): {gain}{chosen.node_id} "
        f"({chosen.zone}) from {slot.start_at.isoformat()}, {slot.co2_kg:.1f} kg CO2 by forecast"
    )
    if not repo.reserve_gpus(
        session=session,
        workload_id=w.id,
        node_id=chosen.node_id,
        gpus=w.gpu_count,
        start=slot.start_at,
        end=slot.start_at + timedelta(hours=w.duration_hours),
        now=now,
    ):
        refused = "the planned window was taken meanwhile; the plan stands"
        if pending:
            return record(outcome="no_eligible_node", node=None, reason=f"{refused} (pending)")
        return record(outcome="kept", node=current, reason=refused, plan=kept)
    w.status = "scheduled"
    place_on(w, chosen, now)
    w.planned_start_at = slot.start_at
    w.co2_kg_estimate = slot.co2_kg
    plan = _plan(w, chosen, slot.start_at, slot.co2_kg, now_kg, now, why)
    return record(
        outcome="scheduled" if pending else "rescheduled", node=chosen, reason=why, plan=plan
    )


def _decided_hours(session: Session, workload_id: str, now: datetime) -> set[datetime]:
    """Return {this hour} when the workload was decided on since this hour began."""
    last = session.scalar(
        select(func.max(RoutingDecision.decided_at)).where(
            RoutingDecision.workload_id == workload_id
        )
    )
    if last is None:
        return set()
    if last.tzinfo is None:
        last = last.replace(tzinfo=now.tzinfo)
    return {floor_hour(now)} if last >= floor_hour(now) else set()


def _plan(
    w: Workload,
    node: Candidate | None,
    start_at: datetime | None,
    kg: float | None,
    now_kg: float | None,
    now: datetime,
    why: str,
) -> StartPlan | None:
    if node is None or start_at is None or kg is None:
        return None
    base = now_kg if now_kg is not None else kg
    return StartPlan(
        start_at=start_at,
        node_id=node.node_id,
        zone=node.zone,
        co2_kg=kg,
        co2_kg_if_started_now=base,
        saving_pct=100.0 * (base - kg) / base if base > 0 else 0.0,
        why=why or "the plan stands",
        objective="carbon",
        forecast_issued_at=floor_hour(now),
    )


def apply_order(slots: list[JointSlot], now: datetime) -> list[JointSlot]:
    """Order slots so capacity is given up before it is taken.

    Scheduled work moving to a later window first (releasing its old one), then work starting
    now that running work makes room for (the moves free GPUs others may be planned on), then
    the rest of the work starting now, then the rest (pending work reserving a later window,
    kept plans).
    """
    hour = floor_hour(now)

    def key(s: JointSlot) -> tuple[int, str]:
        moves = s.start_at is not None and s.node_id is not None and not s.pinned
        if moves and s.start_at is not None and s.start_at <= hour:
            return (1 if s.room else 2, s.workload_id)
        if moves and s.status == "scheduled":
            return (0, s.workload_id)
        return (3, s.workload_id)

    return sorted(slots, key=key)
