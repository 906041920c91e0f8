"""Plan pending work over (site, start hour) from forecasts: the broker's one planner.

The product (route, the background loop, the incident agent) and the replay harness call the same
function, `plan_hour`. A *site* is whatever holds GPUs: a node in the product, a zone's pooled
fleet in the replays. Everything is hours relative to the plan's origin (offset 0 = the hour the
plan is made); callers translate to and from wall time.

Inputs are forecasts only (`PlanGrid.ci`/`price` are what a forecaster said at the origin hour),
the GPUs already committed per site and hour (running work), and the jobs still free to move
(pending, and scheduled but not started). Output: one `Slot` per job that fits somewhere
(site, start offset); jobs that fit nowhere are listed in `PlanResult.unplaced`. A job with no
slack (`latest_start == 0`) can only start now.

Joint plan (`tools.broker.planner_lp`, the default): the replay oracle's LP over (job class,
site, start) solved with HiGHS on the forecasts, its columns grown by pricing, rounded largest
job first, and finished by branch and bound when neither the rounding nor the greedy plan is
close to the LP bound (3 %, and 1 kg for large plans); the whole solve ends within
`time_budget_s`.

Greedy (the fallback, always available): jobs that must start now first; then by regret (GPUs x
(second-best minus best site's window cost), as in Vogel's method), each job takes its cheapest
feasible (site, start) window against capacity booked so far. It replaces the joint plan when
the LP gives no answer in time, or when its plan is better (see `plan_hour`).

Earlier-planned work (`PlanJob.planned`, the slot a job was scheduled or deferred to): the plan
may move it, never leave it unplaced while its slot is still free. When the joint (or greedy)
plan would, `plan_kept` (those slots kept, the rest greedy) replaces it. Capacity only changes
through plans, so a forecast error or a later arrival can no longer push deferred work past its
deadline: a new job that finds every slot it could use taken is reported unplaced at once.

Blocking charge (`arrivals`, `tools.broker.blocking`): a (job, site) also costs the expected cost
of the large job it may push off a large site; both plans and their comparison count it. When
running work may move (`running` given, even empty), a job that blocks a large one can move off
for it later, so its charge is at most its expected cost of moving.

Headroom (opt-in, `headroom` + `headroom_premium`): sites that can hold a large job keep GPUs for
it at a premium per GPU-hour in the joint plan; on replayed weeks it raised CO2.

Room for work starting now (`running`, `tools.broker.make_room`): when a job the plan starts now
(or one without slack that fits nowhere) would cost much less on a site that running work
fills, the plan may move some of that work to other sites (`PlanResult.moves`) and re-plan the
rest around it; the caller makes the moves.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tools.broker.blocking import ArrivalHistory, blocking_charge
from tools.broker.make_room import with_room
from tools.broker.plan_types import (
    CAPACITY_EPS,
    CARBON_ONLY,
    BoolArray,
    FloatArray,
    Move,
    Objective,
    PlanGrid,
    PlanJob,
    PlanResult,
    RunningJob,
    Slot,
    check_plan,
    plan_rates,
)
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights

if TYPE_CHECKING:
    from tools.broker.planner_model import JointJob

__all__ = [
    "CAPACITY_EPS",
    "CARBON_ONLY",
    "Move",
    "Objective",
    "PlanGrid",
    "PlanJob",
    "PlanResult",
    "RunningJob",
    "Slot",
    "plan_greedy",
    "plan_hour",
    "plan_kept",
]
DEFAULT_MAX_STARTS = 6
DEFAULT_RICH_SITES = 4
DEFAULT_HEADROOM_PREMIUM = 0.2
FINISH_SHARE = 0.9
"""Share of the time budget the joint solve may use; the rest rounds and compares plans."""


def plan_greedy(
    jobs: list[PlanJob],
    grid: PlanGrid,
    *,
    objective: Objective = "carbon",
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    arrivals: ArrivalHistory | None = None,
) -> PlanResult:
    """Place jobs one at a time, most regret first, each on its cheapest feasible window.

    A window's cost includes the job's blocking charge on that site (`arrivals`).
    """
    check_plan(jobs, grid)
    result = PlanResult(method="greedy")
    if not jobs:
        return result
    rate = plan_rates(grid, objective, weights)
    charge = blocking_charge(jobs, rate, grid.capacity, grid.committed, arrivals)
    sites, horizon = rate.shape
    cum = np.concatenate([np.zeros((sites, 1)), np.cumsum(rate, axis=1)], axis=1)
    usable = grid.capacity > 0
    booked = np.array(grid.committed, dtype=np.float64, copy=True)
    room = np.where(usable, grid.capacity, -1.0)[:, None] + CAPACITY_EPS
    regret = np.zeros(len(jobs))
    for i, job in enumerate(jobs):
        ok = usable if job.eligible is None else usable & job.eligible
        n_start = max(job.latest_start, 0) + 1
        sums = cum[:, job.hours : job.hours + n_start] - cum[:, :n_start]
        per_site = sums.min(axis=1) + charge[i] / job.gpus
        best_two = np.sort(per_site[ok])[:2]
        regret[i] = (best_two[-1] - best_two[0]) * job.gpus if best_two.size else 0.0
    slack = np.array([job.latest_start > 0 for job in jobs])
    for i in np.lexsort((-regret, slack)):
        job = jobs[int(i)]
        ok = usable if job.eligible is None else usable & job.eligible
        n_start = max(job.latest_start, 0) + 1
        sums = cum[:, job.hours : job.hours + n_start] - cum[:, :n_start]
        span = booked[:, : n_start + job.hours - 1]
        peak = span if job.hours == 1 else sliding_window_view(span, job.hours, axis=1).max(axis=2)
        feasible = (peak + job.gpus <= room) & ok[:, None]
        if not feasible.any():
            result.unplaced.append(job.key)
            continue
        masked = np.where(feasible, sums + charge[int(i)][:, None] / job.gpus, np.inf)
        start, site = divmod(int(np.argmin(masked.T.ravel())), sites)
        booked[site, start : start + job.hours] += job.gpus
        cost = float(sums[site, start] * job.gpus)
        result.slots.append(Slot(job.key, site, start, cost, float(charge[int(i), site])))
    return result


def plan_kept(
    jobs: list[PlanJob],
    grid: PlanGrid,
    *,
    objective: Objective = "carbon",
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    arrivals: ArrivalHistory | None = None,
) -> PlanResult:
    """Keep earlier-planned jobs on their slots while these still fit; place the rest greedily.

    The safety net of `plan_hour`: the slots an earlier plan gave fit together (capacity only
    changes through plans), so this plan places every earlier-planned job, whatever the new
    forecasts say and whatever arrived since.
    """
    check_plan(jobs, grid)
    rate = plan_rates(grid, objective, weights)
    charges = blocking_charge(jobs, rate, grid.capacity, grid.committed, arrivals)
    charge = {job.key: row for job, row in zip(jobs, charges, strict=True)}
    sites = rate.shape[0]
    booked = np.array(grid.committed, dtype=np.float64, copy=True)
    room = grid.capacity + CAPACITY_EPS
    result = PlanResult(method="kept")
    rest: list[PlanJob] = []
    for job in sorted(jobs, key=lambda j: (j.planned is None, j.latest_start)):
        if job.planned is None:
            rest.append(job)
            continue
        z, k = job.planned
        fits = (
            0 <= z < sites
            and 0 <= k <= job.latest_start
            and grid.capacity[z] > 0
            and (job.eligible is None or bool(job.eligible[z]))
            and bool((booked[z, k : k + job.hours] + job.gpus <= room[z]).all())
        )
        if not fits:
            rest.append(job)
            continue
        booked[z, k : k + job.hours] += job.gpus
        cost = float(rate[z, k : k + job.hours].sum() * job.gpus)
        result.slots.append(Slot(job.key, z, k, cost, float(charge[job.key][z])))
    others = plan_greedy(
        rest,
        replace(grid, committed=booked),
        objective=objective,
        weights=weights,
        arrivals=arrivals,
    )
    result.slots.extend(others.slots)
    result.unplaced.extend(others.unplaced)
    return result


def plan_hour(
    jobs: list[PlanJob],
    grid: PlanGrid,
    *,
    objective: Objective = "carbon",
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    time_budget_s: float = 1.0,
    headroom: FloatArray | None = None,
    headroom_premium: float = DEFAULT_HEADROOM_PREMIUM,
    max_starts: int = DEFAULT_MAX_STARTS,
    rich_sites: int = DEFAULT_RICH_SITES,
    arrivals: ArrivalHistory | None = None,
    running: list[RunningJob] | None = None,
) -> PlanResult:
    """Plan all free jobs jointly against committed capacity; the product's and replay's entry.

    The joint LP (`tools.broker.planner_lp`) is solved within `time_budget_s` of wall time, all
    of it (building, HiGHS, rounding); when it gives no answer in time the greedy plan is
    returned. The greedy plan also replaces a joint plan that leaves more GPU-hours unplaced
    (no-slack ones first), and, without headroom, one that costs more (greedy knows no headroom).

    Earlier-planned work (`PlanJob.planned`: scheduled, or deferred by an earlier plan) is never
    left unplaced while its slot is still free: a plan that would is replaced by `plan_kept`
    (those slots kept, the rest greedy), which always places it. A job that arrives when
    the accepted work already fills every slot it could use is reported unplaced instead, at
    once, rather than taking the slot of a deferred job that then misses its deadline.

    Args:
        jobs: Pending and scheduled-not-started jobs.
        grid: Forecasts and capacity per site from the origin hour.
        objective: `carbon` minimises forecast kg CO2; `composite` the broker's score x kW.
        weights: Score weights for `composite`.
        time_budget_s: Wall-time budget for the joint solve (<= 0: greedy only); loading the
            solver, once per process, comes before it.
        headroom: (sites,) GPUs each site keeps for large jobs (see `large_job_headroom`);
            None = no headroom.
        headroom_premium: Extra cost of a GPU-hour planned into a site's headroom, as a
            fraction of that site's rate.
        max_starts: Cheapest start offsets per job class kept as LP columns on its
            `rich_sites` cheapest sites (other sites offer their cheapest and first offset).
        rich_sites: See `max_starts`.
        arrivals: Large jobs seen recently: every (job, site) then costs its expected blocking
            of large jobs (`tools.broker.blocking`) in both plans; None = no such charge.
        running: Work running now (already in `grid.committed`) that may move to make room for
            a job the plan starts now (`tools.broker.make_room`); None = running work stays.
            Trying it plans once more, in the time the budget has left; with too little left
            (less than three greedy plans' time) it is not tried. Given (even empty), a
            blocking charge is at most the blocker's expected cost of moving.

    Raises:
        InvalidInputError: Shapes disagree, a job has no GPUs or hours, or a deadline lies beyond
            the forecast horizon.
    """
    if time_budget_s > 0 and jobs:
        # SciPy (HiGHS) loads only when a joint solve runs, not with every command that routes;
        # loading it (once per process) does not count against the planning budget.
        from tools.broker.planner_lp import solve_joint
    t0 = time.perf_counter()
    check_plan(jobs, grid)
    if running is not None and arrivals is not None:
        arrivals = replace(arrivals, blockers_move=True)

    def finish(plan: PlanResult) -> PlanResult:
        """Return `plan`, or the plan with running work moved for a job starting now."""
        if not running:
            return plan
        left = 0.0
        if time_budget_s > 0:
            # The second plan gets what is left less two greedy plans' time (a margin for the
            # trial around it); it needs at least a greedy plan's time to be worth trying.
            left = time_budget_s - (time.perf_counter() - t0) - 2 * greedy_s
            if left < greedy_s:
                return plan

        def replan(others: list[PlanJob], moved: PlanGrid) -> PlanResult:
            return plan_hour(
                others,
                moved,
                objective=objective,
                weights=weights,
                time_budget_s=left,
                headroom=headroom,
                headroom_premium=headroom_premium,
                max_starts=max_starts,
                rich_sites=rich_sites,
                arrivals=arrivals,
            )

        rate = plan_rates(grid, objective, weights)
        charge = blocking_charge(jobs, rate, grid.capacity, grid.committed, arrivals)
        return with_room(plan, jobs, grid, rate, charge, running, replan=replan, rank=_rank)

    greedy = plan_greedy(jobs, grid, objective=objective, weights=weights, arrivals=arrivals)
    greedy_s = time.perf_counter() - t0
    if time_budget_s <= 0 or not jobs:
        kept = _keep_planned(greedy, jobs, grid, objective, weights, arrivals)
        return finish(kept)
    rate = plan_rates(grid, objective, weights)
    usable = grid.capacity > 0
    room = np.maximum(grid.capacity[:, None] - grid.committed, 0.0) * usable[:, None]
    charge = blocking_charge(jobs, rate, grid.capacity, grid.committed, arrivals)
    joint = [_joint(job, usable, row) for job, row in zip(jobs, charge, strict=True)]
    plan = solve_joint(
        joint,
        rate,
        room,
        deadline=t0 + FINISH_SHARE * time_budget_s,
        max_starts=max(1, max_starts),
        rich_sites=max(1, rich_sites),
        headroom=headroom,
        premium=headroom_premium,
        hint=_hints(greedy, jobs),
    )
    if plan is None:
        fallback = _keep_planned(greedy, jobs, grid, objective, weights, arrivals)
        return finish(fallback)
    cum = np.concatenate([np.zeros((rate.shape[0], 1)), np.cumsum(rate, axis=1)], axis=1)
    result = PlanResult(method=plan.method)
    placed = zip(jobs, plan.site.tolist(), plan.start.tolist(), strict=True)
    for i, (job, z, s) in enumerate(placed):
        if z < 0:
            result.unplaced.append(job.key)
            continue
        cost = float((cum[z, s + job.hours] - cum[z, s]) * job.gpus)
        result.slots.append(Slot(job.key, z, s, cost, float(charge[i, z])))
    reserving = headroom is not None and headroom_premium > 0
    best = result
    if _rank(greedy, jobs)[:3] < _rank(result, jobs)[:3]:
        best = greedy
    elif not reserving and _rank(greedy, jobs) < _rank(result, jobs):
        best = greedy
    best = _keep_planned(best, jobs, grid, objective, weights, arrivals)
    return finish(best)


def _keep_planned(
    plan: PlanResult,
    jobs: list[PlanJob],
    grid: PlanGrid,
    objective: Objective,
    weights: ScoreWeights,
    arrivals: ArrivalHistory | None,
) -> PlanResult:
    """Return `plan`, or `plan_kept` when that leaves less earlier-planned work unplaced."""
    if not any(job.planned is not None and job.key in plan.unplaced for job in jobs):
        return plan
    kept = plan_kept(jobs, grid, objective=objective, weights=weights, arrivals=arrivals)
    return kept if _rank(kept, jobs) < _rank(plan, jobs) else plan


def _hints(plan: PlanResult, jobs: list[PlanJob]) -> list[tuple[int, int] | None]:
    at = {slot.key: (slot.site, slot.start) for slot in plan.slots}
    return [at.get(job.key) for job in jobs]


def _joint(job: PlanJob, usable: BoolArray, charge: FloatArray) -> JointJob:
    from tools.broker.planner_model import JointJob

    ok = usable if job.eligible is None else usable & job.eligible
    return JointJob(
        gpus=float(job.gpus),
        hours=job.hours,
        latest=max(job.latest_start, 0),
        eligible=np.asarray(ok, dtype=bool),
        charge=np.asarray(charge, dtype=np.float64),
    )


def _rank(result: PlanResult, jobs: list[PlanJob]) -> tuple[float, float, float, float]:
    """Order plans by unplaced GPU-hours (earlier-planned, no-slack, all), then cost plus charge.

    Costs compare to 1e-9.
    """
    size = {job.key: job.gpus * job.hours for job in jobs}
    now = {job.key for job in jobs if job.latest_start <= 0}
    held = {job.key for job in jobs if job.planned is not None}
    return (
        round(sum(size[k] for k in result.unplaced if k in held), 9),
        round(sum(size[k] for k in result.unplaced if k in now), 9),
        round(sum(size[k] for k in result.unplaced), 9),
        round(sum(slot.cost + slot.charge for slot in result.slots), 9),
    )
