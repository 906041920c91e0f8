"""Perfect-foresight bound: the capacity-aware offline MILP/LP oracle.

Capacity-aware oracle (the tight bound). Jobs with the same (arrival, duration, slack, GPUs) are
interchangeable, so they are aggregated into classes `c` with `n_c` members. Variables
`x[c, z, k]` >= 0 count members of class `c` started in zone `z` at `arrival + k`,
`0 <= k <= slack`. Minimise recorded kg CO2 `sum x * GPUs * kW/GPU(z) * sum CI(z, h over the run)`
subject to `sum_{z,k} x[c,z,k] = n_c` and, for each zone and hour, the GPUs of the runs covering
that hour <= capacity. Jobs are not preempted or migrated, and deadlines are hard.

Solve order, all inside one time budget (`time_limit_s` bounds LP + MILP + repair):

1. The LP relaxation with HiGHS (`scipy.optimize.linprog`). Its optimum is a lower bound on any
   non-migrating, deadline-meeting schedule, reported as `lp_bound_kg`. If the solution is
   integral (within 1e-6) it is optimal for the integer problem too (`lp-integral`).
2. Fractional, and at most `milp_max_vars` variables: the whole integer problem with
   `scipy.optimize.milp` (HiGHS branch and bound), `mip_rel_gap` and the time left (`milp`).
3. Fractional and larger (fractional GPU shares make week-sized LPs split a few hundred jobs),
   the whole integer problem first with most of the time (`WHOLE_MILP_SHARE`; HiGHS's incumbent
   at the time limit), then two schedules from the LP, and the one of the three with least CO2
   is kept:
   a. fix-and-resolve diving: fix the biggest split jobs (top quarter by GPU-hours) to their
      largest LP share, re-solve the LP for the rest against the capacity left, repeat up to
      `max_rounds` times or until 70 % of the time left is used (`lp-rounded`);
   b. fix the classes the LP already places integrally and solve the integer problem of the split
      classes against the capacity left, with `milp` and the time left (`lp-fix+milp`). HiGHS
      may stop at the time limit with a poor incumbent, which is why (a) is computed first.
4. Anything still unplaced is re-inserted greedily, least slack first, into its cheapest
   (zone, start) with room (`evals.schedule.repair_schedule`). If the first LP itself does not
   finish in time there is no bound (`lp_bound_kg` NaN) and every job is placed that way
   (`greedy`).
5. Unless the LP was integral, a local search (`evals.oracle_search`) with the time left (at
   least 15 % of what the first LP left in step 3) moves jobs to cheaper slots with room,
   singly or by clearing room for a large job; CO2 never rises.

`objective_kg` is the schedule's own CO2; `objective_kg / lp_bound_kg - 1` is how far the
oracle can be above the true optimum (`gap_vs_lp_bound`).

The formulation and the HiGHS calls are in `evals.oracle_lp`, the local search in
`evals.oracle_search`, the per-job oracle and schedule arithmetic in `evals.schedule`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evals.fleet import Fleet
from evals.jobs import JobSet
from evals.oracle_lp import (
    INTEGRAL_TOL,
    Problem,
    build_problem,
    fractional,
    place,
    solve_lp,
    solve_milp,
)
from evals.oracle_search import improve_schedule
from evals.schedule import (
    gpu_usage,
    repair_schedule,
    schedule_co2,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MILP_MAX_VARS = 4_000
SEARCH_SHARE = 0.15
"""Share of the time left after the first LP kept for the final local search."""
DIVE_SHARE = 0.7
WHOLE_MILP_SHARE = 0.7
"""Share of the solve time (after the first LP, before the search) the whole MILP may use when
it is larger than `MILP_MAX_VARS`; diving and the split-class MILP get the rest."""
"""Share of the rest that diving may use; the split-class MILP gets what diving leaves."""


@dataclass(frozen=True)
class OracleSolution:
    """A schedule per job and how it was obtained."""

    start: IntArray
    zone: IntArray
    method: str
    """`lp-integral`, `milp`, `lp-fix+milp`, `lp-rounded` or `greedy` (module docstring); the
    replay appends ", bettered by <policy>'s schedule" when a policy run emitted less."""
    lp_bound_kg: float
    """The LP optimum, a lower bound on every feasible schedule (NaN when the LP timed out)."""
    objective_kg: float
    solve_seconds: float
    variables: int
    classes: int
    mip_gap: float | None = None
    """HiGHS's relative gap of the last MILP solved (of the split jobs only for `lp-fix+milp`)."""
    moves: int = 0
    """Single-job moves of the final local search (step 5 of the module docstring)."""
    milp_bound_kg: float = math.nan
    """The best lower bound proven on the integer problem, at least `lp_bound_kg`: HiGHS's dual
    bound of the whole MILP, or the LP optimum when it is integral; NaN when neither ran."""

    @property
    def gap_vs_lp_bound(self) -> float | None:
        """Return `objective_kg / lp_bound_kg - 1` (None without a positive bound)."""
        if math.isnan(self.lp_bound_kg) or self.lp_bound_kg <= 0:
            return None
        return self.objective_kg / self.lp_bound_kg - 1.0


