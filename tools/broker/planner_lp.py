"""The planner's joint solve: one LP over (job class, site, start hour) on forecasts, with HiGHS.

Model (the replay oracle's, on forecasts over the plan's horizon instead of recorded values):
jobs with the same (GPUs, hours, latest start, eligible sites) are one class `c` with
`n_c` members. A column `x[c, z, k]` >= 0 counts members of `c` started at site `z`, offset `k`;
`u[c]` >= 0 counts members left unplaced. Minimise `sum x * GPUs * sum rate(z, k..k+hours-1)
+ sum u * GPUs * hours * penalty` subject to `sum_{z,k} x + u = n_c` and, per site and hour,
`committed + GPUs of the columns covering it <= capacity`. The penalty per GPU-hour exceeds any
rate, so the LP places as much work as fits before it minimises cost; for a class without slack
it is `URGENT_UNPLACED_WEIGHT` times higher, as such work is refused for good while the rest
waits for the next plan (`planner_model.unplaced_cost`, the order `plan_hour` ranks plans by).

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
(at most `MILP_NODE_LIMIT` nodes), less, without a headroom reserve, those whose LP reduced cost
exceeds the best plan's gap to the LP bound (no cheaper plan uses them: reduced-cost fixing); its
answer replaces the rounding when it is no dearer (with a reserve, whose premium the plan costs
leave out, an optimal answer always does). On recorded weeks this is where a large job keeps
the clean 8-GPU site: the rounding and the greedy plan both give it to a small job without slack
that fits elsewhere.
The whole solve stops at the caller's deadline (HiGHS `time_limit`); `None` means no LP answer.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, linprog, milp

from tools.broker.planner_model import (
    Columns,
    FloatArray,
    IntArray,
    JointJob,
    JointPlan,
    LPModel,
    classes,
    first_columns,
    lp_model,
    merged,
    priced,
    unplaced_cost,
    unplaced_rate,
)

__all__ = ["JointJob", "JointPlan", "solve_joint"]
INTEGRAL_TOL = 1e-6
CAPACITY_EPS = 1e-9
MIN_SOLVE_S = 0.02
PRICING_ROUNDS = 8
"""LP solves that add priced columns, at most, before the integer plan."""
PRICING_SHARE = 0.5
"""Share of the time left that column generation may use; the rest is for the integer plan."""
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
    cls, rep, counts = classes(jobs)
    columns = first_columns(jobs, rep, cum, max_starts, rich_sites)
    if hint is not None:
        have = np.array([i for i, h in enumerate(hint) if h is not None], dtype=np.int64)
        at = np.array([h for h in hint if h is not None], dtype=np.int64).reshape(-1, 2)
        columns = merged(columns, (cls[have], at[:, 0], at[:, 1]))
    n_class = len(rep)
    if columns[0].size == 0:
        none = np.full(len(jobs), -1, dtype=np.int64)
        return JointPlan(none, none.copy(), "lp")
    gpus = np.array([jobs[i].gpus for i in rep])
    charge = np.stack([jobs[i].site_charge(sites) for i in rep])
    hours = np.array([jobs[i].hours for i in rep], dtype=np.int64)
    latest = np.array([jobs[i].latest for i in rep], dtype=np.int64)
    top = unplaced_rate(rate)
    reserve = np.zeros(sites) if headroom is None or premium <= 0 else np.asarray(headroom)
    held = np.flatnonzero(reserve > 0)
    pricing_ends = time.perf_counter() + PRICING_SHARE * (deadline - time.perf_counter())
    solved: tuple[LPModel, Columns, OptimizeResult] | None = None
    for _ in range(PRICING_ROUNDS + 1):
        model = lp_model(*columns, gpus, hours, latest, cum, room, reserve, premium, rate, charge)
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
        more = priced(jobs, rep, cum, np.asarray(lp.eqlin.marginals), dual_cell)
        if more[0].size == 0 or model.n_col + more[0].size > MILP_MAX_COLUMNS:
            break
        columns = merged(columns, more)
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
    upper = np.full(n_col + n_class + n_y, np.inf)
    if n_y == 0:  # the plan costs leave out the headroom premium: no fixing with a reserve
        reduced = _reduced_costs(model, lp)[:n_col]
        upper[:n_col] = np.where(reduced <= best - float(lp.fun) + CAPACITY_EPS, np.inf, 0.0)
        for plan in [rounded] + ([_hinted(hint)] if hint is not None else []):
            upper[:n_col][_slots(plan, (vc, vz, vs), cls)] = np.inf
    res = milp(
        c_vec,
        constraints=[LinearConstraint(a_eq, counts, counts), LinearConstraint(a_ub, -np.inf, b_ub)],
        integrality=integer,
        bounds=Bounds(0, upper),
        options={"time_limit": left, "mip_rel_gap": MIP_REL_GAP, "node_limit": MILP_NODE_LIMIT},
    )
    if res.x is None:
        return rounded
    exact = _round(jobs, cls, vc, vz, vs, np.rint(res.x[:n_col]), cum, room)
    # Plan costs leave out the headroom premium: with a reserve an optimal answer stands as is.
    dearer = _cost(exact, jobs, cum, top) > _cost(rounded, jobs, cum, top)
    if dearer and (n_y == 0 or res.status != 0):
        return rounded
    return JointPlan(exact.site, exact.start, "milp" if res.status == 0 else "milp-incumbent")


def _reduced_costs(model: LPModel, lp: OptimizeResult) -> FloatArray:
    """Return every variable's reduced cost at the LP optimum (>= 0 up to tolerance).

    A plan that uses column `v` costs at least the LP bound plus `reduced[v]`, so a column
    whose reduced cost exceeds the best known plan's gap to the bound is in no better plan
    and can be fixed at zero (reduced-cost fixing): branch and bound gets a smaller problem
    and loses nothing it could have found.
    """
    y_eq = np.asarray(lp.eqlin.marginals, dtype=np.float64)
    y_ub = np.asarray(lp.ineqlin.marginals, dtype=np.float64)
    reduced: FloatArray = model.c_vec - model.a_eq.T @ y_eq - model.a_ub.T @ y_ub
    return reduced


def _slots(plan: JointPlan, columns: Columns, cls: IntArray) -> IntArray:
    """Return the columns of `plan`'s (class, site, start) slots (slots off the columns skipped)."""
    vc, vz, vs = columns
    keys = zip(vc.tolist(), vz.tolist(), vs.tolist(), strict=True)
    index = {key: v for v, key in enumerate(keys)}
    slots = zip(cls.tolist(), plan.site.tolist(), plan.start.tolist(), strict=True)
    found = [index.get(slot) for slot in slots]
    return np.array([v for v in found if v is not None], dtype=np.int64)


