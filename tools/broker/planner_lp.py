"""The planner's joint solve: one LP over (job class, site, start hour) on forecasts, with HiGHS.

Model (the replay oracle's, on forecasts over the plan's horizon instead of recorded values):
jobs with the same (GPUs, hours, latest start, eligible sites) are one class `c` with
`n_c` members. A column `x[c, z, k]` >= 0 counts members of `c` started at site `z`, offset `k`;
`u[c]` >= 0 counts members left unplaced. Minimise `sum x * GPUs * sum rate(z, k..k+hours-1)
+ sum u * GPUs * hours * penalty` subject to `sum_{z,k} x + u = n_c` and, per site and hour,
`committed + GPUs of the columns covering it <= capacity`. The penalty per GPU-hour exceeds any
rate, so the LP places as much work as fits before it minimises cost.

Columns: per class every eligible site offers its cheapest and its first start offset, the
`rich_sites` cheapest sites their `max_starts` cheapest offsets, and each job its slot in the
greedy plan (`hint`), so the integer solve can always match greedy. Then column generation: the
LP's duals price every (site, start) of every class, and the best start per site with a
negative reduced cost joins the LP, for up to `PRICING_ROUNDS` rounds or `PRICING_SHARE` of the
time left. A 500-job plan stays a few thousand columns, and its LP is (close to) the LP over all
columns.

Headroom: a site may keep `headroom[z]` GPUs for large jobs (a zero-slack 8-GPU job that finds
the only clean 8-GPU site filled by small jobs goes to a dirty one). Every GPU-hour planned into
that reserve, `y[z, h] >= planned(z, h) - (room(z, h) - headroom[z])`, costs
`premium x rate(z, h)` on top, so small jobs fill it only when the alternatives are dearer by
more than the premium; a large job that needs the reserve pays the premium everywhere it fits.

Integer plan (see `_round`): jobs largest first take their class's column with the largest LP
share left that fits, else their cheapest feasible (site, start) of all. When neither that
rounding nor the greedy plan is within `MILP_TRIGGER_GAP` of the LP bound (and, for plans
over `MILP_SMALL_COLUMNS` columns, within `MILP_TRIGGER_COST`), HiGHS branch and
bound (`scipy.optimize.milp`) solves the integer problem over the same columns in the time left
(at most `MILP_NODE_LIMIT` nodes); its answer replaces the rounding when optimal, or when it is
a cheaper incumbent. On recorded weeks this is where a large job keeps the clean 8-GPU site: the
rounding and the greedy plan both give it to a small job without slack that fits elsewhere.
The whole solve stops at the caller's deadline (HiGHS `time_limit`); `None` means no LP answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, linprog, milp

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
INTEGRAL_TOL = 1e-6
CAPACITY_EPS = 1e-9
UNPLACED_PENALTY = 10.0
"""Unplaced cost per GPU-hour, in multiples of the highest rate (plus one)."""
MIN_SOLVE_S = 0.02
PRICING_ROUNDS = 8
"""LP solves that add priced columns, at most, before the integer plan."""
PRICING_SHARE = 0.5
"""Share of the time left that column generation may use; the rest is for the integer plan."""
PRICE_TOL = 1e-7
"""A column joins when its reduced cost is below -PRICE_TOL x max(1, |class dual|)."""
MILP_TRIGGER_GAP = 0.03
"""Branch and bound runs when the best integer plan so far is this far above the LP bound..."""
MILP_TRIGGER_COST = 1.0
"""...and, above `MILP_SMALL_COLUMNS` columns, at least this much (objective units: kg CO2 for
`carbon`). On replayed weeks it cut the planner's time about fourfold for the same kg."""
MILP_SMALL_COLUMNS = 1_000
MILP_MAX_COLUMNS = 20_000
"""Above this many columns a fractional LP is only rounded (branch and bound rarely finishes)."""
MIP_REL_GAP = 1e-2
MILP_NODE_LIMIT = 5
"""Branch-and-bound nodes; with it the answer depends on the instance, not the machine's load.
HiGHS's root heuristics find the plan that keeps a large job's site; more nodes only cost time."""