def solve_oracle(
    jobs: JobSet,
    fleet: Fleet,
    ci: FloatArray,
    *,
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 1e-3,
    milp_max_vars: int = MILP_MAX_VARS,
    max_rounds: int = 8,
    whole_milp_share: float = WHOLE_MILP_SHARE,
) -> OracleSolution:
    """Solve the capacity-aware offline problem over recorded CI `ci` (zones, hours).

    Args:
        jobs: Jobs on the replay hour grid.
        fleet: Capacity and power per zone.
        ci: Recorded CI (zones, hours) covering every job's latest finish.
        time_limit_s: Budget of the whole solve (LP, MILP, rounding); the final greedy repair
            of jobs left unplaced when it runs out is the only step after it.
        mip_rel_gap: Relative optimality gap at which the MILP stops.
        milp_max_vars: Up to this many variables a fractional LP goes to the MILP whole; above
            it only the split classes do (step 3 of the module docstring).
        max_rounds: Rounds of fix-and-resolve LP diving.
        whole_milp_share: Share of the solve time the whole MILP may use above `milp_max_vars`
            (0: only diving and the split-class MILP).
    """
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    n_jobs = len(jobs)
    start = np.full(n_jobs, -1, dtype=np.int64)
    zone = np.full(n_jobs, -1, dtype=np.int64)
    room = np.repeat(fleet.capacity[:, None], ci.shape[1], axis=1)
    first = build_problem(jobs, np.arange(n_jobs), fleet, ci, room)
    solved = solve_lp(first, _left(deadline), first=True)
    bound, method, gap, milp_bound = math.nan, "greedy", None, math.nan
    if solved is not None:
        x, bound = solved
        frac = fractional(x)
        logger.info("oracle LP: %d of %d variables fractional", int(frac.sum()), x.size)
        if not frac.any():
            method, milp_bound = "lp-integral", bound
            place(first, np.rint(x).astype(np.int64), start, zone)
        elif x.size <= milp_max_vars:
            whole = solve_milp(first, _left(deadline), mip_rel_gap)
            integral, gap, milp_bound = whole.x, whole.gap, whole.dual_bound
            method = "milp" if integral is not None else "lp-rounded"
            counts = np.rint(integral) if integral is not None else np.floor(x + INTEGRAL_TOL)
            place(first, counts.astype(np.int64), start, zone)
        else:
            solve_by = deadline - SEARCH_SHARE * _left(deadline)
            method, gap, milp_bound = _whole_or_fixed(
                jobs,
                fleet,
                ci,
                first,
                x,
                start,
                zone,
                solve_by,
                mip_rel_gap,
                max_rounds,
                whole_milp_share,
            )
    if (start < 0).any():
        start, zone = repair_schedule(jobs, fleet, ci, start, zone)
    moves = 0
    if method != "lp-integral":
        start, zone, moves = improve_schedule(jobs, fleet, ci, start, zone, deadline=deadline)
    elapsed = time.perf_counter() - t0
    logger.info("oracle %s: %d vars, %.2fs", method, first.obj.size, elapsed)
    return OracleSolution(
        start=start,
        zone=zone,
        method=method,
        lp_bound_kg=bound,
        milp_bound_kg=max(milp_bound, bound) if not math.isnan(milp_bound) else math.nan,
        objective_kg=schedule_co2(jobs, fleet, ci, start, zone),
        solve_seconds=elapsed,
        variables=int(first.obj.size),
        classes=int(first.counts.size),
        mip_gap=gap,
        moves=moves,
    )


