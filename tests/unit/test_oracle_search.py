"""The oracle's local search: never worse, always feasible, and it unblocks large jobs."""

from __future__ import annotations

import time

import numpy as np

from evals.oracle_search import improve_schedule
from evals.schedule import gpu_usage, repair_schedule, schedule_co2
from tests.evals_helpers import make_fleet, make_jobs


def _feasible(jobs, fleet, ci, start, zone) -> bool:
    usage = gpu_usage(jobs, start, zone, len(fleet.zones), ci.shape[1])
    in_time = (start >= jobs.arrival).all() and (start <= jobs.latest_start).all()
    return bool(in_time and (usage <= fleet.capacity[:, None] + 1e-9).all())


def test_a_large_job_blocked_by_a_small_one_gets_the_clean_zone() -> None:
    ci = np.array([[100.0] * 12, [400.0] * 12])
    fleet = make_fleet([2.0, 4.0])
    # Job 0: 2 GPUs x 4 h, no slack. Job 1: 1 GPU x 2 h, 4 h of slack, sitting in the clean zone.
    jobs = make_jobs([0, 0], [4, 2], [2, 1], [0, 4], [0, 0])
    start, zone = np.array([0, 0]), np.array([1, 0])
    assert _feasible(jobs, fleet, ci, start, zone)
    new_start, new_zone, moves = improve_schedule(
        jobs, fleet, ci, start, zone, deadline=time.perf_counter() + 30
    )
    assert moves >= 1
    assert new_zone.tolist() == [0, 0] and new_start.tolist() == [0, 4]
    assert schedule_co2(jobs, fleet, ci, new_start, new_zone) < schedule_co2(
        jobs, fleet, ci, start, zone
    )


def test_search_never_raises_co2_and_keeps_every_rule() -> None:
    rng = np.random.default_rng(7)
    hours = 48
    ci = rng.uniform(50, 500, size=(3, hours + 40))
    n = 50
    jobs = make_jobs(
        arrival=np.sort(rng.integers(0, hours, n)),
        duration=rng.integers(1, 6, n),
        gpus=rng.choice([0.5, 1.0, 2.0, 4.0], n),
        slack=rng.choice([0, 6, 12], n),
        origin=rng.integers(0, 3, n),
    )
    fleet = make_fleet([4.0, 6.0, 8.0], kw=[0.7, 0.5, 0.7])
    start, zone = repair_schedule(jobs, fleet, ci, np.full(n, -1), np.full(n, -1))
    assert _feasible(jobs, fleet, ci, start, zone)
    new_start, new_zone, _ = improve_schedule(
        jobs, fleet, ci, start, zone, deadline=time.perf_counter() + 30
    )
    assert _feasible(jobs, fleet, ci, new_start, new_zone)
    assert (
        schedule_co2(jobs, fleet, ci, new_start, new_zone)
        <= schedule_co2(jobs, fleet, ci, start, zone) + 1e-9
    )
    same, same_zone, moves = improve_schedule(
        jobs, fleet, ci, start, zone, deadline=time.perf_counter() - 1
    )
    assert moves == 0 and np.array_equal(same, start) and np.array_equal(same_zone, zone)
