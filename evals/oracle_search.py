"""Local search on a feasible oracle schedule: single-job moves, then ruin-and-recreate moves.

Both moves keep capacity, arrivals and deadlines and never raise the schedule's CO2:

* move: take one job out and put it back at its cheapest (zone, start) with room;
* evict: for a job above its own best slot, try its cheaper slots one by one; clear the room it
  needs by taking out the jobs it overlaps in that zone, place it, and put the taken-out jobs
  back at their cheapest slots with room, least slack first (large jobs blocked by many small
  ones are what single moves cannot fix). The result is kept only when the total CO2 falls.

Jobs are visited by how far they are above their own best slot (capacity ignored), largest
first, until nothing improves or the deadline (`time.perf_counter()` value) passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from evals.fleet import Fleet
from evals.jobs import JobSet
from evals.schedule import gpu_usage, per_job_oracle, window_cost

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
EVICT_SLOTS = 4
"""Cheaper slots an evict move tries per job."""
_IMPROVES = 1 - 1e-9


@dataclass
class _Search:
    jobs: JobSet
    cum: FloatArray
    kw: FloatArray
    room: FloatArray
    usage: FloatArray
    start: IntArray
    zone: IntArray

    def slot_costs(self, j: int) -> tuple[FloatArray, FloatArray]:
        """Return (cost, peak usage) per (zone, start offset) of job `j` (usage without it)."""
        a, slack, n = int(self.jobs.arrival[j]), int(self.jobs.slack[j]), int(self.jobs.duration[j])
        cost = (self.cum[:, a + n : a + n + slack + 1] - self.cum[:, a : a + slack + 1]) * self.kw[
            :, None
        ]
        peak = sliding_window_view(self.usage[:, a : a + slack + n], n, axis=1).max(axis=2)
        return cost * self.jobs.gpus[j], peak

    def take(self, j: int) -> None:
        s, n = int(self.start[j]), int(self.jobs.duration[j])
        self.usage[int(self.zone[j]), s : s + n] -= self.jobs.gpus[j]

    def put(self, j: int, z: int, s: int) -> None:
        self.start[j], self.zone[j] = s, z
        self.usage[z, s : s + int(self.jobs.duration[j])] += self.jobs.gpus[j]

    def cost_of(self, j: int) -> float:
        s, z, n = int(self.start[j]), int(self.zone[j]), int(self.jobs.duration[j])
        return float((self.cum[z, s + n] - self.cum[z, s]) * self.kw[z] * self.jobs.gpus[j])

    def best_fit(self, j: int) -> tuple[int, int, float] | None:
        """Return the cheapest (zone, start, cost) with room for `j`, or None."""
        cost, peak = self.slot_costs(j)
        cost = np.where(peak + self.jobs.gpus[j] <= self.room[:, None], cost, np.inf)
        k, z = divmod(int(np.argmin(cost.T.ravel())), cost.shape[0])
        if not np.isfinite(cost[z, k]):
            return None
        return z, int(self.jobs.arrival[j]) + k, float(cost[z, k])

    def move(self, j: int) -> bool:
        before = self.cost_of(j)
        z0, s0 = int(self.zone[j]), int(self.start[j])
        self.take(j)
        fit = self.best_fit(j)
        assert fit is not None  # its own slot is free again
        z, s, cost = fit
        if cost < before * _IMPROVES:
            self.put(j, z, s)
            return True
        self.put(j, z0, s0)
        return False

    def evict(self, j: int) -> bool:
        jobs = self.jobs
        before_j = self.cost_of(j)
        cost, _ = self.slot_costs(j)
        a, n = int(jobs.arrival[j]), int(jobs.duration[j])
        flat = np.argsort(cost.T.ravel(), kind="stable")[:EVICT_SLOTS]
        for k, z in (divmod(int(f), cost.shape[0]) for f in flat):
            if cost[z, k] >= before_j * _IMPROVES:
                break
            if self.room[z] < jobs.gpus[j]:
                continue
            s = a + k
            on = np.flatnonzero(
                (self.zone == z) & (self.start < s + n) & (self.start + jobs.duration > s)
            )
            on = on[on != j]
            saved = [(int(i), int(self.zone[i]), int(self.start[i])) for i in on]
            saved.append((j, int(self.zone[j]), int(self.start[j])))
            before = sum(self.cost_of(i) for i, _, _ in saved)
            for i, _, _ in saved:
                self.take(i)
            self.put(j, z, s)
            after = float(cost[z, k])
            placed = [j]
            ok = self.usage[z, s : s + n].max() <= self.room[z]
            for i in sorted(on, key=lambda i: (int(jobs.latest_start[i]), -float(jobs.gpus[i]))):
                fit = self.best_fit(int(i)) if ok else None
                if fit is None:
                    ok = False
                    break
                self.put(int(i), fit[0], fit[1])
                placed.append(int(i))
                after += fit[2]
            if ok and after < before * _IMPROVES:
                return True
            for i in placed:
                self.take(i)
            for i, z0, s0 in saved:
                self.put(i, z0, s0)
        return False


def improve_schedule(
    jobs: JobSet,
    fleet: Fleet,
    ci: FloatArray,
    start: IntArray,
    zone: IntArray,
    *,
    deadline: float,
    max_passes: int = 10,
) -> tuple[IntArray, IntArray, int]:
    """Return the improved (start, zone) and the number of moves made (module docstring)."""
    cum, kw = window_cost(jobs, fleet, ci)
    room = np.where(fleet.capacity > 0, fleet.capacity, -1.0) + 1e-9
    usage = gpu_usage(jobs, start, zone, len(fleet.zones), ci.shape[1] + 1)
    search = _Search(jobs, cum, kw, room, usage, start.copy(), zone.copy())
    best_start, best_zone = per_job_oracle(jobs, fleet, ci)
    n = jobs.duration
    ideal = (cum[best_zone, best_start + n] - cum[best_zone, best_start]) * kw[best_zone]
    moves = 0
    placed = np.flatnonzero(start >= 0)  # a job the schedule could not place is left alone
    for _ in range(max_passes):
        current = np.zeros(len(jobs))
        current[placed] = [search.cost_of(int(j)) for j in placed]
        excess = np.where(start >= 0, current - ideal * jobs.gpus, 0.0)
        order = np.argsort(-excess, kind="stable")
        moved = 0
        for j in order[excess[order] > 1e-12]:
            if time.perf_counter() >= deadline:
                return search.start, search.zone, moves + moved
            moved += search.move(int(j)) or search.evict(int(j))
        moves += moved
        if moved == 0:
            break
    return search.start, search.zone, moves
