"""The background loop starts scheduled work at its planned hour and re-plans it once an hour."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from graphs.incident_watch import run_schedule
from store import repo
from store.models import ComputeNode
from tests.graphs.conftest import T0
from tests.unit.test_scheduling import DailyGrid
from tools.broker.routing import route_workload, submit_workload
from tools.broker.workloads import JobSpec
from tools.clock import FixedClock

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
    assert start.hour == 0  # FR's clean hours

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
