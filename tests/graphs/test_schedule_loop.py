"""The background loop starts scheduled work at its planned hour and re-plans it once an hour."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from agents.offline import OfflineChatModel
from graphs.context import DEFAULT_ORG_ID, Context
from graphs.incident_watch import run_schedule
from store import repo
from store.db import make_session_factory
from store.models import ComputeNode
from tests.graphs.conftest import T0
from tests.unit.test_joint_replan import NOW, FlatGrid, seed, submit_pair
from tests.unit.test_room_moves import _setup
from tests.unit.test_scheduling import DailyGrid
from tools.broker.routing import route_workload, submit_workload
from tools.broker.workloads import JobSpec
from tools.clock import FixedClock
from tools.integrations.incidentio import DemoAlerts

HOUR = timedelta(hours=1)


def _schedule(ctx) -> tuple[str, object]:
    spec = JobSpec(
        gpu_count=2, duration_hours=3, deadline=T0 + 24 * HOUR, allowed_zones=["FR", "DE"]
    )
    with ctx.sessions.begin() as s:
        w = submit_workload(session=s, org_id="acme-ai", name="nightly", spec=spec, now=T0)
        d = route_workload(session=s, grid=ctx.grid, workload_id=w.id, now=T0)
    assert d.outcome == "scheduled" and d.start_at is not None and d.start_at > T0
    return w.id, d


def _at(ctx, when):
    return replace(ctx, clock=FixedClock(when))


def test_the_loop_starts_scheduled_work_at_its_hour_and_not_before(ctx):
    ctx = replace(ctx, grid=DailyGrid())
    wid, d = _schedule(ctx)
    start = d.start_at
    assert start.hour < 6  # within FR's clean hours (00:00-06:00), all equally clean

    before = run_schedule(_at(ctx, T0 + HOUR))
    assert before.started == [] and before.kept == [wid]  # re-planned once, plan stands
    assert run_schedule(_at(ctx, T0 + HOUR + timedelta(minutes=30))).kept == []  # same hour
    assert run_schedule(_at(ctx, start - timedelta(minutes=1))).started == []

    done = run_schedule(_at(ctx, start))
    assert done.started == [wid]
    with ctx.sessions() as s:
        w = repo.get_workload(session=s, workload_id=wid)
        assert w.status == "routed" and w.node_id == d.node_id and w.routed_at == start
        assert s.get(ComputeNode, d.node_id).allocated_gpus == 2
        assert repo.list_reservations(session=s) == []
        kinds = [(x.kind, x.outcome) for x in repo.list_decisions(session=s, workload_id=wid)]
    assert kinds[0] == ("route", "scheduled") and kinds[-1] == ("start", "started")
    assert run_schedule(_at(ctx, start + HOUR)).started == []


def _flat_context(sessions, *, move_running_work: bool = True) -> Context:
    """A watcher context at NOW over a flat grid, with the offline model and demo alerts."""
    return Context(
        model=OfflineChatModel(clock=FixedClock(NOW), org_id=DEFAULT_ORG_ID),
        sessions=sessions,
        grid=FlatGrid(),
        clock=FixedClock(NOW),
        alerts=DemoAlerts(),
        move_running_work=move_running_work,
    )


def test_the_loop_plans_pending_work_jointly(sqlite_engine):
    """Two pending jobs want the one clean node: the loop starts the large one without slack
    there now and schedules the small flexible one after it, instead of one at a time."""
    sessions = make_session_factory(sqlite_engine)
    with sessions.begin() as s:
        seed(s)
        small, large = submit_pair(s)
    ctx = _flat_context(sessions)
    done = run_schedule(ctx)
    assert (done.routed, done.scheduled, done.unplaced) == ([large], [small], [])
    with sessions() as s:
        big = repo.get_workload(session=s, workload_id=large)
        little = repo.get_workload(session=s, workload_id=small)
        assert (big.status, big.node_id) == ("routed", "fr-1")
        assert (little.status, little.node_id) == ("scheduled", "fr-1")
        assert little.planned_start_at >= NOW + 10 * HOUR
        kinds = [(d.kind, d.outcome) for d in repo.list_decisions(session=s, workload_id=small)]
    assert kinds == [("route", "scheduled")]
    # Once an hour: a second pass in the same hour decides nothing more.
    again = run_schedule(_at(ctx, NOW + timedelta(minutes=30)))
    assert again.routed == again.scheduled == again.kept == again.rescheduled == []
    # At its hour the small job starts where the joint plan put it.
    started = run_schedule(_at(ctx, little.planned_start_at))
    assert started.started == [small]


@pytest.mark.parametrize("allowed", [True, False])
def test_the_loop_moves_running_work_for_work_without_slack_unless_told_not_to(
    sqlite_engine, allowed: bool
):
    """A 1-GPU job runs on the clean node when an 8-GPU job without slack arrives: the loop
    moves the small job and starts the large one there; `move_running_work=False` keeps it."""
    sessions = make_session_factory(sqlite_engine)
    with sessions() as s:
        small, large = _setup(s)
    ctx = _flat_context(sessions, move_running_work=allowed)
    done = run_schedule(ctx)
    assert done.routed == [large]
    with sessions() as s:
        big = repo.get_workload(session=s, workload_id=large)
        moved = repo.get_workload(session=s, workload_id=small)
        assert (big.node_id == "fr-1") is allowed
        assert (moved.node_id != "fr-1", moved.reroute_count) == (allowed, int(allowed))
