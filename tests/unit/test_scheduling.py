"""Where and when: work with slack is scheduled for its greenest forecast window, with GPUs
reserved per hour; scheduled work starts at its hour and can be started early or cancelled
(re-planning it as forecasts change: tests/unit/test_joint_replan.py). Runs on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from store import repo
from store.models import ComputeNode, GpuReservation, Organization
from tools.broker.placement import recommend
from tools.broker.routing import route_workload, submit_workload
from tools.broker.scheduling import (
    due_for_start,
    start_now,
    start_workload,
)
from tools.broker.windows import forecast_grid, latest_start, plan_start
from tools.broker.workloads import JobSpec, set_workload_status
from tools.errors import IllegalTransitionError
from tools.grid import GridReading

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
CLEAN_START = datetime(2023, 6, 2, 0, tzinfo=UTC)
"""FR is clean from 00:00 to 06:00 UTC every day (cleanest to 04:00); the first such window
after NOW."""


class DailyGrid:
    """FR: 20 g/kWh from 00:00 to 04:00 UTC, 30 to 06:00, 400 otherwise; every other zone a
    flat 300. A four-hour job has one greenest start (00:00), whatever breaks the planner's ties.

    `spikes` overrides a zone's carbon intensity from a time on (a changed forecast).
    """

    name = "sim"

    def __init__(self) -> None:
        self.spikes: dict[str, tuple[datetime, float]] = {}

    def reading(self, zone: str, at: datetime) -> GridReading:
        ts = at.replace(minute=0, second=0, microsecond=0)
        ci = 300.0
        if zone == "FR":
            ci = 20.0 if ts.hour < 4 else 30.0 if ts.hour < 6 else 400.0
        if zone in self.spikes and ts >= self.spikes[zone][0]:
            ci = self.spikes[zone][1]
        return GridReading(
            zone=zone, ts=ts, source="sim", carbon_intensity=ci, price_eur_per_mwh=80
        )

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        return [self.reading(zone, start + h * HOUR) for h in range(hours)]


def _node(node_id: str, zone: str, gpus: int = 8) -> ComputeNode:
    return ComputeNode(
        id=node_id,
        name=node_id,
        owner_id="dc",
        kind="datacenter",
        zone=zone,
        gpu_model="H100",
        gpu_count=gpus,
        reserved_gpus=0,
        power_kw_per_gpu=0.7,
        price_per_gpu_hour_minor=200,
        currency="EUR",
        status="online",
        created_at=NOW,
    )


@pytest.fixture
def fleet(session):
    session.add_all(
        [
            Organization(id="acme", name="Acme", kind="enterprise", created_at=NOW),
            Organization(id="dc", name="DC", kind="datacenter", created_at=NOW),
        ]
    )
    session.flush()
    session.add_all([_node("fr-1", "FR"), _node("de-1", "DE")])
    session.commit()
    return session


def _submit(session, **spec):
    spec = {"gpu_count": 4, "duration_hours": 4, **spec}
    return submit_workload(
        session=session, org_id="acme", name="job", spec=JobSpec(**spec), now=NOW
    )


def _reservations(session):
    return session.scalars(select(GpuReservation).order_by(GpuReservation.id)).all()


def test_forecast_reads_history_only_and_predicts_the_daily_pattern():
    grid = DailyGrid()
    fc = forecast_grid(grid=grid, zones=["FR", "DE"], now=NOW + timedelta(minutes=20))
    assert fc.issued_at == NOW and fc.ci.shape == (2, 48)
    fr = fc.ci[fc.row("FR")]
    assert fr[0] == pytest.approx(400) and fr[12] == pytest.approx(20, abs=1)
    assert fc.ci[fc.row("DE")] == pytest.approx(300, abs=1)
    grid.spikes["FR"] = (NOW + HOUR, 900.0)  # the future changes; a forecast made now cannot know
    assert forecast_grid(grid=grid, zones=["FR"], now=NOW).ci[0] == pytest.approx(fr)


def test_latest_start_meets_the_deadline():
    spec = JobSpec(gpu_count=1, duration_hours=4.5, deadline=NOW + timedelta(hours=10))
    assert latest_start(spec, NOW) == 5
    assert latest_start(JobSpec(gpu_count=1, duration_hours=4), NOW) == 0
    far = JobSpec(gpu_count=1, duration_hours=4, deadline=NOW + timedelta(days=9))
    assert latest_start(far, NOW) == 44


def test_work_with_slack_is_scheduled_for_the_greenest_window(fleet):
    w = _submit(fleet, deadline=NOW + DAY)
    d = route_workload(session=fleet, grid=DailyGrid(), workload_id=w.id, now=NOW)
    assert d.outcome == "scheduled" and d.node == d.node_id == "fr-1"
    assert d.start_at == CLEAN_START
    assert d.co2_kg == pytest.approx(4 * 0.7 * 4 * 20 / 1000, rel=0.05)
    assert d.co2_kg_if_started_now == pytest.approx(4 * 0.7 * 4 * 300 / 1000, rel=0.05)
    assert d.saving_pct == pytest.approx(100 * (1 - 20 / 300), abs=1)
    assert "greenest forecast window" in d.why and d.candidates and d.reason == d.why
    got = repo.get_workload(session=fleet, workload_id=w.id)
    assert got.status == "scheduled" and got.planned_start_at == CLEAN_START
    (r,) = _reservations(fleet)
    assert (r.node_id, r.gpus, r.start_at, r.end_at) == (
        "fr-1",
        4,
        CLEAN_START,
        CLEAN_START + 4 * HOUR,
    )
    assert fleet.get(ComputeNode, "fr-1").allocated_gpus == 0  # nothing is held before the hour
    (stored,) = repo.list_decisions(session=fleet, workload_id=w.id)
    assert stored.planned_start_at == CLEAN_START and stored.plan["saving_pct"] > 90


@pytest.mark.parametrize("deadline", [None, NOW + timedelta(hours=4, minutes=30)])
def test_work_without_slack_starts_now_as_before(fleet, deadline):
    w = _submit(fleet, deadline=deadline)
    d = route_workload(session=fleet, grid=DailyGrid(), workload_id=w.id, now=NOW)
    assert d.outcome == "routed" and d.node_id == "de-1"
    assert d.start_at == NOW and d.saving_pct == 0 and "starts now" in d.why
    assert fleet.get(ComputeNode, "de-1").allocated_gpus == 4 and _reservations(fleet) == []


def test_a_marginal_later_gain_does_not_defer(fleet):
    w = _submit(fleet, deadline=NOW + DAY, allowed_zones=["DE"])
    d = route_workload(session=fleet, grid=DailyGrid(), workload_id=w.id, now=NOW)
    assert d.outcome == "routed" and d.start_at == NOW


def test_reservations_refuse_any_hour_over_capacity(fleet):
    t0 = CLEAN_START
    a, b, c = (_submit(fleet, deadline=NOW + 2 * DAY).id for _ in range(3))
    ok = repo.reserve_gpus(
        session=fleet, workload_id=a, node_id="fr-1", gpus=6, start=t0, end=t0 + 4 * HOUR, now=NOW
    )
    assert ok
    # Overlaps hour 3 only, still 6 + 4 > 8: refused, nothing written.
    assert not repo.reserve_gpus(
        session=fleet,
        workload_id=b,
        node_id="fr-1",
        gpus=4,
        start=t0 + 3 * HOUR,
        end=t0 + 5 * HOUR,
        now=NOW,
    )
    assert [r.workload_id for r in _reservations(fleet)] == [a]
    # Right after it ends: fits.
    assert repo.reserve_gpus(
        session=fleet,
        workload_id=b,
        node_id="fr-1",
        gpus=8,
        start=t0 + 4 * HOUR,
        end=t0 + 6 * HOUR,
        now=NOW,
    )
    assert repo.reserve_gpus(
        session=fleet, workload_id=c, node_id="fr-1", gpus=2, start=t0, end=t0 + 4 * HOUR, now=NOW
    )
    assert repo.hourly_use(session=fleet, node_id="fr-1", start=t0, end=t0 + 6 * HOUR, now=NOW) == [
        8,
        8,
        8,
        8,
        8,
        8,
    ]


def test_work_routed_now_leaves_room_for_reservations(fleet):
    blocker = _submit(fleet, deadline=NOW + 2 * DAY)
    assert repo.reserve_gpus(
        session=fleet,
        workload_id=blocker.id,
        node_id="de-1",
        gpus=6,
        start=NOW + 2 * HOUR,
        end=NOW + 8 * HOUR,
        now=NOW,
    )
    w = _submit(fleet, allowed_zones=["DE"])
    d = route_workload(session=fleet, grid=DailyGrid(), workload_id=w.id, now=NOW)
    assert d.outcome == "no_eligible_node"
    assert "only 2 of the 4 GPUs needed are free" in d.rejected[0]["reason"]
    assert not repo.take_gpus(session=fleet, node_id="de-1", gpus=4, ahead=6)
    assert repo.take_gpus(session=fleet, node_id="de-1", gpus=2, ahead=6)


def test_scheduled_work_starts_at_its_hour(fleet):
    grid = DailyGrid()
    w = _submit(fleet, deadline=NOW + DAY)
    route_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW)
    assert due_for_start(session=fleet, now=CLEAN_START - timedelta(minutes=1)) == []
    assert due_for_start(session=fleet, now=CLEAN_START) == [w.id]
    d = start_workload(
        session=fleet, grid=grid, workload_id=w.id, now=CLEAN_START, by_operator=False
    )
    assert (d.kind, d.outcome, d.node_id, d.start_at) == ("start", "started", "fr-1", CLEAN_START)
    got = repo.get_workload(session=fleet, workload_id=w.id)
    assert got.status == "routed" and got.planned_start_at is None and got.routed_at == CLEAN_START
    assert fleet.get(ComputeNode, "fr-1").allocated_gpus == 4 and _reservations(fleet) == []
    with pytest.raises(IllegalTransitionError):
        start_workload(session=fleet, grid=grid, workload_id=w.id, now=CLEAN_START)


def test_operators_start_scheduled_work_now_or_cancel_it(fleet):
    grid = DailyGrid()
    early = _submit(fleet, deadline=NOW + DAY)
    route_workload(session=fleet, grid=grid, workload_id=early.id, now=NOW)
    view, d = start_now(session=fleet, grid=grid, workload_id=early.id, now=NOW)
    assert view.status == "running" and view.started_at == NOW and d is not None
    assert d.outcome == "started" and view.node_id == "fr-1"
    assert fleet.get(ComputeNode, "fr-1").allocated_gpus == 4 and _reservations(fleet) == []

    dropped = _submit(fleet, deadline=NOW + DAY)
    route_workload(session=fleet, grid=grid, workload_id=dropped.id, now=NOW)
    assert len(_reservations(fleet)) == 1
    with pytest.raises(IllegalTransitionError, match="start it through the broker"):
        set_workload_status(session=fleet, workload_id=dropped.id, status="running", now=NOW)
    done = set_workload_status(session=fleet, workload_id=dropped.id, status="cancelled", now=NOW)
    assert done.status == "cancelled" and done.planned_start_at is None
    assert _reservations(fleet) == []
    with pytest.raises(IllegalTransitionError):
        route_workload(session=fleet, grid=grid, workload_id=dropped.id, now=NOW)


def test_scheduled_work_is_not_routed_twice(fleet):
    w = _submit(fleet, deadline=NOW + DAY)
    route_workload(session=fleet, grid=DailyGrid(), workload_id=w.id, now=NOW)
    with pytest.raises(IllegalTransitionError, match="only pending work is routed"):
        route_workload(session=fleet, grid=DailyGrid(), workload_id=w.id, now=NOW)


def test_the_composite_objective_also_waits_for_a_clearly_better_window(fleet):
    w = _submit(fleet, deadline=NOW + DAY)
    d = route_workload(
        session=fleet, grid=DailyGrid(), workload_id=w.id, now=NOW, objective="composite"
    )
    assert d.outcome == "scheduled" and d.start_at == CLEAN_START and "best-scoring" in d.why


def test_the_window_says_when_large_nodes_were_priced_by_the_risk_of_blocking_a_large_job(fleet):
    large = _submit(fleet, gpu_count=8, duration_hours=10)
    repo.get_workload(session=fleet, workload_id=large.id).status = "completed"
    fleet.flush()
    w = _submit(fleet, deadline=NOW + DAY)
    d = route_workload(session=fleet, grid=DailyGrid(), workload_id=w.id, now=NOW)
    assert d.outcome == "scheduled" and d.start_at == CLEAN_START
    assert "risk of blocking one (1 arrived in the last week" in d.why


class CleanFranceGrid(DailyGrid):
    """FR: 20 g/kWh from 00:00 to 04:00 UTC, 100 otherwise (cleaner than DE's 300 on average)."""

    def reading(self, zone: str, at: datetime) -> GridReading:
        reading = super().reading(zone, at)
        if zone != "FR":
            return reading
        ci = 20.0 if reading.ts.hour < 4 else 100.0
        return GridReading(zone=zone, ts=reading.ts, source="sim", carbon_intensity=ci)


def test_a_route_prices_the_blocking_charge_as_the_replans_do(fleet):
    # fr-1 is the clean 8-GPU node; a 4-GPU job there blocks the next 8-GPU job. When running
    # work may move (TGTG_MOVE_RUNNING_WORK) and the job can, it would move to de-1 for one,
    # so its charge is at most that move's expected cost; otherwise the large job's loss.
    large = _submit(fleet, gpu_count=8, duration_hours=10, deadline=NOW + 10 * HOUR)
    repo.get_workload(session=fleet, workload_id=large.id).status = "completed"
    fleet.flush()
    grid = CleanFranceGrid()
    spec = JobSpec(gpu_count=4, duration_hours=4, deadline=NOW + DAY)
    candidates = recommend(session=fleet, grid=grid, spec=spec, now=NOW).candidates

    def charge(move_running: bool, movable: bool = True) -> float:
        plan = plan_start(
            session=fleet,
            grid=grid,
            spec=spec.model_copy(update={"movable": movable}),
            candidates=candidates,
            now=NOW,
            move_running=move_running,
        )
        assert plan is not None and (plan.node_id, plan.start_at) == ("fr-1", CLEAN_START)
        found = re.search(r"; ([0-9.]+) kg CO2 expected on this node", plan.why)
        assert found is not None, plan.why
        return float(found.group(1))

    full = charge(move_running=False)
    assert full > 0.1
    assert 0 < charge(move_running=True) < full / 5
    assert charge(move_running=True, movable=False) == full
