"""Perfect-foresight bound: the capacity-aware offline MILP/LP oracle.

Capacity-aware oracle (the tight bound). Jobs with the same (arrival, duration, slack, GPUs) are
interchangeable, so they are aggregated into classes `c` with `n_c` members. Variables
`x[c, z, k]` >= 0 count members of class `c` started in zone `z` at `arrival + k`,
`0 <= k <= slack`. Minimise recorded kg CO2 `sum x * GPUs * kW/GPU(z) * sum CI(z, h over the run)`
subject to `sum_{z,k} x[c,z,k] = n_c` and, for each zone and hour, the GPUs of the runs covering
that hour <= capacity. Jobs are not preempted or migrated, and deadlines are hard.

Solve order: the LP relaxation with HiGHS (`scipy.optimize.linprog`); if its solution is integral
(within 1e-6) it is optimal for the integer problem too. If not, and the problem has at most
`milp_max_vars` variables, `scipy.optimize.milp` (HiGHS branch and bound) with `mip_rel_gap` and
`time_limit`. Larger fractional LPs (fractional GPU shares make week-sized LPs split a few hundred
jobs) are rounded by fix-and-resolve diving: fix the biggest split jobs (top quarter by
GPU-hours) to their largest LP share, re-solve the LP for the rest against the remaining
capacity, repeat; when few variables are left the MILP finishes the job, and anything still
unplaced is re-inserted greedily, least slack first, into its cheapest (zone, start) with room.
The first LP optimum is a lower bound on any non-migrating, deadline-meeting schedule and is
reported as `lp_bound_kg`; the schedule's own CO2 as `objective_kg`.

The per-job oracle and schedule arithmetic are in `evals.schedule`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from evals.fleet import Fleet
from evals.jobs import JobSet
from evals.schedule import (
    assign_starts,
    gpu_usage,
    ragged_arange,
    repair_schedule,
    schedule_co2,
    window_cost,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
INTEGRAL_TOL = 1e-6
MILP_MAX_VARS = 4_000


@dataclass(frozen=True)
class OracleSolution:
    """A schedule per job and how it was obtained."""

    start: IntArray
    zone: IntArray
    method: str
    """`lp-integral`, `milp`, `lp-rounded`, or `lp-bound+heuristic` (a better incumbent found by
    the perfect-foresight heuristic, see `evals.replay`)."""
    lp_bound_kg: float
    objective_kg: float
    solve_seconds: float
    variables: int
    classes: int
    mip_gap: float | None = None


def _classes(jobs: JobSet) -> tuple[IntArray, IntArray]:
    """Return a class id per job and the members count per class."""
    key = np.stack(
        [jobs.arrival, jobs.duration, jobs.slack, np.rint(jobs.gpus * 1000).astype(np.int64)],
        axis=1,
    )
    _, first, inverse, counts = np.unique(
        key, axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    # Renumber classes by first member so class order follows arrival order.
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.ravel()], counts[order]


@dataclass(frozen=True)
class _Problem:
    """The LP of a subset of jobs against a residual capacity."""

    jobs: IntArray
    """Job ids in the subset."""
    cls: IntArray
    """Class id (0..) per job of the subset."""
    counts: IntArray
    vc: IntArray
    vz: IntArray
    vs: IntArray
    obj: FloatArray
    a_eq: sparse.csr_array
    a_cap: sparse.csr_array
    cap: FloatArray


def _build(jobs: JobSet, idx: IntArray, fleet: Fleet, ci: FloatArray, room: FloatArray) -> _Problem:
    """Build the LP for jobs `idx` with (zones, hours) residual capacity `room`."""
    sub = JobSet(
        jobs.arrival[idx], jobs.duration[idx], jobs.gpus[idx], jobs.slack[idx], jobs.origin[idx]
    )
    cls, counts = _classes(sub)
    rep = np.zeros(counts.size, dtype=np.int64)
    rep[cls[::-1]] = np.arange(idx.size)[::-1]
    cum, kw = window_cost(sub, fleet, ci)
    zones = np.flatnonzero(fleet.capacity > 0)
    n_hours = ci.shape[1]
    n_start = sub.slack[rep] + 1
    vc = np.repeat(np.repeat(np.arange(counts.size), n_start), zones.size)
    vs = np.repeat(
        sub.arrival[rep][np.repeat(np.arange(counts.size), n_start)] + ragged_arange(n_start),
        zones.size,
    )
    vz = np.tile(zones, int(n_start.sum()))
    length, gpus = sub.duration[rep[vc]], sub.gpus[rep[vc]]
    obj = gpus * kw[vz] * (cum[vz, vs + length] - cum[vz, vs]) / 1000.0
    n_var = obj.size
    a_eq = sparse.csr_array((np.ones(n_var), (vc, np.arange(n_var))), shape=(counts.size, n_var))
    rows = np.repeat(vz * n_hours + vs, length) + ragged_arange(length)
    cols = np.repeat(np.arange(n_var), length)
    a_cap = sparse.csr_array(
        (np.repeat(gpus, length), (rows, cols)), shape=(len(fleet.zones) * n_hours, n_var)
    )
    a_cap.sum_duplicates()
    used = np.flatnonzero(np.diff(a_cap.indptr) > 0)
    return _Problem(
        idx, cls, counts, vc, vz, vs, obj, a_eq, a_cap[used], np.maximum(room.ravel()[used], 0.0)
    )


def _solve_lp(p: _Problem) -> tuple[FloatArray, float]:
    lp = linprog(  # type: ignore[call-overload]  # scipy-stubs omit sparse A_ub/A_eq (HiGHS ok)
        p.obj,
        A_ub=p.a_cap,
        b_ub=p.cap,
        A_eq=p.a_eq,
        b_eq=p.counts.astype(float),
        bounds=(0, None),
        method="highs",
    )
    if lp.status != 0:
        raise RuntimeError(f"oracle LP failed: {lp.message!r} (status {lp.status!r})")
    return lp.x, float(lp.fun)


def solve_oracle(
    jobs: JobSet,
    fleet: Fleet,
    ci: FloatArray,
    *,
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 1e-3,
    milp_max_vars: int = MILP_MAX_VARS,
    max_rounds: int = 8,
) -> OracleSolution:
    """Solve the capacity-aware offline problem over recorded CI `ci` (zones, hours).

    Large instances whose LP is fractional are rounded iteratively: the whole-job parts of the
    LP solution are fixed, the LP is solved again for the jobs left over against the remaining
    capacity, up to `max_rounds` times; whatever is still left is inserted greedily.

    Args:
        jobs: Jobs on the replay hour grid.
        fleet: Capacity and power per zone.
        ci: Recorded CI (zones, hours) covering every job's latest finish.
        time_limit_s: Time budget of the MILP solves (the LP rounds are not limited).
        mip_rel_gap: Relative optimality gap at which the MILP stops.
        milp_max_vars: Above this many variables a fractional LP is rounded instead of running
            the MILP (HiGHS rarely closes the gap on week-sized instances within a minute).
        max_rounds: Rounds of fix-and-resolve LP rounding.
    """
    t0 = time.perf_counter()
    n_jobs = len(jobs)
    room = np.repeat(fleet.capacity[:, None], ci.shape[1], axis=1)
    start = np.full(n_jobs, -1, dtype=np.int64)
    zone = np.full(n_jobs, -1, dtype=np.int64)
    first = _build(jobs, np.arange(n_jobs), fleet, ci, room)
    x, bound = _solve_lp(first)
    method, gap = "lp-integral", None
    fractional = np.abs(x - np.rint(x)) > INTEGRAL_TOL
    logger.info("oracle LP: %d of %d variables fractional", int(fractional.sum()), x.size)
    if fractional.any() and x.size <= milp_max_vars:
        integral, gap = _solve_milp(first, _left(t0, time_limit_s), mip_rel_gap)
        if integral is not None:
            x, method = integral, "milp"
    problem, rounds = first, 0
    while True:
        rounds += 1
        frac = np.abs(x - np.rint(x)) > INTEGRAL_TOL
        if not frac.any() or rounds >= max_rounds or problem.obj.size <= milp_max_vars:
            if frac.any() and problem.obj.size <= milp_max_vars:
                integral, _ = _solve_milp(problem, _left(t0, time_limit_s), mip_rel_gap)
                x = x if integral is None else integral
            whole = np.floor(x + INTEGRAL_TOL).astype(np.int64)
            s_sub, z_sub = assign_starts(
                problem.cls, whole, problem.vc, problem.vz, problem.vs, problem.jobs.size
            )
            placed = s_sub >= 0
            start[problem.jobs[placed]] = s_sub[placed]
            zone[problem.jobs[placed]] = z_sub[placed]
            break
        method = "lp-rounded"
        fixed = _dive(jobs, fleet, ci, problem, x, frac, start, zone)
        left = problem.jobs[~fixed]
        if left.size == 0:
            break
        room = fleet.capacity[:, None] - gpu_usage(jobs, start, zone, len(fleet.zones), ci.shape[1])
        problem = _build(jobs, left, fleet, ci, room)
        x, rest = _solve_lp(problem)
        logger.debug(
            "oracle round %d: %d jobs left, fixed %.2f kg + LP %.2f kg",
            rounds,
            left.size,
            schedule_co2(jobs, fleet, ci, start, zone),
            rest,
        )
    if (start < 0).any():
        method = "lp-rounded"
        start, zone = repair_schedule(jobs, fleet, ci, start, zone)
    elapsed = time.perf_counter() - t0
    logger.info("oracle %s: %d vars, %d rounds, %.2fs", method, first.obj.size, rounds, elapsed)
    return OracleSolution(
        start=start,
        zone=zone,
        method=method,
        lp_bound_kg=bound,
        objective_kg=schedule_co2(jobs, fleet, ci, start, zone),
        solve_seconds=elapsed,
        variables=int(first.obj.size),
        classes=int(first.counts.size),
        mip_gap=gap,
    )


def _left(t0: float, budget_s: float) -> float:
    """Return the seconds left of the oracle's time budget (at least one)."""
    return max(1.0, budget_s - (time.perf_counter() - t0))


def _solve_milp(p: _Problem, time_limit_s: float, gap: float) -> tuple[FloatArray | None, float]:
    res = milp(
        p.obj,
        constraints=[
            LinearConstraint(p.a_eq, p.counts, p.counts),
            LinearConstraint(p.a_cap, -np.inf, p.cap),
        ],
        integrality=np.ones(p.obj.size, dtype=np.int64),  # all integer (milp casts to uint8)
        bounds=Bounds(0, np.inf),
        options={"time_limit": time_limit_s, "mip_rel_gap": gap},
    )
    if res.x is None:
        logger.warning("oracle MILP gave no solution: %s", res.message)
        return None, float("nan")
    return res.x, float(getattr(res, "mip_gap", float("nan")))


def _dive(
    jobs: JobSet,
    fleet: Fleet,
    ci: FloatArray,
    problem: _Problem,
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
