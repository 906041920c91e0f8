"""Schedule arithmetic shared by the oracles: per-job bound, a schedule's CO2, repair, assign.

Per-job oracle (loose): each job alone takes its lowest-CO2 (zone, start) in its slack, ignoring
capacity (Sukprasert's "spatial one migration + deferral" bound).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from evals.fleet import Fleet
from evals.jobs import JobSet

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

logger = logging.getLogger(__name__)


def window_cost(jobs: JobSet, fleet: Fleet, ci: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return the cumulative CI (zones, hours+1) and the kW per GPU per zone."""
    cum = np.concatenate([np.zeros((ci.shape[0], 1)), np.cumsum(ci, axis=1)], axis=1)
    return cum, fleet.kw_per_gpu


def per_job_oracle(jobs: JobSet, fleet: Fleet, ci: FloatArray) -> tuple[IntArray, IntArray]:
    """Return (start, zone) minimising each job's CO2 alone within its slack, ignoring capacity."""
    cum, kw = window_cost(jobs, fleet, ci)
    usable = fleet.capacity > 0
    start = np.zeros(len(jobs), dtype=np.int64)
    zone = np.zeros(len(jobs), dtype=np.int64)
    keys = np.stack([jobs.duration, jobs.slack], axis=1)
    for length, slack in np.unique(keys, axis=0):
        idx = np.flatnonzero((jobs.duration == length) & (jobs.slack == slack))
        starts = jobs.arrival[idx][:, None] + np.arange(slack + 1)[None, :]
        sums = cum[:, starts + length] - cum[:, starts]
        cost = np.where(usable[:, None, None], sums * kw[:, None, None], np.inf)
        flat = cost.transpose(1, 2, 0).reshape(idx.size, -1)
        best = np.argmin(flat, axis=1)
        k, z = np.divmod(best, ci.shape[0])
        start[idx] = jobs.arrival[idx] + k
        zone[idx] = z
    return start, zone


def schedule_co2(
    jobs: JobSet, fleet: Fleet, ci: FloatArray, start: IntArray, zone: IntArray
) -> float:
    """Return the recorded kg CO2 of a schedule (jobs with start -1 count 0)."""
    cum, kw = window_cost(jobs, fleet, ci)
    ok = start >= 0
    s, z = start[ok], zone[ok]
    sums = cum[z, s + jobs.duration[ok]] - cum[z, s]
    return float((jobs.gpus[ok] * kw[z] * sums).sum() / 1000.0)


def repair_schedule(
    jobs: JobSet, fleet: Fleet, ci: FloatArray, start: IntArray, zone: IntArray
) -> tuple[IntArray, IntArray]:
    """Make a schedule respect capacity: keep what fits in start order, re-insert the rest."""
    cum, kw = window_cost(jobs, fleet, ci)
    room = fleet.capacity + 1e-9
    usage = np.zeros((len(fleet.zones), ci.shape[1] + 1))
    start, zone = start.copy(), zone.copy()
    removed: list[int] = []
    for j in np.lexsort((-jobs.gpus, start)):
        s, z, length, g = start[j], zone[j], jobs.duration[j], jobs.gpus[j]
        if s >= 0 and usage[z, s : s + length].max() + g <= room[z]:
            usage[z, s : s + length] += g
        else:
            removed.append(int(j))
    removed.sort(key=lambda j: (int(jobs.latest_start[j]), -float(jobs.gpus[j])))
    for j in removed:
        length, g = int(jobs.duration[j]), jobs.gpus[j]
        starts = jobs.arrival[j] + np.arange(jobs.slack[j] + 1)
        sums = (cum[:, starts + length] - cum[:, starts]) * kw[:, None]
        peak = np.stack([usage[:, s : s + length].max(axis=1) for s in starts], axis=1)
        masked = np.where(peak + g <= room[:, None], sums, np.inf)
        if not np.isfinite(masked).any():
            start[j], zone[j] = -1, -1
            continue
        k, z = divmod(int(np.argmin(masked.T.ravel())), masked.shape[0])
        start[j], zone[j] = starts[k], z
        usage[z, starts[k] : starts[k] + length] += g
    logger.info("oracle repair: %d jobs re-inserted", len(removed))
    return start, zone


def gpu_usage(
    jobs: JobSet, start: IntArray, zone: IntArray, n_zones: int, n_hours: int
) -> FloatArray:
    """Return the (zones, hours) GPUs used by the placed jobs of a schedule."""
    ok = start >= 0
    delta = np.zeros((n_zones, n_hours + 1))
    np.add.at(delta, (zone[ok], start[ok]), jobs.gpus[ok])
    np.add.at(delta, (zone[ok], start[ok] + jobs.duration[ok]), -jobs.gpus[ok])
    return np.cumsum(delta, axis=1)[:, :n_hours]


def ragged_arange(lengths: IntArray) -> IntArray:
    """Return 0..l-1 for each l in `lengths`, concatenated."""
    ends = np.cumsum(lengths)
    return np.arange(ends[-1]) - np.repeat(ends - lengths, lengths)


def assign_starts(
    cls: IntArray, counts_int: IntArray, vc: IntArray, vz: IntArray, vs: IntArray, n_jobs: int
) -> tuple[IntArray, IntArray]:
    """Hand out each class's (zone, start) slots to its member jobs in job order."""
    start = np.full(n_jobs, -1, dtype=np.int64)
    zone = np.full(n_jobs, -1, dtype=np.int64)
    slot_var = np.repeat(np.arange(vc.size), np.maximum(counts_int, 0))
    order = np.argsort(vc[slot_var], kind="stable")
    slot_var = slot_var[order]
    slot_class = vc[slot_var]
    jobs_by_class = np.argsort(cls, kind="stable")
    # Slots and jobs are both grouped by class; hand out up to each class's slot count.
    slots_per_class = np.bincount(slot_class, minlength=int(cls.max()) + 1)
    first_slot = np.concatenate([[0], np.cumsum(slots_per_class)[:-1]])
    sorted_cls = cls[jobs_by_class]
    rank = np.arange(jobs_by_class.size) - np.searchsorted(sorted_cls, sorted_cls)
    has_slot = rank < slots_per_class[sorted_cls]
    chosen = slot_var[first_slot[sorted_cls[has_slot]] + rank[has_slot]]
    start[jobs_by_class[has_slot]] = vs[chosen]
    zone[jobs_by_class[has_slot]] = vz[chosen]
    return start, zone
