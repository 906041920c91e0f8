"""The joint problem's data: jobs, classes, candidate columns and the LP's matrices.

`tools.broker.planner_lp` solves it. Jobs with the same (GPUs, hours, latest start, eligible
sites) are one class; a column is a (class, site, start offset). `first_columns` gives each
class its first candidates, `priced` the ones the LP's duals say would lower its cost, and
`lp_model` the matrices for a set of columns (rows: one per class, one per site-hour, one
per reserved site-hour when headroom is kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Columns = tuple[IntArray, IntArray, IntArray]
"""Class, site and start offset of each column."""
UNPLACED_PENALTY = 10.0
"""Unplaced cost per GPU-hour, in multiples of the highest rate (plus one)."""
URGENT_UNPLACED_WEIGHT = 10.0
"""An unplaced job without slack costs this many times more per GPU-hour: it is refused for
good, while a job with slack can wait for the next plan (the order `plan_hour` ranks plans by)."""
PRICE_TOL = 1e-7
"""A column joins when its reduced cost is below -PRICE_TOL x max(1, |class dual|)."""


@dataclass(frozen=True)
class JointJob:
    """One job as the joint solve sees it."""

    gpus: float
    hours: int
    latest: int
    eligible: BoolArray
    charge: FloatArray | None = None
    """(sites,) cost added to every start on a site (the blocking charge); None = none."""

    def site_charge(self, sites: int) -> FloatArray:
        """Return the (sites,) charge, zeros when the job has none."""
        return np.zeros(sites) if self.charge is None else self.charge


@dataclass(frozen=True)
class JointPlan:
    """Per job: site and start offset (-1 = unplaced), and the solve's status."""

    site: IntArray
    start: IntArray
    method: str
    """`lp` (the LP solution was integral), `lp-rounded`, `milp` or `milp-incumbent`."""


def unplaced_rate(rate: FloatArray) -> float:
    """Return the LP's cost of an unplaced GPU-hour: above any site's rate."""
    return (float(rate.max(initial=0.0)) + 1.0) * UNPLACED_PENALTY


def unplaced_cost(gpus: FloatArray, hours: IntArray, latest: IntArray, top: float) -> FloatArray:
    """Return what leaving each job unplaced costs: its GPU-hours at `top`, more without slack."""
    weight = np.where(latest <= 0, URGENT_UNPLACED_WEIGHT, 1.0)
    out: FloatArray = gpus * hours * top * weight
    return out


def ragged_arange(lengths: IntArray) -> IntArray:
    """Return 0..n-1 for each n in `lengths`, concatenated."""
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1])) - np.repeat(ends - lengths, lengths)


def classes(jobs: list[JointJob]) -> tuple[IntArray, list[int], FloatArray]:
    """Return a class id per job, a representative job per class and the count per class."""
    ids: dict[tuple[object, ...], int] = {}
    cls = np.empty(len(jobs), dtype=np.int64)
    rep: list[int] = []
    counts: list[float] = []
    for i, job in enumerate(jobs):
        charge = b"" if job.charge is None else job.charge.tobytes()
        key = (round(job.gpus * 1000), job.hours, job.latest, job.eligible.tobytes(), charge)
        c = ids.get(key)
        if c is None:
            c = ids[key] = len(rep)
            rep.append(i)
            counts.append(0.0)
        cls[i] = c
        counts[c] += 1.0
    return cls, rep, np.asarray(counts)


def first_columns(
    jobs: list[JointJob], rep: list[int], cum: FloatArray, max_starts: int, rich_sites: int
) -> Columns:
    """Return (class, site, start) of the candidate columns.

    Per class: every eligible site's cheapest start and its first start; the `rich_sites`
    cheapest sites (charge included) also their `max_starts` cheapest starts.
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
        best = sums[np.arange(sites.size), order[:, 0]] + job.site_charge(cum.shape[0])[sites]
        rich = np.argsort(best, kind="stable")[:rich_sites]
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
class LPModel:
    """The LP's matrices for one set of columns (rows: class counts; site-hours; reserve)."""

    c_vec: FloatArray
    a_eq: sparse.csr_array
    a_ub: sparse.csr_array
    b_ub: FloatArray
    n_col: int
    n_y: int


def lp_model(
    vc: IntArray,
    vz: IntArray,
    vs: IntArray,
    gpus: FloatArray,
    hours: IntArray,
    latest: IntArray,
    cum: FloatArray,
    room: FloatArray,
    reserve: FloatArray,
    premium: float,
    rate: FloatArray,
    charge: FloatArray,
) -> LPModel:
    """Return the LP's matrices for the columns (vc, vz, vs); see `LPModel` for the rows.

    `latest` is each class's last start offset (0: no slack); `charge` is the (classes, sites)
    cost a member adds on a site whatever its start.
    """
    sites, horizon = room.shape
    n_class, n_col = gpus.size, vc.size
    held = np.flatnonzero(reserve > 0)
    n_y = held.size * horizon
    n_var = n_col + n_class + n_y
    length = hours[vc]
    c_vec = np.concatenate(
        [
            gpus[vc] * (cum[vz, vs + length] - cum[vz, vs]) + charge[vc, vz],
            unplaced_cost(gpus, hours, latest, unplaced_rate(rate)),
            premium * rate[held].ravel(),
        ]
    )
    eq_rows = np.concatenate([vc, np.arange(n_class)])
    a_eq = sparse.csr_array(
        (np.ones(n_col + n_class), (eq_rows, np.arange(n_col + n_class))), shape=(n_class, n_var)
    )
    rows = np.repeat(vz * horizon + vs, length) + ragged_arange(length)
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
    return LPModel(c_vec, a_eq, a_ub, np.asarray(b_ub, dtype=np.float64), n_col, n_y)


def priced(
    jobs: list[JointJob],
    rep: list[int],
    cum: FloatArray,
    dual_eq: FloatArray,
    dual_cell: FloatArray,
) -> Columns:
    """Return the columns whose reduced cost is negative: per class, the best start per site.

    Reduced cost of (class, site, start) = its cost (charge included) - the class row's dual
    - GPUs x the duals of the site-hours it covers (`dual_cell`, <= 0 where capacity binds).
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
        reduced += job.site_charge(sites)[:, None]
        reduced = np.where(job.eligible[:, None], reduced - dual_eq[c], np.inf)
        best = np.argmin(reduced, axis=1)
        gain = reduced[np.arange(sites), best]
        z = np.flatnonzero(gain < -PRICE_TOL * max(1.0, abs(float(dual_eq[c]))))
        vc.append(np.full(z.size, c, dtype=np.int64))
        vz.append(z.astype(np.int64))
        vs.append(best[z].astype(np.int64))
    return np.concatenate(vc), np.concatenate(vz), np.concatenate(vs)


def merged(columns: Columns, more: Columns) -> Columns:
    """Return both sets of columns, each column once, sorted by (class, site, start)."""
    key = np.unique(
        np.stack([np.concatenate(pair) for pair in zip(columns, more, strict=True)]), axis=1
    )
    return key[0], key[1], key[2]
