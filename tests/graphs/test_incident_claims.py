"""Claims on incidents: unique worker ids, a lease renewed by every step, stale holders fenced."""

import socket
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

import graphs.incident_watch
from agents.offline import OfflineChatModel
from graphs.checkpoint import open_checkpointer
from graphs.context import Context, new_worker_id
from graphs.incident_claims import CLAIM_LEASE, ClaimLostError
from graphs.incident_watch import run_incident, run_incidents, scan
from store import incident_repo
from store.incident_models import Incident, IncidentTransition
from store.models import Workload
from tests.graphs.conftest import T0
from tools.broker.routing import JobSpec, route_workload, submit_workload
from tools.clock import FixedClock
from tools.grid import GridReading
from tools.grid.simulated import SimulatedGrid
from tools.incidents.detection import add_spike

FIVE = ["MONITORING", "ANOMALY_DETECTED", "EVALUATING", "ADAPTING", "RESOLVED"]


@dataclass
class TickingClock:
    """A clock that moves on one minute every time it is read (a slow run)."""

    at: datetime

    def now(self) -> datetime:
        self.at += timedelta(minutes=1)
        return self.at


@pytest.fixture
def saver(sqlite_engine):
    with open_checkpointer(sqlite_engine) as cp:
        yield cp


def _spiked_job(sessions, grid, zone="FR") -> str:
    with sessions.begin() as s:
        spec = JobSpec(gpu_count=2, gpu_model="H100", duration_hours=6, allowed_zones=[zone])
        wl = submit_workload(session=s, org_id="acme-ai", name=f"{zone}-job", spec=spec, now=T0)
        route_workload(session=s, grid=grid, workload_id=wl.id, now=T0)
        s.get(Workload, wl.id).allowed_zones = [zone, "DE"]
        add_spike(
            session=s, zone=zone, carbon_factor=20, price_factor=1, hours=6, reason="t", now=T0
        )
    return wl.id


def _claim(sessions, worker_id, at):
    with sessions.begin() as s:
        inc = incident_repo.claim_incident(
            session=s, worker_id=worker_id, now=at, lease=CLAIM_LEASE
        )
        return inc.id if inc else None


def test_worker_ids_are_unique_per_process_and_name_the_host(sessions, clock):
    ids = {new_worker_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith(f"{socket.gethostname()}-") for i in ids)
    first, second = (
        Context(model=OfflineChatModel(), sessions=sessions, grid=None, clock=clock)
        for _ in range(2)
    )
    assert first.worker_id != second.worker_id


def test_every_step_renews_the_lease_of_a_slow_run(ctx, sessions, saver):
    _spiked_job(sessions, ctx.grid)
    (incident_id,) = scan(ctx)
    assert _claim(sessions, ctx.worker_id, T0) == incident_id
    slow = replace(ctx, clock=TickingClock(T0))
    assert run_incident(slow, saver, incident_id)  # many "minutes" pass during the run
    with sessions() as s:
        inc = s.get(Incident, incident_id)
        assert inc.state == "RESOLVED" and inc.claimed_by == ctx.worker_id
        assert inc.claimed_until > T0 + CLAIM_LEASE + timedelta(minutes=5)
    # The first lease ran out long ago, yet nobody can take the incident from its runner.
    assert _claim(sessions, "other", T0 + CLAIM_LEASE + timedelta(minutes=1)) is None


class FlatGrid:
    """The simulator's readings with one carbon intensity and price everywhere: a spike decides."""

    def __init__(self) -> None:
        self._sim = SimulatedGrid(seed=7)
        self.name = self._sim.name

    def _flat(self, r: GridReading) -> GridReading:
        return r.model_copy(update={"carbon_intensity": 150.0, "price_eur_per_mwh": 60.0})

    def reading(self, zone: str, at: datetime) -> GridReading:
        return self._flat(self._sim.reading(zone, at))

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        return [self._flat(r) for r in self._sim.series(zone, start, hours)]


def test_a_watcher_whose_claim_was_taken_over_writes_nothing(ctx, sessions, saver):
    ctx = replace(ctx, grid=FlatGrid())
    wid = _spiked_job(sessions, ctx.grid)
    (incident_id,) = scan(ctx)
    stale, fresh = replace(ctx, worker_id="stale"), replace(ctx, worker_id="fresh")
    assert _claim(sessions, "stale", T0) == incident_id
    later = T0 + CLAIM_LEASE + timedelta(seconds=1)  # the stale watcher stalled past its lease
    assert _claim(sessions, "fresh", later) == incident_id
    with pytest.raises(ClaimLostError, match="held by 'fresh'"):
        run_incident(replace(stale, clock=FixedClock(later)), saver, incident_id)
    with sessions() as s:
        count = s.scalar(select(func.count()).select_from(IncidentTransition))
        assert count == 1 and s.get(Workload, wid).reroute_count == 0  # nothing written
    assert _claim(sessions, "stale", later) is None  # nor can it take the incident back
    assert run_incident(replace(fresh, clock=FixedClock(later)), saver, incident_id)
    with sessions() as s:
        assert s.get(Incident, incident_id).state == "RESOLVED"
        assert s.get(Workload, wid).reroute_count == 1