def _hinted(hint: list[tuple[int, int] | None]) -> JointPlan:
    site = np.array([-1 if h is None else h[0] for h in hint], dtype=np.int64)
    start = np.array([-1 if h is None else h[1] for h in hint], dtype=np.int64)
    return JointPlan(site, start, "hint")


def _cost(plan: JointPlan, jobs: list[JointJob], cum: FloatArray, top: float) -> float:
    """Return a plan's cost and charges, unplaced jobs by `unplaced_cost` (headroom not counted)."""
    total = 0.0
    sites = cum.shape[0]
    for job, z, s in zip(jobs, plan.site.tolist(), plan.start.tolist(), strict=True):
        if z < 0:
            total += float(
                unplaced_cost(np.array(job.gpus), np.array(job.hours), np.array(job.latest), top)
            )
        else:
            total += job.gpus * float(cum[z, s + job.hours] - cum[z, s])
            total += float(job.site_charge(sites)[z])
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
    job and fill the rest of its site with small whole jobs. An integral `x` (an integer
    solution) already fits as a whole, so there the jobs it leaves unplaced look for room
    only after every job with a column took it, in what is left: searching earlier could
    take room the solution gave to a smaller job of another class.
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
    later: list[int] = []
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
            if integral:
                later.append(i)
            else:
                _cheapest(free, site, start, i, job, cum)
    for i in later:
        _cheapest(free, site, start, i, jobs[i], cum)
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
    sums = sums + job.site_charge(cum.shape[0])[:, None] / job.gpus
    ok = (low[:, :n_start] >= job.gpus) & job.eligible[:, None]
    if not ok.any():
        return
    masked = np.where(ok, sums, np.inf)
    k, z = divmod(int(np.argmin(masked.T.ravel())), masked.shape[0])
    _take(free, site, start, i, z, k, job)