def _whole_or_fixed(
    jobs: JobSet,
    fleet: Fleet,
    ci: FloatArray,
    first: Problem,
    x: FloatArray,
    start: IntArray,
    zone: IntArray,
    deadline: float,
    mip_rel_gap: float,
    max_rounds: int,
    share: float,
) -> tuple[str, float | None, float]:
    """Keep the better of the whole MILP and of diving / split-class MILP (module docstring, 3).

    The whole integer problem gets `share` of the time to `deadline`: on week-sized
    problems HiGHS's incumbent is far better than rounding the LP (2024-01-01: 93.4 kg in 55 s
    against 111.0 kg), but it may find none in time. Fills `start`/`zone`.
    """
    result = solve_milp(first, share * _left(deadline), mip_rel_gap)
    whole, whole_gap = result.x, result.gap
    whole_s, whole_z = start.copy(), zone.copy()
    if whole is not None:
        place(first, np.rint(whole).astype(np.int64), whole_s, whole_z)
        whole_s, whole_z = repair_schedule(jobs, fleet, ci, whole_s, whole_z)
    method, gap = _fix_and_milp(
        jobs, fleet, ci, first, x, start, zone, deadline, mip_rel_gap, max_rounds
    )
    if whole is not None:
        whole_kg = schedule_co2(jobs, fleet, ci, whole_s, whole_z)
        fixed_kg = schedule_co2(jobs, fleet, ci, start, zone)
        logger.info("oracle: whole MILP %.2f kg, %s %.2f kg", whole_kg, method, fixed_kg)
        if whole_kg <= fixed_kg:
            start[:], zone[:] = whole_s, whole_z
            return "milp", whole_gap, result.dual_bound
    return method, gap, result.dual_bound


def _fix_and_milp(
    jobs: JobSet,
    fleet: Fleet,
    ci: FloatArray,
    first: Problem,
    x: FloatArray,
    start: IntArray,
    zone: IntArray,
    deadline: float,
    mip_rel_gap: float,
    max_rounds: int,
) -> tuple[str, float | None]:
    """Keep the better of the diving and the split-class MILP schedules (module docstring, 3).

    Fills `start`/`zone` and returns (method, MILP gap).
    """
    dived_s, dived_z = start.copy(), zone.copy()
    dive_deadline = time.perf_counter() + DIVE_SHARE * _left(deadline)
    _dive_rounds(jobs, fleet, ci, first, x, dived_s, dived_z, dive_deadline, max_rounds)
    dived_s, dived_z = repair_schedule(jobs, fleet, ci, dived_s, dived_z)
    best: tuple[str, IntArray, IntArray, float | None] = ("lp-rounded", dived_s, dived_z, None)
    best_kg = schedule_co2(jobs, fleet, ci, dived_s, dived_z)

    split = np.zeros(first.counts.size, dtype=bool)
    split[first.vc[fractional(x)]] = True
    keep = np.where(split[first.vc], 0, np.rint(x)).astype(np.int64)
    fixed_s, fixed_z = start.copy(), zone.copy()
    placed = place(first, keep, fixed_s, fixed_z)
    left = first.jobs[~placed]
    n_zones, n_hours = len(fleet.zones), ci.shape[1]
    room = fleet.capacity[:, None] - gpu_usage(jobs, fixed_s, fixed_z, n_zones, n_hours)
    problem = build_problem(jobs, left, fleet, ci, room)
    logger.info("oracle: %d split jobs, %d MILP variables", left.size, problem.obj.size)
    split_milp = solve_milp(problem, _left(deadline), mip_rel_gap)
    integral, gap = split_milp.x, split_milp.gap
    if integral is not None:
        place(problem, np.rint(integral).astype(np.int64), fixed_s, fixed_z)
        fixed_s, fixed_z = repair_schedule(jobs, fleet, ci, fixed_s, fixed_z)
        kg = schedule_co2(jobs, fleet, ci, fixed_s, fixed_z)
        logger.info("oracle: diving %.2f kg, split-class MILP %.2f kg", best_kg, kg)
        if kg < best_kg:
            best = ("lp-fix+milp", fixed_s, fixed_z, gap)
    method, best_s, best_z, best_gap = best
    start[:], zone[:] = best_s, best_z
    return method, best_gap