@dataclass(frozen=True)
class JointJob:
    """One job as the joint solve sees it."""

    gpus: float
    hours: int
    latest: int
    eligible: BoolArray


@dataclass(frozen=True)
class JointPlan:
    """Per job: site and start offset (-1 = unplaced), and the solve's status."""

    site: IntArray
    start: IntArray
    method: str
    """`lp` (the LP solution was integral), `lp-rounded`, `milp` or `milp-incumbent`."""


def _ragged_arange(lengths: IntArray) -> IntArray:
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1])) - np.repeat(ends - lengths, lengths)


def _classes(jobs: list[JointJob]) -> tuple[IntArray, list[int], FloatArray]:
    """Return a class id per job, a representative job per class and the count per class."""
    ids: dict[tuple[object, ...], int] = {}
    cls = np.empty(len(jobs), dtype=np.int64)
    rep: list[int] = []
    counts: list[float] = []
    for i, job in enumerate(jobs):
        key = (round(job.gpus * 1000), job.hours, job.latest, job.eligible.tobytes())
        c = ids.get(key)
        if c is None:
            c = ids[key] = len(rep)
            rep.append(i)
            counts.append(0.0)
        cls[i] = c
        counts[c] += 1.0
    return cls, rep, np.asarray(counts)


def _columns(
    jobs: list[JointJob], rep: list[int], cum: FloatArray, max_starts: int, rich_sites: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Return (class, site, start) of the candidate columns.

    Per class: every eligible site's cheapest start and its first start; the `rich_sites`
    cheapest sites also their `max_starts` cheapest starts.
    """
    vc: list[IntArray] = []
    vz: list[IntArray] = []
    vs: list[IntArray] = []
    for c, i in enumerate(rep):
        job = jobs[i]
        sites = np.flatnonzero(job.eligible)
        if sites.size == 0:
            continue
        starts = np.arange(job.latest + 1)
        sums = cum[sites][:, starts + job.hours] - cum[sites][:, starts]
        order = np.argsort(sums, axis=1, kind="stable")
        n_keep = min(max_starts, starts.size)
        keep = np.zeros(sums.shape, dtype=bool)
        keep[:, 0] = True
        keep[np.arange(sites.size), order[:, 0]] = True
        rich = np.argsort(sums[np.arange(sites.size), order[:, 0]], kind="stable")[:rich_sites]
        rows = np.repeat(rich, n_keep)
        keep[rows, order[rich, :n_keep].ravel()] = True
        z_idx, k_idx = np.nonzero(keep)
        vc.append(np.full(z_idx.size, c, dtype=np.int64))
        vz.append(sites[z_idx])
        vs.append(starts[k_idx].astype(np.int64))
    if not vc:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(vc), np.concatenate(vz), np.concatenate(vs)


@dataclass
class _Model:
    """The LP's matrices for one set of columns (rows: class counts; site-hours; reserve)."""

    c_vec: FloatArray
    a_eq: sparse.csr_array
    a_ub: sparse.csr_array
    b_ub: FloatArray
    n_col: int
    n_y: int


def _model(
    vc: IntArray,
    vz: IntArray,
    vs: IntArray,
    gpus: FloatArray,
    hours: IntArray,
    cum: FloatArray,
    room: FloatArray,
    reserve: FloatArray,
    premium: float,
    rate: FloatArray,
) -> _Model:
    sites, horizon = room.shape
    n_class, n_col = gpus.size, vc.size
    held = np.flatnonzero(reserve > 0)
    n_y = held.size * horizon
    n_var = n_col + n_class + n_y
    length = hours[vc]
    top = float(rate.max(initial=0.0)) + 1.0
    c_vec = np.concatenate(
        [
            gpus[vc] * (cum[vz, vs + length] - cum[vz, vs]),
            gpus * hours * top * UNPLACED_PENALTY,
            premium * rate[held].ravel(),
        ]
    )
    eq_rows = np.concatenate([vc, np.arange(n_class)])
    a_eq = sparse.csr_array(
        (np.ones(n_col + n_class), (eq_rows, np.arange(n_col + n_class))), shape=(n_class, n_var)
    )
    rows = np.repeat(vz * horizon + vs, length) + _ragged_arange(length)
    cols = np.repeat(np.arange(n_col), length)
    a_cap = sparse.csr_array(
        (np.repeat(gpus[vc], length), (rows, cols)), shape=(sites * horizon, n_var)
    )
    a_cap.sum_duplicates()
    a_ub, b_ub = a_cap, room.ravel()
    if n_y:
        cells = (held[:, None] * horizon + np.arange(horizon)[None, :]).ravel()
        a_res = a_cap[cells].tolil()
        a_res[np.arange(n_y), n_col + n_class + np.arange(n_y)] = -1.0
        a_ub = sparse.vstack([a_ub, a_res.tocsr()], format="csr")
        b_ub = np.concatenate([b_ub, (room[held] - reserve[held, None]).ravel()])
    return _Model(c_vec, a_eq, a_ub, np.asarray(b_ub, dtype=np.float64), n_col, n_y)


def _priced(
    jobs: list[JointJob],
    rep: list[int],
    cum: FloatArray,
    dual_eq: FloatArray,
    dual_cell: FloatArray,
) -> tuple[IntArray, IntArray, IntArray]:
    """Return the columns whose reduced cost is negative: per class, the best start per site.

    Reduced cost of (class, site, start) = its cost - the class row's dual - GPUs x the duals
    of the site-hours it covers (`dual_cell`, <= 0 where capacity binds).
    """
    sites = cum.shape[0]
    cum_dual = np.concatenate([np.zeros((sites, 1)), np.cumsum(dual_cell, axis=1)], axis=1)
    vc: list[IntArray] = []
    vz: list[IntArray] = []
    vs: list[IntArray] = []
    for c, i in enumerate(rep):
        job = jobs[i]
        n_start = job.latest + 1
        span = slice(job.hours, job.hours + n_start)
        reduced = job.gpus * (
            (cum[:, span] - cum[:, :n_start]) - (cum_dual[:, span] - cum_dual[:, :n_start])
        )
        reduced = np.where(job.eligible[:, None], reduced - dual_eq[c], np.inf)
        best = np.argmin(reduced, axis=1)
        gain = reduced[np.arange(sites), best]
        z = np.flatnonzero(gain < -PRICE_TOL * max(1.0, abs(float(dual_eq[c]))))
        vc.append(np.full(z.size, c, dtype=np.int64))
        vz.append(z.astype(np.int64))
        vs.append(best[z].astype(np.int64))
    return np.concatenate(vc), np.concatenate(vz), np.concatenate(vs)


def _merge(
    columns: tuple[IntArray, IntArray, IntArray], more: tuple[IntArray, IntArray, IntArray]
) -> tuple[IntArray, IntArray, IntArray]:
    key = np.unique(
        np.stack([np.concatenate(pair) for pair in zip(columns, more, strict=True)]), axis=1
    )
    return key[0], key[1], key[2]


def solve_joint(
    jobs: list[JointJob],
    rate: FloatArray,
    room: FloatArray,
    *,
    deadline: float,
    max_starts: int,
    rich_sites: int,
    headroom: FloatArray | None = None,
    premium: float = 0.0,
    hint: list[tuple[int, int] | None] | None = None,
) -> JointPlan | None:
    """Solve the joint LP and round it; `None` when HiGHS gives no solution before `deadline`.

    Args:
        jobs: The jobs, with eligibility already restricted to usable sites.
        rate: (sites, horizon) cost per GPU-hour.
        room: (sites, horizon) GPUs free for the plan (capacity minus committed, >= 0).
        deadline: `time.perf_counter()` value by which the solve must end.
        max_starts: Start offsets kept per class on its `rich_sites` cheapest sites.
        rich_sites: Sites per class with more than their cheapest and first start.
        headroom: (sites,) GPUs to keep for large jobs; None = none.
        premium: Extra cost of a GPU-hour in the headroom, as a fraction of the site's rate.
        hint: Per job, a (site, start) of a known feasible plan (the greedy one), added as
            columns so the integer solve can do no worse than it; None where it has none.
    """
    sites, horizon = rate.shape
    cum = np.concatenate([np.zeros((sites, 1)), np.cumsum(rate, axis=1)], axis=1)
    cls, rep, counts = _classes(jobs)
    columns = _columns(jobs, rep, cum, max_starts, rich_sites)
    if hint is not None:
        have = np.array([i for i, h in enumerate(hint) if h is not None], dtype=np.int64)
        at = np.array([h for h in hint if h is not None], dtype=np.int64).reshape(-1, 2)
        columns = _merge(columns, (cls[have], at[:, 0], at[:, 1]))
    n_class = len(rep)
    if columns[0].size == 0:
        none = np.full(len(jobs), -1, dtype=np.int64)
        return JointPlan(none, none.copy(), "lp")
    gpus = np.array([jobs[i].gpus for i in rep])
    hours = np.array([jobs[i].hours for i in rep], dtype=np.int64)
    top = float(rate.max(initial=0.0)) + 1.0
    reserve = np.zeros(sites) if headroom is None or premium <= 0 else np.asarray(headroom)
    held = np.flatnonzero(reserve > 0)
    pricing_ends = time.perf_counter() + PRICING_SHARE * (deadline - time.perf_counter())
    solved: tuple[_Model, tuple[IntArray, IntArray, IntArray], OptimizeResult] | None = None
    for _ in range(PRICING_ROUNDS + 1):
        model = _model(*columns, gpus, hours, cum, room, reserve, premium, rate)
        left = deadline - time.perf_counter()
        if left < MIN_SOLVE_S:
            break
        lp = linprog(  # type: ignore[call-overload]  # scipy-stubs omit sparse A (HiGHS ok)
            model.c_vec,
            A_ub=model.a_ub,
            b_ub=model.b_ub,
            A_eq=model.a_eq,
            b_eq=counts,
            bounds=(0, None),
            method="highs",
            options={"time_limit": left},
        )
        if lp.status != 0 or lp.x is None:
            break
        solved = (model, columns, lp)
        if time.perf_counter() > pricing_ends:
            break
        dual_ub = np.asarray(lp.ineqlin.marginals, dtype=np.float64)
        dual_cell = dual_ub[: sites * horizon].reshape(sites, horizon).copy()
        if model.n_y:
            dual_cell[held] += dual_ub[sites * horizon :].reshape(held.size, horizon)
        more = _priced(jobs, rep, cum, np.asarray(lp.eqlin.marginals), dual_cell)
        if more[0].size == 0 or model.n_col + more[0].size > MILP_MAX_COLUMNS:
            break
        columns = _merge(columns, more)
    if solved is None:
        return None
    model, (vc, vz, vs), lp = solved
    n_col, n_y = model.n_col, model.n_y
    c_vec, a_eq, a_ub, b_ub = model.c_vec, model.a_eq, model.a_ub, model.b_ub
    x = np.asarray(lp.x[:n_col], dtype=np.float64)
    rounded = _round(jobs, cls, vc, vz, vs, x, cum, room)
    left = deadline - time.perf_counter()
    if rounded.method == "lp" or left < MIN_SOLVE_S:
        return rounded
    if n_col > MILP_MAX_COLUMNS:
        return rounded
    best = _cost(rounded, jobs, cum, top)
    if hint is not None:
        best = min(best, _cost(_hinted(hint), jobs, cum, top))
    floor = MILP_TRIGGER_COST if n_col > MILP_SMALL_COLUMNS else 0.0
    if best <= float(lp.fun) + max(MILP_TRIGGER_GAP * float(lp.fun), floor) + CAPACITY_EPS:
        return rounded
    integer = np.concatenate([np.ones(n_col + n_class), np.zeros(n_y)])
    res = milp(
        c_vec,
        constraints=[LinearConstraint(a_eq, counts, counts), LinearConstraint(a_ub, -np.inf, b_ub)],
        integrality=integer,
        bounds=Bounds(0, np.inf),
        options={"time_limit": left, "mip_rel_gap": MIP_REL_GAP, "node_limit": MILP_NODE_LIMIT},
    )
    if res.x is None:
        return rounded
    exact = _round(jobs, cls, vc, vz, vs, np.rint(res.x[:n_col]), cum, room)
    if res.status != 0 and _cost(exact, jobs, cum, top) > _cost(rounded, jobs, cum, top):
        return rounded
    return JointPlan(exact.site, exact.start, "milp" if res.status == 0 else "milp-incumbent")


def _hinted(hint: list[tuple[int, int] | None]) -> JointPlan:
    site = np.array([-1 if h is None else h[0] for h in hint], dtype=np.int64)
    start = np.array([-1 if h is None else h[1] for h in hint], dtype=np.int64)
    return JointPlan(site, start, "hint")


def _cost(plan: JointPlan, jobs: list[JointJob], cum: FloatArray, top: float) -> float:
    """Return a plan's cost with unplaced jobs at the LP's penalty (headroom not counted)."""
    total = 0.0
    for job, z, s in zip(jobs, plan.site.tolist(), plan.start.tolist(), strict=True):
        if z < 0:
            total += job.gpus * job.hours * top * UNPLACED_PENALTY
        else:
            total += job.gpus * float(cum[z, s + job.hours] - cum[z, s])
    return total


def _round(
    jobs: list[JointJob],
    cls: IntArray,
    vc: IntArray,
    vz: IntArray,
    vs: IntArray,
    x: FloatArray,
    cum: FloatArray,
    room: FloatArray,
) -> JointPlan:
    """Turn the LP solution into one (site, start) per job, respecting capacity.

    Jobs go largest first (no-slack jobs before the rest): each takes its class's column with
    the largest LP share left that still fits (a taken column's share drops by one), else its
    cheapest feasible (site, start) of all. Large jobs first, because an LP may split a large
    job and fill the rest of its site with small whole jobs.
    """
    n = len(jobs)
    site = np.full(n, -1, dtype=np.int64)
    start = np.full(n, -1, dtype=np.int64)
    free = room + CAPACITY_EPS
    pos = x > INTEGRAL_TOL
    integral = bool(np.all(np.abs(x[pos] - np.rint(x[pos])) <= INTEGRAL_TOL))
    share = x.copy()
    columns: dict[int, IntArray] = {}
    for v in np.flatnonzero(pos):
        columns.setdefault(int(vc[v]), np.zeros(0, dtype=np.int64))
    for c in columns:
        mine = np.flatnonzero(pos & (vc == c))
        columns[c] = mine
    order = sorted(range(n), key=lambda i: (jobs[i].latest > 0, -jobs[i].gpus, -jobs[i].hours, i))
    for i in order:
        job = jobs[i]
        mine = columns.get(int(cls[i]), np.zeros(0, dtype=np.int64))
        for v in mine[np.argsort(-share[mine], kind="stable")]:
            if share[v] <= INTEGRAL_TOL:
                break
            if _fits(free, int(vz[v]), int(vs[v]), job):
                share[v] -= 1.0
                _take(free, site, start, i, int(vz[v]), int(vs[v]), job)
                break
        else:
            _cheapest(free, site, start, i, job, cum)
    return JointPlan(site, start, "lp" if integral else "lp-rounded")


def _fits(free: FloatArray, z: int, s: int, job: JointJob) -> bool:
    return bool(free[z, s : s + job.hours].min() >= job.gpus)


def _take(
    free: FloatArray, site: IntArray, start: IntArray, i: int, z: int, s: int, job: JointJob
) -> None:
    free[z, s : s + job.hours] -= job.gpus
    site[i], start[i] = z, s


def _cheapest(
    free: FloatArray, site: IntArray, start: IntArray, i: int, job: JointJob, cum: FloatArray
) -> None:
    """Put a job on its cheapest feasible (site, start) over all its offsets, if any fits."""
    n_start = job.latest + 1
    span = free[:, : job.latest + job.hours]
    low = span if job.hours == 1 else sliding_window_view(span, job.hours, axis=1).min(axis=2)
    sums = cum[:, job.hours : job.hours + n_start] - cum[:, :n_start]
    ok = (low[:, :n_start] >= job.gpus) & job.eligible[:, None]
    if not ok.any():
        return
    masked = np.where(ok, sums, np.inf)
    k, z = divmod(int(np.argmin(masked.T.ravel())), masked.shape[0])
    _take(free, site, start, i, z, k, job)
