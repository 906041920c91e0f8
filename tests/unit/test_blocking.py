"""The blocking charge: the expected cost of large jobs a job pushes off a large site."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from store.models import Organization
from tools.broker.blocking import (
    ARRIVAL_SPAN_H,
    MIN_SPAN_H,
    ArrivalHistory,
    LargeArrival,
    blocking_charge,
    history_of,
    stored_history,
)
from tools.broker.planner import PlanGrid, PlanJob, plan_hour
from tools.broker.routing import submit_workload
from tools.broker.workloads import JobSpec
from tools.errors import InvalidInputError

# Sites: 0 clean large (8 GPUs), 1 clean small (4 GPUs), 2 dirty large (8 GPUs).
RATE = np.array([[0.06] * 24, [0.07] * 24, [0.20] * 24])
CAPACITY = np.array([8.0, 4.0, 8.0])
NO_LOAD = np.zeros((3, 24))
SEEN = ArrivalHistory((LargeArrival(8.0, 10, 0), LargeArrival(8.0, 10, 6)), span_hours=100.0)


def _jobs(gpus: list[float], hours: list[int]) -> list[PlanJob]:
    return [PlanJob(str(i), g, h, 0) for i, (g, h) in enumerate(zip(gpus, hours, strict=True))]


def test_no_history_means_no_charge() -> None:
    charge = blocking_charge(_jobs([1.0], [16]), RATE, CAPACITY, NO_LOAD, None)
    assert charge.shape == (1, 3)
    assert not charge.any()
    empty = ArrivalHistory((), span_hours=100.0)
    assert not blocking_charge(_jobs([1.0], [16]), RATE, CAPACITY, NO_LOAD, empty).any()


def test_the_charge_is_the_expected_cost_of_the_large_job_pushed_to_the_next_site() -> None:
    charge = blocking_charge(_jobs([1.0, 1.0], [16, 4]), RATE, CAPACITY, NO_LOAD, SEEN)
    # 16 h job: large jobs like the no-slack one arrive during 16 h of it at 1 per 100 h, like
    # the 6 h one during 10 h; at least one of them comes with chance 1 - exp(-0.26), and it
    # is 80 GPU-hours that cost 0.14 more per GPU-hour on the dirty large site.
    assert charge[0, 0] == pytest.approx((1 - np.exp(-0.26)) * 80 * 0.14)
    # A 4 h job: only the large job without slack cannot wait it out.
    assert charge[1, 0] == pytest.approx((1 - np.exp(-0.04)) * 80 * 0.14)
    # The small site cannot hold a large job; the dirtiest large site has nowhere worse to send it.
    assert not charge[:, 1:].any()


def test_work_that_may_move_off_for_a_large_job_is_charged_at_most_its_cost_of_moving() -> None:
    movable = ArrivalHistory(SEEN.arrivals, SEEN.span_hours, blockers_move=True)
    jobs = _jobs([1.0, 1.0, 8.0], [16, 4, 10])
    charge = blocking_charge(jobs, RATE, CAPACITY, NO_LOAD, movable)
    full = blocking_charge(jobs, RATE, CAPACITY, NO_LOAD, SEEN)
    # A 1-GPU job moves, halfway through on average, to the clean small site: 0.01 more per
    # GPU-hour, far less than the large job's 80 GPU-hours at 0.14 more.
    assert charge[0, 0] == pytest.approx((1 - np.exp(-0.26)) * 1 * 8 * 0.01)
    assert charge[1, 0] == pytest.approx((1 - np.exp(-0.04)) * 1 * 2 * 0.01)
    # An 8-GPU job can only move to the dirty large site: 5 h at 0.14 more, still below 80.
    assert charge[2, 0] == pytest.approx((1 - np.exp(-0.14)) * 8 * 5 * 0.14)
    assert np.all(charge <= full + 1e-12)
    # A job that cannot move once it runs pays the large job's loss in full.
    pinned = [PlanJob("0", 1.0, 16, 0, movable=False)]
    assert blocking_charge(pinned, RATE, CAPACITY, NO_LOAD, movable)[0, 0] == full[0, 0]
    # A job that may run only on the large sites, or whose small clean site is full, would
    # move to the dirty large site: 8 h at 0.14 more, still below the large job's 80.
    to_dirty = (1 - np.exp(-0.26)) * 1 * 8 * 0.14
    not_small = [PlanJob("0", 1.0, 16, 0, eligible=np.array([True, False, True]))]
    assert blocking_charge(not_small, RATE, CAPACITY, NO_LOAD, movable)[0, 0] == pytest.approx(
        to_dirty
    )
    small_full = NO_LOAD.copy()
    small_full[1, 10:] = 4.0  # full for part of the hours the job may run in
    charged = blocking_charge(_jobs([1.0], [16]), RATE, CAPACITY, small_full, movable)
    assert charged[0, 0] == pytest.approx(to_dirty)
    # A job with nowhere else to go pays the large job's loss in full.
    only_here = [PlanJob("0", 1.0, 16, 0, eligible=np.array([True, False, False]))]
    assert blocking_charge(only_here, RATE, CAPACITY, NO_LOAD, movable)[0, 0] == full[0, 0]


def test_the_cost_of_moving_deferrable_work_counts_the_hours_it_may_run_in() -> None:
    # Site 0 is dirty for 4 h, then the cleanest; a 4 h job that may start up to 20 h from now
    # would move to the small site at 0.07 against site 0's mean 1.6 / 24 over its 24 hours.
    rate = np.array([[0.30] * 4 + [0.02] * 20, [0.07] * 24, [0.20] * 24])
    movable = ArrivalHistory(SEEN.arrivals, SEEN.span_hours, blockers_move=True)
    job = [PlanJob("0", 1.0, 4, 20)]
    charge = blocking_charge(job, rate, CAPACITY, NO_LOAD, movable)
    assert charge[0, 0] == pytest.approx((1 - np.exp(-0.04)) * 1 * 2 * (0.07 - 1.6 / 24))


def test_however_many_large_jobs_came_a_job_risks_blocking_one_at_a_time() -> None:
    busy = ArrivalHistory(tuple(LargeArrival(8.0, 10, 0) for _ in range(500)), span_hours=100.0)
    charge = blocking_charge(_jobs([8.0], [10]), RATE, CAPACITY, NO_LOAD, busy)
    assert charge[0, 0] == pytest.approx(80 * 0.14)
    # So a large job longer than those it may block keeps the clean large site.
    plan = plan_hour([PlanJob("large", 8.0, 12, 0)], _grid(), time_budget_s=0.0, arrivals=busy)
    assert plan.slots[0].site == 0


def test_a_site_already_blocked_by_running_work_charges_only_for_its_open_hours() -> None:
    load = NO_LOAD.copy()
    load[0, :8] = 1.0  # running work blocks site 0 for the first 8 of the job's 16 hours
    open_half = blocking_charge(_jobs([1.0], [16]), RATE, CAPACITY, load, SEEN)[0, 0]
    full = blocking_charge(_jobs([1.0], [16]), RATE, CAPACITY, NO_LOAD, SEEN)[0, 0]
    assert open_half == pytest.approx(full / 2)


def test_deferred_work_is_charged_for_the_hours_it_may_run_in_not_only_the_next_ones() -> None:
    # Running large work holds site 0 for 8 hours. A 4 h job that must start now blocks nothing
    # there; one that may start up to 12 h later may run when the site is free again (the
    # planner bunches deferred work into the cleanest hours, where a large job may arrive).
    load = NO_LOAD.copy()
    load[0, :8] = 8.0
    now_only, later = PlanJob("now", 1.0, 4, 0), PlanJob("later", 1.0, 4, 12)
    charge = blocking_charge([now_only, later], RATE, CAPACITY, load, SEEN)
    free = blocking_charge([later], RATE, CAPACITY, NO_LOAD, SEEN)[0, 0]
    assert charge[0, 0] == 0.0
    assert charge[1, 0] == pytest.approx(free * 8 / 16)  # open in 8 of its 16 possible hours


def test_a_site_with_room_for_the_job_and_a_large_one_charges_nothing() -> None:
    capacity = np.array([16.0, 4.0, 8.0])
    charge = blocking_charge(_jobs([1.0, 9.0], [16, 16]), RATE, capacity, NO_LOAD, SEEN)
    assert charge[0, 0] == 0.0
    assert charge[1, 0] > 0.0


def test_history_keeps_recent_large_arrivals_and_a_floor_on_the_span() -> None:
    arrived = [
        (-200.0, 8.0, 10, 0),  # older than the span
        (-5.0, 8.0, 12, 6),
        (-4.0, 1.0, 48, 0),  # small
        (-1.0, 8.0, 3, 24),
    ]
    history = history_of(arrived, now=0.0, observed_h=5.0)
    assert history.arrivals == (LargeArrival(8.0, 12, 6), LargeArrival(8.0, 3, 24))
    assert history.span_hours == MIN_SPAN_H
    assert history_of(arrived, now=0.0, observed_h=10_000).span_hours == ARRIVAL_SPAN_H
    with pytest.raises(InvalidInputError, match="span"):
        ArrivalHistory((), span_hours=0.0)


def _grid() -> PlanGrid:
    return PlanGrid(
        ci=RATE * 1000.0,
        price=np.zeros((3, 24)),
        capacity=CAPACITY,
        committed=NO_LOAD,
        kw_per_gpu=np.ones(3),
    )


@pytest.mark.parametrize("budget", [0.0, 5.0])
def test_a_long_small_job_leaves_the_clean_large_site_when_large_jobs_have_been_seen(
    budget: float,
) -> None:
    job = PlanJob("small", 1.0, 16, 0)
    blind = plan_hour([job], _grid(), time_budget_s=budget)
    assert blind.slots[0].site == 0
    seen = plan_hour([job], _grid(), time_budget_s=budget, arrivals=SEEN)
    assert seen.slots[0].site == 1
    assert seen.slots[0].charge == 0.0
    # A short job is worth less than the risk it carries only on the clean small site too.
    short = plan_hour([PlanJob("short", 1.0, 1, 0)], _grid(), time_budget_s=budget, arrivals=SEEN)
    assert short.slots[0].site == 1


@pytest.mark.parametrize("budget", [0.0, 5.0])
def test_a_small_job_takes_the_clean_large_site_when_it_could_move_off_for_a_large_job(
    budget: float,
) -> None:
    job = PlanJob("small", 1.0, 16, 0)
    stays = plan_hour([job], _grid(), time_budget_s=budget, arrivals=SEEN, running=None)
    assert stays.slots[0].site == 1
    may_move = plan_hour([job], _grid(), time_budget_s=budget, arrivals=SEEN, running=[])
    assert may_move.slots[0].site == 0
    assert may_move.slots[0].charge == pytest.approx((1 - np.exp(-0.26)) * 8 * 0.01)


@pytest.mark.parametrize("budget", [0.0, 5.0])
def test_a_large_job_still_takes_the_clean_large_site(budget: float) -> None:
    jobs = [PlanJob("large", 8.0, 10, 0), PlanJob("small", 1.0, 16, 0)]
    plan = plan_hour(jobs, _grid(), time_budget_s=budget, arrivals=SEEN)
    where = {slot.key: slot.site for slot in plan.slots}
    assert where == {"large": 0, "small": 1}


def test_the_product_reads_the_large_workloads_of_the_last_week_from_the_store(session) -> None:
    now = datetime(2023, 6, 8, 12, tzinfo=UTC)
    hour = timedelta(hours=1)
    session.add(Organization(id="acme", name="Acme", kind="enterprise", created_at=now))
    session.flush()

    def submit(gpus: int, hours: float, at: datetime, due: datetime | None) -> None:
        spec = JobSpec(gpu_count=gpus, duration_hours=hours, deadline=due)
        submit_workload(session=session, org_id="acme", name="w", spec=spec, now=at)

    submit(8, 10, now - 200 * hour, None)  # older than a week
    submit(8, 9.5, now - 30 * hour, now - 30 * hour + 16 * hour)  # 6 h of slack
    submit(2, 48, now - 20 * hour, None)  # small
    submit(16, 3, now - 2 * hour, None)  # no deadline: it can always wait
    session.flush()
    history = stored_history(session=session, now=now)
    assert history.span_hours == ARRIVAL_SPAN_H
    assert [(a.gpus, a.hours) for a in history.arrivals] == [(8.0, 10), (16.0, 3)]
    assert history.arrivals[0].slack == 6
    assert history.arrivals[1].slack >= ARRIVAL_SPAN_H