def _dive_rounds(
    jobs: JobSet,
    fleet: Fleet,
    ci: FloatArray,
    problem: Problem,
    x: FloatArray,
    start: IntArray,
    zone: IntArray,
    deadline: float,
    max_rounds: int,
) -> None:
    """Fix-and-resolve LP diving from `problem`'s LP solution `x`; fills `start`/`zone`."""
    n_zones, n_hours = len(fleet.zones), ci.shape[1]
    for _ in range(max_rounds):
        frac = fractional(x)
        if not frac.any():
            place(problem, np.rint(x).astype(np.int64), start, zone)
            return
        fixed = _dive(jobs, fleet, ci, problem, x, frac, start, zone)
        left = problem.jobs[~fixed]
        if left.size == 0:
            return
        room = fleet.capacity[:, None] - gpu_usage(jobs, start, zone, n_zones, n_hours)
        problem = build_problem(jobs, left, fleet, ci, room)
        solved = solve_lp(problem, _left(deadline))
        if solved is None:
            return
        x = solved[0]
    place(problem, np.floor(x + INTEGRAL_TOL).astype(np.int64), start, zone)


def _left(deadline: float) -> float:
    """Return the seconds left of the oracle's time budget (0 when it is spent)."""
    return max(0.0, deadline - time.perf_counter())


def _dive(
    jobs: JobSet,
    fleet: Fleet,
    ci: FloatArray,
    problem: Problem,
    x: FloatArray,
    frac: npt.NDArray[np.bool_],
    start: IntArray,
    zone: IntArray,
) -> npt.NDArray[np.bool_]:
    """Fix the biggest split jobs (top quarter by GPU-hours) to their largest LP share.

    Returns which jobs of `problem` were fixed (written into `start`/`zone`).
    """
    usage = gpu_usage(jobs, start, zone, len(fleet.zones), ci.shape[1])
    room = fleet.capacity + 1e-9
    rep = np.zeros(problem.counts.size, dtype=np.int64)
    rep[problem.cls[::-1]] = np.arange(problem.jobs.size)[::-1]
    split = np.unique(problem.vc[frac])
    footprint = jobs.gpus[problem.jobs[rep[split]]] * jobs.duration[problem.jobs[rep[split]]]
    chosen = split[np.argsort(-footprint, kind="stable")[: max(1, split.size // 4)]]
    done = np.zeros(problem.jobs.size, dtype=bool)
    for c in chosen:
        members = np.flatnonzero(problem.cls == c)
        for v in np.flatnonzero(problem.vc == c)[np.argsort(-x[problem.vc == c], kind="stable")]:
            if x[v] <= INTEGRAL_TOL:
                break
            i = members[~done[members]]
            if i.size == 0:
                break
            j = problem.jobs[i[0]]
            s, z, length, g = problem.vs[v], problem.vz[v], jobs.duration[j], jobs.gpus[j]
            if usage[z, s : s + length].max() + g <= room[z]:
                usage[z, s : s + length] += g
                start[j], zone[j], done[i[0]] = s, z, True
                break
    return done
