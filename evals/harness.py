"""Simulate one policy hour by hour over a replay window and account energy, CO2 and money.

Per hour: new arrivals join the waiting list; the policy decides from an `HourState` and a
`GridView` positioned at that hour (only jobs that have arrived, only recorded hours up to now:
see `evals.view` and `evals.policy_base`); the harness applies moves of running jobs (only to a
zone with room for their hours left), routes (counting reroutes, moves included, refusing more
than 5 per job) and starts (only when the zone has the free GPUs). A started job runs its whole
duration: in its zone, or once moved in the new zone from the hour of the move. Afterwards
energy (`GPUs x kW/GPU x hours`), CO2 (each hour's recorded CI), energy cost (each hour's price,
missing prices filled by the window's accounting rule) and the customer charge (`GPUs x hours x
zone price`, integer minor units) are summed per job, segment by segment.
A job that finishes after its deadline, or never starts, is a deadline miss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from evals.fleet import Fleet
from evals.gridwindow import GridWindow
from evals.jobs import JobSet
from evals.policy_base import CAPACITY_EPS, MAX_REROUTES, HourState, Policy
from evals.view import GridFeed

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class RerouteLimitError(RuntimeError):
    """A policy tried to move a job more than `MAX_REROUTES` times."""


class CapacityExceededError(RuntimeError):
    """The committed GPUs of a zone exceed its capacity (a harness invariant broke)."""


@dataclass(frozen=True)
class JobOutcome:
    """Per-job results of one policy run (index-aligned with the `JobSet`)."""

    start: IntArray
    """Start hour, -1 when the job never started."""
    zone: IntArray
    """Zone index it started in, -1 when it never started."""
    reroutes: IntArray
    energy_kwh: FloatArray
    co2_kg: FloatArray
    energy_eur: FloatArray
    customer_minor: IntArray
    missed: npt.NDArray[np.bool_]
    moves: tuple[tuple[int, int, int], ...] = ()
    """(job, hour, new zone) of each running job moved, in hour order."""

    @property
    def started(self) -> npt.NDArray[np.bool_]:
        """Return which jobs started."""
        return self.start >= 0


@dataclass(frozen=True)
class PolicyRun:
    """A policy's name, causality and per-job outcome, plus the peak GPU use per zone."""

    name: str
    causal: bool
    """False when the policy declares itself non-causal or its view saw the recorded future."""
    outcome: JobOutcome
    peak_gpus: FloatArray
    foresight: str | None = None
    """Why the run is not causal (None when it is)."""


def foresight_label(policy: Policy, sees_future: bool) -> str | None:
    """Return why a run of `policy` is not causal, or None when it is."""
    if not policy.causal:
        return getattr(policy, "foresight", None) or "declared not causal"
    if sees_future:
        return "perfect forecasts (the recorded future)"
    return None


_Item = TypeVar("_Item", bound=np.generic)


def _frozen_copy(values: npt.NDArray[_Item]) -> npt.NDArray[_Item]:
    out = values.copy()
    out.setflags(write=False)
    return out


def arrived_jobs(jobs: JobSet, count: int) -> JobSet:
    """Return read-only copies of the first `count` jobs (the ones that have arrived)."""
    return JobSet(
        arrival=_frozen_copy(jobs.arrival[:count]),
        duration=_frozen_copy(jobs.duration[:count]),
        gpus=_frozen_copy(jobs.gpus[:count]),
        slack=_frozen_copy(jobs.slack[:count]),
        origin=_frozen_copy(jobs.origin[:count]),
    )


