"""The oracle's integer program: job classes, variables, constraints, and HiGHS solves.

Formulation (see `evals.oracle` for the solve order): jobs with the same (arrival, duration,
slack, GPUs) form a class `c` of `n_c` members; `x[c, z, k]` counts members started in zone `z`
at `arrival + k`, `0 <= k <= slack`; `sum_{z,k} x[c,z,k] = n_c`; per zone and hour the GPUs of
the runs covering it stay within the capacity left (`room`); the objective is recorded kg CO2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from evals.fleet import Fleet
from evals.jobs import JobSet
from evals.schedule import assign_starts, ragged_arange, window_cost

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
INTEGRAL_TOL = 1e-6


def job_classes(jobs: JobSet) -> tuple[IntArray, IntArray]:
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
class Problem:
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


def build_problem(
    jobs: JobSet, idx: IntArray, fleet: Fleet, ci: FloatArray, room: FloatArray
) -> Problem:
    """Build the LP for jobs `idx` with (zones, hours) residual capacity `room`."""
    sub = JobSet(
        jobs.arrival[idx], jobs.duration[idx], jobs.gpus[idx], jobs.slack[idx], jobs.origin[idx]
    )
    cls, counts = job_classes(sub)
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
    return Problem(
        idx, cls, counts, vc, vz, vs, obj, a_eq, a_cap[used], np.maximum(room.ravel()[used], 0.0)
    )


def solve_lp(
    p: Problem, time_limit_s: float, *, first: bool = False
) -> tuple[FloatArray, float] | None:
    """Return the LP optimum (x, kg), or None when it did not finish in time.

    A rounding step's LP (not the `first`) also gives None when the jobs left no longer fit.
    """
    if time_limit_s <= 0:
        return None
    lp = linprog(  # type: ignore[call-overload]  # scipy-stubs omit sparse A_ub/A_eq (HiGHS ok)
        p.obj,
        A_ub=p.a_cap,
        b_ub=p.cap,
        A_eq=p.a_eq,
        b_eq=p.counts.astype(float),
        bounds=(0, None),
        method="highs",
        options={"time_limit": time_limit_s},
    )
    if lp.status == 1:
        logger.warning("oracle LP stopped at the time limit: %s", lp.message)
        return None
    if lp.status == 2 and not first:
        logger.info("oracle rounding: the jobs left do not fit the capacity left")
        return None
    if lp.status != 0:
        raise RuntimeError(f"oracle LP failed: {lp.message!r} (status {lp.status!r})")
    return lp.x, float(lp.fun)


def fractional(x: FloatArray) -> npt.NDArray[np.bool_]:
    """Return which entries of `x` are not integral (beyond `INTEGRAL_TOL`)."""
    return np.abs(x - np.rint(x)) > INTEGRAL_TOL


def place(
    problem: Problem, counts: IntArray, start: IntArray, zone: IntArray
) -> npt.NDArray[np.bool_]:
    """Write the slots `counts` (per variable) of `problem` into `start`/`zone`; return placed."""
    s_sub, z_sub = assign_starts(
        problem.cls, counts, problem.vc, problem.vz, problem.vs, problem.jobs.size
    )
    placed = s_sub >= 0
    start[problem.jobs[placed]] = s_sub[placed]
    zone[problem.jobs[placed]] = z_sub[placed]
    return placed


@dataclass(frozen=True)
class MilpResult:
    """What HiGHS's branch and bound gave within its time limit."""

    x: FloatArray | None
    """The best integer solution found (None: none)."""
    gap: float
    """Its relative gap to `dual_bound` (NaN without a solution)."""
    dual_bound: float
    """A proven lower bound on the problem's integer optimum (NaN when HiGHS gave none)."""


def solve_milp(p: Problem, time_limit_s: float, gap: float) -> MilpResult:
    """Return the best integer solution HiGHS finds in `time_limit_s`, its gap and bound."""
    if time_limit_s <= 0:
        return MilpResult(None, float("nan"), float("nan"))
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
    bound = getattr(res, "mip_dual_bound", None)
    dual = float(bound) if bound is not None and np.isfinite(bound) else float("nan")
    if res.x is None:
        logger.warning("oracle MILP gave no solution: %s", res.message)
        return MilpResult(None, float("nan"), dual)
    return MilpResult(res.x, float(getattr(res, "mip_gap", float("nan"))), dual)
