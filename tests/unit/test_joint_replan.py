"""The hourly joint re-plan: all pending and scheduled-not-started work planned in one call of the
planner against running work, applied workload by workload. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from store import repo
from store.models import ComputeNode, GpuReservation, Organization
from tests.unit.test_scheduling import CLEAN_START, DailyGrid
from tools.broker.replan import plan_jointly
from tools.broker.replan_apply import apply_order, apply_slot
from tools.broker.routing import route_workload, submit_workload
from tools.broker.workloads import JobSpec
from tools.grid import GridReading

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


class FlatGrid:
    """FR a flat 50 g/kWh, every other zone a flat 400."""

    name = "sim"

    def reading(self, zone: str, at: datetime) -> GridReading:
        ts = at.replace(minute=0, second=0, microsecond=0)
        ci = 50.0 if zone == "FR" else 400.0
        return GridReading(
            zone=zone, ts=ts, source="sim", carbon_intensity=ci, price_eur_per_mwh=80
        )

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        return [self.reading(zone, start + h * HOUR) for h in range(hours)]


def _node(node_id: str, zone: str) -> ComputeNode:
    return ComputeNode(
        id=node_id,
        name=node_id,
        owner_id="dc",
        kind="datacenter",
        zone=zone,
        gpu_model="H100",
        gpu_count=8,
        reserved_gpus=0,
        power_kw_per_gpu=0.7,
        price_per_gpu_hour_minor=200,
        currency="EUR",
        status="online",
        created_at=NOW,
    )


def seed(session) -> None:
    """Two 8-GPU nodes: fr-1 (clean) and de-1 (dirty)."""
    session.add_all(
        [
            Organization(id="acme", name="Acme", kind="enterprise", created_at=NOW),
            Organization(id="dc", name="DC", kind="datacenter", created_at=NOW),
        ]
    )
    session.flush()
    session.add_all([_node("fr-1", "FR"), _node("de-1", "DE")])
    session.flush()


def submit_pair(session) -> tuple[str, str]:
    """A small flexible job (4 GPUs x 2 h, 24 h to its deadline), submitted first, and a large
    job without slack (8 GPUs x 10 h, due in 10 h): both want the one clean node."""
    small = submit_workload(
        session=session,
        org_id="acme",
        name="small",
        spec=JobSpec(gpu_count=4, duration_hours=2, deadline=NOW + 24 * HOUR),
        now=NOW,
    )
    large = submit_workload(
        session=session,
        org_id="acme",
        name="large",
        spec=JobSpec(gpu_count=8, duration_hours=10, deadline=NOW + 10 * HOUR),
        now=NOW,
    )
    return small.id, large.id


def _kg(session, *ids: str) -> float:
    return sum(repo.get_workload(session=session, workload_id=i).co2_kg_estimate for i in ids)


def run_joint(session, grid, now):
    out = {}
    for slot in apply_order(plan_jointly(session=session, grid=grid, now=now), now):
        d = apply_slot(session=session, grid=grid, slot=slot, now=now)
        if d is not None:
            out[slot.workload_id] = d
    return out


def test_the_joint_plan_beats_placing_jobs_one_at_a_time(session):
    grid = FlatGrid()
    seed(session)
    small, large = submit_pair(session)
    session.commit()

    # One at a time, in arrival order: the small job takes the clean node now, the large one
    # (no slack) must go to the dirty node.
    for wid in (small, large):
        route_workload(session=session, grid=grid, workload_id=wid, now=NOW)
    one_by_one = _kg(session, small, large)
    assert repo.get_workload(session=session, workload_id=large).node_id == "de-1"
    session.rollback()

    plan_slots_before_apply = {
        x.workload_id: x for x in plan_jointly(session=session, grid=grid, now=NOW)
    }
    decisions = run_joint(session, grid, NOW)
    session.commit()
    big = repo.get_workload(session=session, workload_id=large)
    little = repo.get_workload(session=session, workload_id=small)
    assert (big.status, big.node_id) == ("routed", "fr-1")
    assert (little.status, little.node_id) == ("scheduled", "fr-1")
    assert little.planned_start_at >= NOW + 10 * HOUR  # after the large job, still clean
    assert little.planned_start_at + 2 * HOUR <= NOW + 24 * HOUR
    joint = _kg(session, small, large)
    assert joint == pytest.approx(2.8 + 0.28, rel=1e-3)  # the fitted model shrinks a little
    assert one_by_one == pytest.approx(0.28 + 22.4)
    assert decisions[large].outcome == "routed" and decisions[small].outcome == "scheduled"
    assert {c["node_id"] for c in decisions[small].candidates} == {"fr-1", "de-1"}
    (held,) = session.scalars(select(GpuReservation)).all()
    assert (held.workload_id, held.node_id, held.start_at) == (
        small,
        "fr-1",
        little.planned_start_at,
    )
    # A slot applied by another watcher meanwhile is a no-op here.
    stale = plan_slots_before_apply[small]
    assert apply_slot(session=session, grid=grid, slot=stale, now=NOW) is None
    # Planned once an hour: a second pass in the same hour changes nothing.
    assert run_joint(session, grid, NOW + 20 * timedelta(minutes=1)) == {}


def test_scheduled_work_yields_the_clean_node_to_work_without_slack(session):
    grid = FlatGrid()
    seed(session)
    small = submit_workload(
        session=session,
        org_id="acme",
        name="small",
        spec=JobSpec(gpu_count=4, duration_hours=2, deadline=NOW + 24 * HOUR),
        now=NOW - HOUR,
    )
    session.flush()
    # Scheduled in an earlier hour on the clean node, soon.
    assert repo.reserve_gpus(
        session=session,
        workload_id=small.id,
        node_id="fr-1",
        gpus=4,
        start=NOW + HOUR,
        end=NOW + 3 * HOUR,
        now=NOW - HOUR,
    )
    w = repo.get_workload(session=session, workload_id=small.id)
    w.status, w.node_id, w.planned_start_at = "scheduled", "fr-1", NOW + HOUR
    session.commit()
    # Its own reservation never blocks the scheduled job. Alone, moving it gains nothing
    # (a flat grid): its window stands.
    alone = plan_jointly(session=session, grid=grid, now=NOW - HOUR + timedelta(minutes=59))
    assert [s.pinned for s in alone if s.workload_id == small.id] == [True]
    large = submit_workload(
        session=session,
        org_id="acme",
        name="large",
        spec=JobSpec(gpu_count=8, duration_hours=10, deadline=NOW + 10 * HOUR),
        now=NOW,
    )
    session.commit()
    # With the large job: moving the small one gains nothing for itself, but the joint plan
    # with the move has far less CO2 (the large job on the clean node), so it moves.
    decisions = run_joint(session, grid, NOW)
    session.commit()
    big = repo.get_workload(session=session, workload_id=large.id)
    little = repo.get_workload(session=session, workload_id=small.id)
    assert (big.status, big.node_id) == ("routed", "fr-1")
    assert (little.status, little.node_id) == ("scheduled", "fr-1")
    assert little.planned_start_at >= NOW + 10 * HOUR
    assert decisions[small.id].outcome == "rescheduled"
    assert "joint plan with this move" in decisions[small.id].reason


def test_a_refused_reservation_keeps_the_old_plan(session):
    grid = DailyGrid()
    seed(session)
    w = submit_workload(
        session=session,
        org_id="acme",
        name="nightly",
        spec=JobSpec(gpu_count=4, duration_hours=4, deadline=NOW + 24 * HOUR),
        now=NOW,
    )
    d = route_workload(session=session, grid=grid, workload_id=w.id, now=NOW)
    assert d.outcome == "scheduled" and d.node_id == "fr-1"
    session.commit()
    later = NOW + HOUR
    session.get(ComputeNode, "fr-1").status = "offline"  # the planned node went away
    session.commit()
    filler = submit_workload(
        session=session,
        org_id="acme",
        name="filler",
        spec=JobSpec(gpu_count=8, duration_hours=2),
        now=later,
    )
    assert route_workload(session=session, grid=grid, workload_id=filler.id, now=later).node_id
    session.commit()
    (slot,) = plan_jointly(session=session, grid=grid, now=later)
    assert (slot.node_id, slot.pinned) == ("de-1", False)
    assert slot.start_at is not None and slot.start_at >= later + 2 * HOUR  # after the filler
    # Meanwhile other scheduled work reserves all of de-1 for that window.
    blocker = submit_workload(
        session=session,
        org_id="acme",
        name="blocker",
        spec=JobSpec(gpu_count=8, duration_hours=30, deadline=later + 40 * HOUR),
        now=later,
    )
    session.flush()
    assert repo.reserve_gpus(
        session=session,
        workload_id=blocker.id,
        node_id="de-1",
        gpus=8,
        start=slot.start_at,
        end=slot.start_at + 30 * HOUR,
        now=later,
    )
    session.commit()
    kept = apply_slot(session=session, grid=grid, slot=slot, now=later)
    session.commit()
    assert kept is not None and kept.outcome == "kept" and "taken meanwhile" in kept.reason
    again = repo.get_workload(session=session, workload_id=w.id)
    assert (again.status, again.node_id, again.planned_start_at) == (
        "scheduled",
        "fr-1",
        d.start_at,
    )
    held = session.scalars(select(GpuReservation).where(GpuReservation.workload_id == w.id)).one()
    assert (held.node_id, held.start_at) == ("fr-1", d.start_at)


def _schedule_nightly(session, grid) -> tuple[str, object]:
    w = submit_workload(
        session=session,
        org_id="acme",
        name="nightly",
        spec=JobSpec(gpu_count=4, duration_hours=4, deadline=NOW + 24 * HOUR),
        now=NOW,
    )
    d = route_workload(session=session, grid=grid, workload_id=w.id, now=NOW)
    assert d.outcome == "scheduled" and d.start_at is not None
    session.commit()
    return w.id, d


def test_a_scheduled_job_keeps_its_window_unless_a_new_forecast_is_clearly_better(session):
    grid = DailyGrid()
    seed(session)
    wid, d = _schedule_nightly(session, grid)
    assert (d.node_id, d.start_at) == ("fr-1", CLEAN_START)
    # Decided this hour: the hourly re-plan leaves it alone until the next hour.
    assert plan_jointly(session=session, grid=grid, now=NOW + 30 * timedelta(minutes=1)) == []
    later = NOW + 2 * HOUR
    kept = run_joint(session, grid, later)[wid]
    session.commit()
    assert (kept.kind, kept.outcome, kept.start_at) == ("replan", "kept", CLEAN_START)
    assert "the plan stands" in kept.reason
    assert run_joint(session, grid, later + 30 * timedelta(minutes=1)) == {}  # once an hour
    # The source revises DE: clean all along, so the newest forecast has it clean from now on.
    revised = DailyGrid()
    revised.spikes["DE"] = (NOW - 7 * 24 * HOUR, 5.0)
    moved = run_joint(session, revised, NOW + 3 * HOUR)[wid]
    session.commit()
    assert (moved.kind, moved.outcome, moved.node_id) == ("start", "started", "de-1")
    assert "75% less forecast CO2" in moved.reason
    got = repo.get_workload(session=session, workload_id=wid)
    assert (got.status, got.node_id, got.planned_start_at) == ("routed", "de-1", None)
    assert session.scalars(select(GpuReservation)).all() == []


def test_the_joint_replan_moves_scheduled_work_off_a_node_that_went_away(session):
    grid = DailyGrid()
    seed(session)
    session.add(_node("fr-2", "FR"))
    session.commit()
    wid, d = _schedule_nightly(session, grid)
    assert d.node_id in {"fr-1", "fr-2"}  # two identical nodes: either
    other = "fr-2" if d.node_id == "fr-1" else "fr-1"
    session.get(ComputeNode, d.node_id).status = "offline"
    session.commit()
    moved = run_joint(session, grid, NOW + HOUR)[wid]
    session.commit()
    assert (moved.kind, moved.outcome, moved.node_id) == ("replan", "rescheduled", other)
    # within FR's clean hours (00:00-06:00), all equally clean
    assert CLEAN_START <= moved.start_at <= CLEAN_START + 2 * HOUR
    (r,) = session.scalars(select(GpuReservation)).all()
    assert (r.workload_id, r.node_id, r.start_at) == (wid, other, moved.start_at)


def test_forced_work_is_replanned_although_decided_this_hour(session):
    """An incident names the work it affects: planned and applied again within the hour."""
    grid = DailyGrid()
    seed(session)
    wid, d = _schedule_nightly(session, grid)
    session.get(ComputeNode, "fr-1").status = "offline"  # its node went away this hour
    session.commit()
    soon = NOW + 10 * timedelta(minutes=1)
    assert plan_jointly(session=session, grid=grid, now=soon) == []
    (slot,) = plan_jointly(session=session, grid=grid, now=soon, force={wid})
    assert (slot.workload_id, slot.node_id, slot.pinned) == (wid, "de-1", False)
    assert apply_slot(session=session, grid=grid, slot=slot, now=soon) is None
    moved = apply_slot(session=session, grid=grid, slot=slot, now=soon, force=True)
    session.commit()
    assert moved is not None and moved.outcome in {"started", "rescheduled"}
    assert (moved.node_id, moved.previous_node_id) == ("de-1", d.node_id)
    assert repo.get_workload(session=session, workload_id=wid).node_id == "de-1"


def test_the_replan_keeps_the_clean_large_node_free_after_large_jobs_were_seen(session):
    """fr-1 (8 GPUs) and fr-small (4 GPUs, a little more power per GPU) are clean, de-1 (8 GPUs)
    dirty. A long 2-GPU job goes to fr-1 until a large job without slack has been submitted in
    the last week: then, when running work stays where it is, fr-1 is worth keeping free for
    the next one, and it takes fr-small. When running work may move, it takes fr-1 still: it
    can move to fr-small when a large job comes, at a small cost; unless it cannot move."""
    seed(session)
    small_node = _node("fr-small", "FR")
    small_node.gpu_count, small_node.power_kw_per_gpu = 4, 0.8
    session.add(small_node)
    session.flush()

    def place(move_running: bool = False, movable: bool = True) -> str | None:
        w = submit_workload(
            session=session,
            org_id="acme",
            name="long",
            spec=JobSpec(gpu_count=2, duration_hours=16, deadline=NOW + 40 * HOUR, movable=movable),
            now=NOW,
        )
        (slot,) = [
            s
            for s in plan_jointly(
                session=session, grid=FlatGrid(), now=NOW, move_running=move_running
            )
            if s.workload_id == w.id
        ]
        repo.get_workload(session=session, workload_id=w.id).status = "cancelled"
        session.flush()
        return slot.node_id

    assert place() == "fr-1"
    seen = submit_workload(
        session=session,
        org_id="acme",
        name="large",
        spec=JobSpec(gpu_count=8, duration_hours=10, deadline=NOW - 38 * HOUR),
        now=NOW - 48 * HOUR,
    )
    repo.get_workload(session=session, workload_id=seen.id).status = "completed"
    session.flush()
    assert place() == "fr-small"
    assert place(move_running=True) == "fr-1"
    assert place(move_running=True, movable=False) == "fr-small"  # it could not move off