def account(
    jobs: JobSet,
    fleet: Fleet,
    window: GridWindow,
    start: IntArray,
    zone: IntArray,
    moves: Sequence[tuple[int, int, int]] = (),
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    """Return per-job energy kWh, CO2 kg, energy EUR and customer minor units for a schedule.

    `zone` is where each job started; `moves` are (job, hour, new zone) of running jobs moved,
    in hour order: each stretch is accounted in its own zone (`segments`).
    """
    pieces, owner, begin, where = segments(jobs, start, zone, moves)
    rows = _priced(pieces, fleet, window, begin, where)
    energy, co2, cost, customer = (
        np.bincount(owner, x, minlength=len(jobs)).astype(np.float64) for x in rows
    )
    return energy, co2, cost, np.rint(customer).astype(np.int64)


def _priced(
    jobs: JobSet, fleet: Fleet, window: GridWindow, start: IntArray, zone: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Return energy, CO2, energy cost and (unrounded) customer charge of started jobs."""
    ci, price = window.actual_ci(), window.actual_price_cost()
    zeros = np.zeros((ci.shape[0], 1))
    cum_ci = np.concatenate([zeros, np.cumsum(ci, axis=1)], axis=1)
    cum_price = np.concatenate([zeros, np.cumsum(price, axis=1)], axis=1)
    ok = start >= 0
    s, z, length = start[ok], zone[ok], jobs.duration[ok]
    end = s + length
    if end.size and end.max() > ci.shape[1]:
        raise ValueError(
            f"a job runs to hour {int(end.max())!r}, past the window's {ci.shape[1]!r}"
        )
    rate_kw = jobs.gpus[ok] * fleet.kw_per_gpu[z]
    energy = np.zeros(len(jobs))
    co2 = np.zeros(len(jobs))
    cost = np.zeros(len(jobs))
    customer = np.zeros(len(jobs))
    energy[ok] = rate_kw * length
    co2[ok] = rate_kw * (cum_ci[z, end] - cum_ci[z, s]) / 1000.0
    cost[ok] = rate_kw * (cum_price[z, end] - cum_price[z, s]) / 1000.0
    customer[ok] = jobs.gpus[ok] * length * fleet.price_minor_per_gpu_hour[z]
    return energy, co2, cost, customer


def simulate(
    policy: Policy,
    *,
    jobs: JobSet,
    fleet: Fleet,
    window: GridWindow,
    forecast: str,
    decide_hours: int,
    progress: bool = False,
) -> PolicyRun:
    """Run `policy` over replay hours `0 .. decide_hours-1` and account the result.

    The policy sees, each hour, only the jobs that have arrived (`HourState.jobs` is the arrived
    prefix of `jobs`, copied) and a `GridView` fed hour by hour from `window`.

    Args:
        policy: The policy to run.
        jobs: Jobs on the replay's hour grid, sorted by arrival.
        fleet: Per-zone capacity, power and price.
        window: Grid arrays; `window.horizon` must cover `decide_hours` plus the longest job.
        forecast: Forecast mode of the policy's view (`naive`, `model` or `perfect`).
        decide_hours: Hours in which the policy may start jobs.
        progress: Log progress every simulated day.

    Raises:
        RerouteLimitError: The policy moved a job more than `MAX_REROUTES` times.
        CapacityExceededError: A zone's committed GPUs exceed its capacity.
    """
    t0 = time.perf_counter()
    n = len(jobs)
    longest = int(jobs.duration.max()) if n else 1
    if decide_hours + longest > window.horizon:
        raise ValueError(
            f"window horizon {window.horizon!r} h is shorter than decide hours {decide_hours!r} "
            f"+ longest job {longest!r} h"
        )
    start = np.full(n, -1, dtype=np.int64)
    zone = np.full(n, -1, dtype=np.int64)
    routed = np.full(n, -1, dtype=np.int64)
    reroutes = np.zeros(n, dtype=np.int64)
    first_zone = np.full(n, -1, dtype=np.int64)
    moves: list[tuple[int, int, int]] = []
    if n and np.any(np.diff(jobs.arrival) < 0):
        raise ValueError("jobs must be sorted by arrival")
    committed = np.zeros((len(fleet.zones), decide_hours + longest + 1))
    feed = GridFeed(window, forecast)
    arrival_ptr = 0
    arrived = arrived_jobs(jobs, 0)
    waiting: list[int] = []
    for t in range(decide_hours):
        while arrival_ptr < n and jobs.arrival[arrival_ptr] <= t:
            waiting.append(arrival_ptr)
            arrival_ptr += 1
        if not waiting:
            continue
        view = feed.advance_to(t)
        if len(arrived) != arrival_ptr:
            arrived = arrived_jobs(jobs, arrival_ptr)
        state = HourState(
            now=t,
            jobs=arrived,
            fleet=fleet,
            pending=np.asarray(waiting, dtype=np.int64),
            routed=_frozen_copy(routed[:arrival_ptr]),
            reroutes=_frozen_copy(reroutes[:arrival_ptr]),
            committed=_frozen_copy(committed[:, t:]),
            start=_frozen_copy(start[:arrival_ptr]),
        )
        decision = policy.decide(state, view)
        for j, z in decision.moves:
            if _move(j, z, t, jobs, fleet, start, zone, reroutes, committed, policy.name):
                routed[j] = z
                moves.append((j, t, z))
        waiting_set = set(waiting)
        for j, z in decision.routes:
            _route(j, z, routed, reroutes, waiting_set, policy.name)
        started: set[int] = set()
        for j, z in decision.starts:
            if j in started:
                continue
            _route(j, z, routed, reroutes, waiting_set, policy.name)
            g, length = jobs.gpus[j], int(jobs.duration[j])
            if committed[z, t] + g > fleet.capacity[z] + CAPACITY_EPS:
                continue
            committed[z, t : t + length] += g
            start[j], zone[j], first_zone[j] = t, z, z
            started.add(j)
        if started:
            waiting = [j for j in waiting if j not in started]
        if progress and t % 24 == 23:
            logger.debug("%s: day %d/%d", policy.name, (t + 1) // 24, decide_hours // 24)
    over = committed - fleet.capacity[:, None]
    if over.max(initial=0.0) > CAPACITY_EPS:
        raise CapacityExceededError(f"{policy.name}: capacity exceeded by {over.max()!r} GPUs")
    energy, co2, cost, customer = account(jobs, fleet, window, start, first_zone, moves)
    if progress:
        logger.info("%-16s %d jobs, %.1f s", policy.name, n, time.perf_counter() - t0)
    missed = (start < 0) | (start + jobs.duration > jobs.deadline)
    outcome = JobOutcome(
        start, first_zone, reroutes, energy, co2, cost, customer, missed, tuple(moves)
    )
    label = foresight_label(policy, feed.sees_future)
    return PolicyRun(policy.name, label is None, outcome, committed.max(axis=1), label)


def _route(
    j: int, z: int, routed: IntArray, reroutes: IntArray, waiting: set[int], name: str
) -> None:
    if j not in waiting:
        raise ValueError(f"{name}: job {j!r} is not waiting; only waiting jobs can be placed")
    previous = int(routed[j])
    if previous == z:
        return
    if previous >= 0:
        if reroutes[j] >= MAX_REROUTES:
            raise RerouteLimitError(f"{name}: job {j!r} already moved {MAX_REROUTES} times")
        reroutes[j] += 1
    routed[j] = z


def segments(
    jobs: JobSet, start: IntArray, zone: IntArray, moves: Sequence[tuple[int, int, int]] = ()
) -> tuple[JobSet, IntArray, IntArray, IntArray]:
    """Return the stretches each started job ran in one zone: (pieces, job, start hour, zone).

    `start` and `zone` are where and when each job started (-1: never); `moves` as in
    `account`. A job never moved is one piece; a moved one has a piece per zone it ran in. The
    pieces are jobs of their own (`account` prices them), each as long as its stretch.
    """
    owner: list[int] = []
    begin: list[int] = []
    where: list[int] = []
    length: list[int] = []
    moved: dict[int, list[tuple[int, int]]] = {}
    for j, hour, new in moves:
        moved.setdefault(j, []).append((hour, new))
    for j in np.flatnonzero(start >= 0).tolist():
        at, z, stop = int(start[j]), int(zone[j]), int(start[j] + jobs.duration[j])
        for hour, new in [*moved.get(j, []), (stop, -1)]:
            owner.append(j)
            begin.append(at)
            where.append(z)
            length.append(hour - at)
            at, z = hour, new
    idx = np.asarray(owner, dtype=np.int64)
    pieces = JobSet(
        arrival=jobs.arrival[idx],
        duration=np.asarray(length, dtype=np.int64),
        gpus=jobs.gpus[idx],
        slack=jobs.slack[idx],
        origin=jobs.origin[idx],
    )
    return pieces, idx, np.asarray(begin, dtype=np.int64), np.asarray(where, dtype=np.int64)


def _move(
    j: int,
    z: int,
    t: int,
    jobs: JobSet,
    fleet: Fleet,
    start: IntArray,
    zone: IntArray,
    reroutes: IntArray,
    committed: FloatArray,
    name: str,
) -> bool:
    """Move running job `j` to zone `z` from hour `t` if `z` has room for its hours left.

    Raises:
        ValueError: `j` is not running, or `z` is not another zone.
        RerouteLimitError: `j` already moved `MAX_REROUTES` times.
    """
    if not 0 <= j < len(start) or start[j] < 0 or start[j] + jobs.duration[j] <= t:
        raise ValueError(f"{name}: job {j!r} is not running; only running jobs move")
    old, stop, g = int(zone[j]), int(start[j] + jobs.duration[j]), jobs.gpus[j]
    if not 0 <= z < len(fleet.zones) or z == old:
        raise ValueError(f"{name}: job {j!r} cannot move to zone {z!r}")
    if reroutes[j] >= MAX_REROUTES:
        raise RerouteLimitError(f"{name}: job {j!r} already moved {MAX_REROUTES} times")
    if (committed[z, t:stop] + g > fleet.capacity[z] + CAPACITY_EPS).any():
        return False
    committed[old, t:stop] -= g
    committed[z, t:stop] += g
    zone[j] = z
    reroutes[j] += 1
    return True
