"""The broker's planner: joint plan optimality, capacity, deadlines, headroom, budget fallback."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tools.broker.blocking import large_job_headroom
from tools.broker.planner import (
    PlanGrid,
    PlanJob,
    PlanResult,
    plan_greedy,
    plan_hour,
)
from tools.errors import InvalidInputError


def _grid(ci: np.ndarray, capacity: list[float], committed: np.ndarray | None = None) -> PlanGrid:
    sites, hours = ci.shape
    return PlanGrid(
        ci=ci,
        price=np.zeros((sites, hours)),
        capacity=np.asarray(capacity, dtype=float),
        committed=np.zeros((sites, hours)) if committed is None else committed,
        kw_per_gpu=np.ones(sites),
    )


def _tiny(seed: int) -> tuple[list[PlanJob], PlanGrid]:
    rng = np.random.default_rng(seed)
    jobs = [
        PlanJob(str(i), float(rng.choice([1, 2])), int(rng.integers(1, 4)), int(rng.integers(0, 3)))
        for i in range(4)
    ]
    return jobs, _grid(rng.uniform(50, 500, (3, 8)), [2.0, 1.0, 2.0])


def _optimum(jobs: list[PlanJob], grid: PlanGrid) -> float:
    """Brute force over every (site, start) of every job."""
    rate = grid.ci / 1000.0
    best = np.inf
    options = [
        [(z, k) for z in range(rate.shape[0]) for k in range(job.latest_start + 1)] for job in jobs
    ]
    for combo in itertools.product(*options):
        use = np.zeros(rate.shape)
        cost = 0.0
        for job, (z, k) in zip(jobs, combo, strict=True):
            use[z, k : k + job.hours] += job.gpus
            cost += job.gpus * rate[z, k : k + job.hours].sum()
        if (use <= grid.capacity[:, None] + 1e-9).all():
            best = min(best, cost)
    return best


def _cost(result: PlanResult) -> float:
    return np.inf if result.unplaced else sum(s.cost for s in result.slots)


def test_joint_plan_is_optimal_where_greedy_is_not() -> None:
    greedy_worse = 0
    for seed in range(24):
        jobs, grid = _tiny(seed)
        best = _optimum(jobs, grid)
        if not np.isfinite(best):
            continue
        plan = plan_hour(jobs, grid, time_budget_s=30.0, max_starts=10, rich_sites=10)
        assert _cost(plan) == pytest.approx(best), seed
        greedy_worse += _cost(plan_greedy(jobs, grid)) > best + 1e-9
    assert greedy_worse >= 3


def test_plan_respects_committed_capacity_and_deadlines() -> None:
    rng = np.random.default_rng(7)
    hours = 48
    committed = np.zeros((5, hours))
    committed[:, :10] = 1.0
    grid = _grid(rng.uniform(50, 500, (5, hours)), [2, 3, 4, 8, 1], committed)
    jobs = [
        PlanJob(
            f"j{i}",
            float(rng.choice([0.5, 1, 2, 4])),
            int(rng.integers(1, 12)),
            int(rng.choice([0, 6, 24])),
        )
        for i in range(60)
    ]
    plain = plan_hour(jobs, grid, time_budget_s=5.0)
    # With headroom the joint plan is returned as is (greedy knows no headroom).
    joint = plan_hour(jobs, grid, time_budget_s=5.0, headroom=large_job_headroom(grid.capacity))
    assert joint.method in {"lp", "lp-rounded", "milp", "milp-incumbent"}
    by_key = {job.key: job for job in jobs}
    for plan in (plain, joint):
        use = grid.committed.copy()
        for slot in plan.slots:
            job = by_key[slot.key]
            assert 0 <= slot.start <= job.latest_start
            use[slot.site, slot.start : slot.start + job.hours] += job.gpus
        assert (use <= grid.capacity[:, None] + 1e-9).all()
        assert len(plan.slots) + len(plan.unplaced) == len(jobs)
        assert len(plan.slots) >= 20


def test_headroom_keeps_a_large_clean_site_for_large_jobs() -> None:
    ci = np.full((3, 24), 100.0)
    ci[1] = 110.0  # a small site, a little dirtier
    ci[2] = 400.0
    grid = _grid(ci, [8, 2, 8])
    small = [PlanJob("small", 1.0, 4, 0)]
    assert plan_hour(small, grid).slots[0].site == 0
    headroom = large_job_headroom(grid.capacity)
    assert headroom.tolist() == [8.0, 0.0, 8.0]
    kept = plan_hour(small, grid, headroom=headroom, headroom_premium=0.2)
    assert kept.slots[0].site == 1
    large = [PlanJob("large", 8.0, 20, 0)]
    assert plan_hour(large, grid, headroom=headroom, headroom_premium=0.2).slots[0].site == 0


def test_no_budget_or_too_little_falls_back_to_greedy() -> None:
    jobs, grid = _tiny(3)
    assert plan_hour(jobs, grid, time_budget_s=0.0).method == "greedy"
    assert plan_hour(jobs, grid, time_budget_s=1e-4).method == "greedy"


def test_a_job_without_slack_starts_now_or_stays_unplaced() -> None:
    ci = np.full((2, 12), 300.0)
    ci[0, 3:] = 10.0
    grid = _grid(ci, [1, 1], committed=np.vstack([np.zeros(12), np.ones(12)]))
    jobs = [PlanJob("now", 1.0, 2, 0), PlanJob("later", 1.0, 2, 0)]
    plan = plan_hour(jobs, grid, time_budget_s=10.0)
    assert [(s.key, s.site, s.start) for s in plan.slots] == [("now", 0, 0)]
    assert plan.unplaced == ["later"]


def test_a_deadline_beyond_the_horizon_is_refused() -> None:
    grid = _grid(np.full((1, 6), 100.0), [1])
    with pytest.raises(InvalidInputError, match="beyond the 6 h forecast horizon"):
        plan_hour([PlanJob("long", 1.0, 4, 3)], grid)


def _replan(
    waiting: dict[str, tuple[float, int, int]],
    planned: dict[str, tuple[int, int]],
    ci: np.ndarray,
    committed: np.ndarray,
    now: int,
    budget: float,
) -> PlanResult:
    """Plan the waiting jobs (gpus, hours, latest start hour) at hour `now`, as the hourly loop."""
    jobs = [
        PlanJob(
            key,
            gpus,
            hours,
            latest - now,
            planned=(planned[key][0], planned[key][1] - now) if key in planned else None,
        )
        for key, (gpus, hours, latest) in waiting.items()
    ]
    return plan_hour(jobs, _grid(ci, [2.0], committed[:, now:]), time_budget_s=budget)


@pytest.mark.parametrize("budget", [0.0, 10.0])
def test_a_later_arrival_never_takes_the_slot_of_deferred_work(budget: float) -> None:
    # One 2-GPU site. Hour 0: the forecast puts a clean window at hours 3-4, so the job with
    # slack is deferred there (its latest start). Hour 1: the forecast was wrong (the window
    # is gone) and a 4 h job without slack arrives; it overlaps every start left to the first.
    committed = np.zeros((1, 16))
    ci0 = np.full((1, 16), 300.0)
    ci0[0, 3:5] = 20.0
    waiting = {"deferred": (2.0, 2, 3)}
    first = _replan(waiting, {}, ci0, committed, 0, budget)
    assert [(s.key, s.site, s.start) for s in first.slots] == [("deferred", 0, 3)]
    planned = {"deferred": (0, 3)}
    waiting["urgent"] = (2.0, 4, 1)
    ci1 = np.full((1, 15), 300.0)
    # Without the earlier slot the planner trades the deferred job for the urgent one, and the
    # deferred job then misses its deadline: the mechanism this guards against.
    blind = _replan(waiting, {}, ci1, committed, 1, budget)
    assert blind.unplaced == ["deferred"]
    plan = _replan(waiting, planned, ci1, committed, 1, budget)
    assert [s.key for s in plan.slots] == ["deferred"]
    assert plan.unplaced == ["urgent"]
    slot = plan.slots[0]
    assert 0 <= slot.start <= 3 - 1
    # It still starts by its latest start hour, whatever the forecasts say meanwhile.
    committed[0, 1 + slot.start : 1 + slot.start + 2] += 2.0
    assert (committed <= 2.0).all()


def test_earlier_planned_work_may_move_but_keeps_a_slot() -> None:
    # Two sites; a deferred job holds site 0 at hours 4-5. A new forecast makes site 1 cleaner
    # and new jobs fill site 0: the plan moves it or keeps it, but always places it.
    rng = np.random.default_rng(5)
    for _ in range(20):
        ci = rng.uniform(50, 500, (2, 12))
        grid = _grid(ci, [2.0, 1.0])
        held = PlanJob("held", 2.0, 2, 6, planned=(0, 4))
        new = [
            PlanJob(f"n{i}", 1.0, int(rng.integers(2, 6)), int(rng.integers(0, 4)))
            for i in range(4)
        ]
        for budget in (0.0, 10.0):
            plan = plan_hour([held, *new], grid, time_budget_s=budget)
            assert "held" not in plan.unplaced
            use = np.zeros((2, 12))
            for s in plan.slots:
                job = next(j for j in [held, *new] if j.key == s.key)
                use[s.site, s.start : s.start + job.hours] += job.gpus
            assert (use <= grid.capacity[:, None] + 1e-9).all()


def _exact(jobs: list[PlanJob], grid: PlanGrid) -> float:
    """Return the optimal cost over every (site, start) of every job (inf: infeasible)."""
    from scipy import sparse
    from scipy.optimize import LinearConstraint, milp

    rate = grid.ci * grid.kw_per_gpu[:, None] / 1000.0
    sites, horizon = rate.shape
    cost: list[float] = []
    eq: list[tuple[int, int]] = []
    cap: list[tuple[int, int, float]] = []
    for i, job in enumerate(jobs):
        for z in range(sites):
            for k in range(job.latest_start + 1):
                v = len(cost)
                cost.append(job.gpus * float(rate[z, k : k + job.hours].sum()))
                eq.append((i, v))
                cap.extend((z * horizon + h, v, job.gpus) for h in range(k, k + job.hours))
    rows, cols = zip(*eq, strict=True)
    a_eq = sparse.csr_array((np.ones(len(eq)), (rows, cols)), shape=(len(jobs), len(cost)))
    r, c, g = zip(*cap, strict=True)
    a_cap = sparse.csr_array((g, (r, c)), shape=(sites * horizon, len(cost)))
    room = (grid.capacity[:, None] - grid.committed).ravel()
    res = milp(
        np.asarray(cost),
        constraints=[LinearConstraint(a_eq, 1, 1), LinearConstraint(a_cap, -np.inf, room)],
        integrality=np.ones(len(cost)),
        bounds=(0, 1),
    )
    return float(res.fun) if res.status == 0 else np.inf


def _fragmented(seed: int) -> tuple[list[PlanJob], PlanGrid]:
    """A clean and a dirty 8-GPU site, three larger middling ones; three 8-GPU jobs with slack
    among 60 small jobs, a quarter of them without slack.

    The shape of a recorded week's costliest miss: a small job with no slack takes the clean
    8-GPU site, so the large deferrable job beside it goes to a dirtier one.
    """
    rng = np.random.default_rng(seed)
    ci = np.vstack(
        [
            rng.uniform(40, 120, 30),
            rng.uniform(350, 500, 30),
            rng.uniform(100, 300, (3, 30)),
        ]
    )
    grid = _grid(ci, [8.0, 8.0, 16.0, 12.0, 10.0])
    jobs = [
        PlanJob(f"big{i}", 8.0, int(rng.integers(4, 10)), int(rng.integers(2, 8))) for i in range(3)
    ] + [
        PlanJob(
            f"s{i}",
            float(rng.choice([0.5, 1.0, 2.0])),
            int(rng.integers(2, 14)),
            int(rng.choice([0, 3, 6, 10])),
        )
        for i in range(60)
    ]
    return jobs, grid


def test_large_jobs_keep_the_clean_site_from_small_jobs_without_slack() -> None:
    # Instances too large for a plain branch and bound over the planner's first columns: the
    # LP is fractional and its rounding (or the greedy plan) leaves a large job on a dirtier
    # site or unplaced. The plan stays within 3 % of the true optimum over every column.
    greedy_worse = 0
    for seed in range(4):
        jobs, grid = _fragmented(seed)
        best = _exact(jobs, grid)
        assert np.isfinite(best), seed
        plan = plan_hour(jobs, grid, time_budget_s=60.0)
        assert not plan.unplaced, seed
        assert _cost(plan) <= best * 1.03, (seed, plan.method, _cost(plan) / best)
        greedy_worse += _cost(plan_greedy(jobs, grid)) > best * 1.03
    assert greedy_worse >= 2