def test_a_pass_leaves_a_lost_incident_to_its_new_holder_and_goes_on(
    ctx, sessions, saver, monkeypatch
):
    _spiked_job(sessions, ctx.grid, "FR")
    _spiked_job(sessions, ctx.grid, "GB")
    real = graphs.incident_watch.run_incident
    lost: list[str] = []

    def taken_over_first(context, checkpointer, incident_id):
        if not lost:
            lost.append(incident_id)
            raise ClaimLostError("taken over")
        return real(context, checkpointer, incident_id)

    monkeypatch.setattr(graphs.incident_watch, "run_incident", taken_over_first)
    handled = run_incidents(ctx, saver)
    assert len(handled) == 1 and handled != lost
    with sessions() as s:
        states = {i.id: i.state for i in s.scalars(select(Incident))}
    assert states[lost[0]] == "MONITORING" and states[handled[0]] == "RESOLVED"


def test_a_pass_that_crosses_the_hour_warms_the_new_hours_forecasts_before_the_next_incident(
    ctx, sessions, saver, monkeypatch
):
    # Plans inside an incident's transactions read forecasts from memory only if the pass
    # asked for them first; a slow pass that crosses the hour asks again for the new hour.
    from tests.unit.test_forecast_planning import Scripted
    from tools.grid import ZONE_CODES
    from tools.grid.fallback import FallbackForecaster
    from tools.grid.models import floor_hour

    _spiked_job(sessions, ctx.grid, "FR")
    _spiked_job(sessions, ctx.grid, "GB")
    primary = Scripted(dict.fromkeys(ZONE_CODES, 100.0))
    clock = TickingClock(T0 + timedelta(minutes=50))
    ctx = replace(ctx, clock=clock, forecasts=FallbackForecaster(primary, Scripted({})))
    real = graphs.incident_watch.run_incident
    entered: list[tuple[datetime, set[str]]] = []

    def recording(context, checkpointer, incident_id):
        hour = floor_hour(clock.at)
        entered.append((hour, {z for z, at in primary.calls if at == hour}))
        return real(context, checkpointer, incident_id)

    monkeypatch.setattr(graphs.incident_watch, "run_incident", recording)
    assert len(run_incidents(ctx, saver)) == 2
    hours = [hour for hour, _ in entered]
    assert hours[0] == T0 and hours[-1] == T0 + timedelta(hours=1)  # the pass crossed the hour
    for hour, asked in entered:
        assert asked == set(ZONE_CODES), hour


def test_a_pass_whose_last_incident_crosses_the_hour_warms_before_the_hourly_replan(
    ctx, sessions, saver, monkeypatch
):
    from tests.unit.test_forecast_planning import Scripted
    from tools.grid import ZONE_CODES
    from tools.grid.fallback import FallbackForecaster
    from tools.grid.models import floor_hour

    _spiked_job(sessions, ctx.grid, "FR")
    primary = Scripted(dict.fromkeys(ZONE_CODES, 100.0))
    clock = TickingClock(T0 + timedelta(minutes=55))
    ctx = replace(ctx, clock=clock, forecasts=FallbackForecaster(primary, Scripted({})))
    watch = graphs.incident_watch
    real_incident, real_schedule = watch.run_incident, watch.run_schedule
    entered: list[tuple[str, datetime, set[str]]] = []

    def record(step, real):
        def wrapper(context, *args):
            hour = floor_hour(clock.at)
            entered.append((step, hour, {z for z, at in primary.calls if at == hour}))
            return real(context, *args)

        return wrapper

    monkeypatch.setattr(graphs.incident_watch, "run_incident", record("incident", real_incident))
    monkeypatch.setattr(graphs.incident_watch, "run_schedule", record("schedule", real_schedule))
    assert len(run_incidents(ctx, saver)) == 1
    assert [(step, hour) for step, hour, _ in entered] == [
        ("incident", T0),
        ("schedule", T0 + timedelta(hours=1)),  # the incident's run crossed the hour
    ]
    for step, hour, asked in entered:
        assert asked == set(ZONE_CODES), (step, hour)
