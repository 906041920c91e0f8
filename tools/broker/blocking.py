"""Price the risk that a job on a large site blocks a large job that arrives later.

Few sites hold a large job (a whole 8-GPU server). When small work fills the cleanest of them,
a large job that arrives and cannot wait for it goes to the next large site, which may be far
dirtier: on replayed weeks one such job is most of the gap to the oracle. The planner only sees
jobs that have arrived, so it prices that risk from the large jobs that arrived in the past.

For a job `j` of `h_j` hours on site `z` the charge is the expected extra cost of the large job
it would push off `z`:

    n_j = sum_i max(0, h_j - slack_i) / span_hours
    charge[j, z] = (1 - exp(-n_j)) * mean_i(gpus_i * hours_i) * gap_z

over the large jobs `i` seen in the last `span_hours`. A large job with `slack_i` hours to
spare can wait out `slack_i` hours of the job, so only arrivals during the other
`h_j - slack_i` hours are lost, and `n_j` is the expected number of such arrivals (Poisson).
A site holds one large job at a time, so what is lost is at most one of them: `1 - exp(-n_j)`
is the chance that at least one comes, and the mean size is weighted like `n_j`. The cap also
keeps a large job from leaving a clean site for fear of blocking a job no larger than itself.
`gap_z` is the cost per GPU-hour such a job pays more on the next-cleaner-by-rank large site
(sites ranked by their mean rate over the plan's horizon; the dirtiest large site has no gap).
The charge applies where the job leaves fewer GPUs than a large job needs, scaled by the share of
the hours it may run in (from now to its latest start plus `h_j`) in which the site could still
take a large job: running work may block the site now, but deferred work runs later, when it
may be free again. Arrival counts and durations come from history only; nothing is fitted to a week.

When blocking work may move off for a large job (`ArrivalHistory.blockers_move`: the planner is
given the running work, `tools.broker.make_room`; and the job is `movable`), a large job that comes
is not lost: the job moves to its next cheapest site (one it may use, with room for it) for the
hours it has left. The extra cost per arrival is then the smaller of the two, the large job's loss
and the job's own cost of moving (half its hours, a large job coming on average halfway through, at
what its next cheapest site costs more over the hours it may run in). A short small job then pays
little for a clean large site it would otherwise be kept off while no large job comes, and a long
one still pays nearly the full charge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from store import repo
from tools.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
LARGE_JOB_GPUS = 8.0
"""A large job: a whole 8-GPU server, which few sites can hold."""
CAPACITY_EPS = 1e-9


@dataclass(frozen=True)
class LargeArrival:
    """A large job that arrived in the past: its size and how long it could wait."""

    gpus: float
    hours: int
    slack: int
    """Hours it could have waited past its arrival and still met its deadline."""


@dataclass(frozen=True)
class ArrivalHistory:
    """The large jobs seen over the last `span_hours` hours (the risk's evidence)."""

    arrivals: tuple[LargeArrival, ...]
    span_hours: float
    blockers_move: bool = False
    """Whether work that blocks a large job may move off for it (`tools.broker.make_room`):
    then a movable job's expected loss is at most its own cost of moving (`_move_cost`)."""

    def __post_init__(self) -> None:
        if self.span_hours <= 0:
            raise InvalidInputError(f"arrival span {self.span_hours!r} h: give a span > 0")


class SizedJob(Protocol):
    """A job's size: the planner's `PlanJob` is one."""

    @property
    def gpus(self) -> float:
        """GPUs the job asks for."""

    @property
    def hours(self) -> int:
        """Hours it runs."""

    @property
    def latest_start(self) -> int:
        """Latest start offset from now (0: no slack)."""

    @property
    def movable(self) -> bool:
        """Whether, once running, it may move off a site for a large job."""

    @property
    def eligible(self) -> npt.NDArray[np.bool_] | None:
        """(sites,) True where it may run; None = every site."""


def blocking_charge(
    jobs: Sequence[SizedJob],
    rate: FloatArray,
    capacity: FloatArray,
    committed: FloatArray,
    history: ArrivalHistory | None,
    *,
    large_gpus: float = LARGE_JOB_GPUS,
) -> FloatArray:
    """Return the (jobs, sites) expected cost a job placed on a site adds by blocking large jobs.

    Args:
        jobs: The jobs to charge.
        rate: (sites, horizon) cost per GPU-hour of the plan.
        capacity: (sites,) GPUs per site.
        committed: (sites, horizon) GPUs already taken by running work.
        history: Large jobs seen recently; None or empty = no charge.
        large_gpus: GPUs of a large job.
    """
    gpus = np.array([job.gpus for job in jobs], dtype=np.float64)
    hours = np.array([job.hours for job in jobs], dtype=np.int64)
    n_jobs, sites = len(jobs), rate.shape[0]
    charge = np.zeros((n_jobs, sites))
    large = np.flatnonzero(capacity + CAPACITY_EPS >= large_gpus)
    if history is None or not history.arrivals or large.size < 2 or n_jobs == 0:
        return charge
    mean_rate = rate[large].mean(axis=1)
    order = large[np.argsort(mean_rate, kind="stable")]
    ranked = np.sort(mean_rate, kind="stable")
    gap = np.zeros(sites)
    gap[order[:-1]] = np.diff(ranked)
    slack = np.array([a.slack for a in history.arrivals], dtype=np.float64)
    size = np.array([a.gpus * a.hours for a in history.arrivals], dtype=np.float64)
    weight = np.maximum(hours[:, None] - slack[None, :], 0.0) / history.span_hours
    count = weight.sum(axis=1)  # expected large arrivals that cannot wait the job out
    mean_size = (weight @ size) / np.maximum(count, 1e-12)
    chance = -np.expm1(-count)  # a site holds one large job at a time
    loss = mean_size[:, None] * gap[None, :]
    horizon = rate.shape[1]
    latest = np.array([max(job.latest_start, 0) for job in jobs], dtype=np.int64)
    length = np.minimum(hours + latest, horizon)
    if history.blockers_move:
        movable = np.array([job.movable for job in jobs], dtype=bool)
        allowed = np.ones((n_jobs, sites), dtype=bool)
        for i, job in enumerate(jobs):
            if job.eligible is not None:
                allowed[i] = job.eligible
        move = _move_cost(gpus, hours, length, rate, capacity, committed, allowed)
        capped = np.minimum(loss, move)
        loss = np.where(movable[:, None], capped, loss)
    open_ = capacity[:, None] - committed + CAPACITY_EPS >= large_gpus
    cum_open = np.concatenate([np.zeros((sites, 1)), np.cumsum(open_, axis=1)], axis=1)
    share = cum_open[:, length].T / np.maximum(length, 1)[:, None]
    blocks = capacity[None, :] - gpus[:, None] < large_gpus
    charge = chance[:, None] * loss * share * blocks
    return np.asarray(charge, dtype=np.float64)


def _move_cost(
    gpus: FloatArray,
    hours: npt.NDArray[np.int64],
    length: npt.NDArray[np.int64],
    rate: FloatArray,
    capacity: FloatArray,
    committed: FloatArray,
    allowed: npt.NDArray[np.bool_],
) -> FloatArray:
    """Return the (jobs, sites) expected cost of moving each job off each site for a large job.

    Half the job's hours (a large job comes on average halfway through it), times what its
    cheapest other site costs more per GPU-hour (at least 0), rates averaged over the first
    `length` hours (the hours the job may run in). The other site must be `allowed` for the
    job and have room for it over those hours beside the `committed` running work; inf where
    none has. Needs at least two sites.
    """
    sites, horizon = rate.shape
    cum = np.concatenate([np.zeros((sites, 1)), np.cumsum(rate, axis=1)], axis=1)
    span = np.clip(length, 1, horizon)
    mean = (cum[:, span] / span).T  # (jobs, sites): cost per GPU-hour where the job may run
    peak = np.maximum.accumulate(committed, axis=1)[:, span - 1].T  # (jobs, sites)
    room = capacity[None, :] - peak + CAPACITY_EPS >= gpus[:, None]
    held = np.where(room & allowed, mean, np.inf)
    rows = np.arange(len(gpus))
    first, second = np.argsort(held, axis=1, kind="stable")[:, :2].T
    is_first = np.arange(sites)[None, :] == first[:, None]
    other = np.where(is_first, held[rows, second][:, None], held[rows, first][:, None])
    extra = np.maximum(other - mean, 0.0)
    return np.asarray(gpus[:, None] * (hours[:, None] / 2.0) * extra, dtype=np.float64)


def large_job_headroom(capacity: FloatArray, gpus: float = LARGE_JOB_GPUS) -> FloatArray:
    """Return the GPUs each site keeps for a large job: `gpus` where the site can hold one."""
    return np.where(capacity + CAPACITY_EPS >= gpus, gpus, 0.0)


ARRIVAL_SPAN_H = 7 * 24
"""Hours of past arrivals the risk is estimated from (a week: weekday and weekend alike)."""
MIN_SPAN_H = 24
"""Shortest span a rate is taken over, so one early arrival is not read as a high rate."""


def history_of(
    arrived: Sequence[tuple[float, float, int, int]], *, now: float, observed_h: float
) -> ArrivalHistory:
    """Return the large jobs among `arrived` in the last `ARRIVAL_SPAN_H` hours before `now`.

    Args:
        arrived: (arrival hour, GPUs, hours, slack hours) per job seen so far.
        now: The current hour, on the same scale as the arrival hours.
        observed_h: Hours of arrivals the caller has seen in all (a replay's hours so far).
    """
    since = now - ARRIVAL_SPAN_H
    large = tuple(
        LargeArrival(float(g), int(h), int(s))
        for t, g, h, s in arrived
        if t > since and g + CAPACITY_EPS >= LARGE_JOB_GPUS
    )
    span = min(max(observed_h, MIN_SPAN_H), ARRIVAL_SPAN_H)
    return ArrivalHistory(large, float(span))


NO_DEADLINE_SLACK_H = 10**6
"""Slack of a workload without a deadline: it can always wait a site out."""


def stored_history(*, session: Session, now: datetime) -> ArrivalHistory:
    """Return the large workloads submitted in the last `ARRIVAL_SPAN_H` hours (the product's)."""
    hour = timedelta(hours=1)
    since = now - ARRIVAL_SPAN_H * hour
    rows = repo.workloads_submitted(
        session=session, since=since, min_gpus=math.ceil(LARGE_JOB_GPUS)
    )
    arrived = []
    for w in rows:
        hours = max(1, math.ceil(w.duration_hours))
        slack = (
            NO_DEADLINE_SLACK_H
            if w.deadline is None
            else max(0, math.floor((w.deadline - w.submitted_at) / hour) - hours)
        )
        arrived.append(((w.submitted_at - now) / hour, float(w.gpu_count), hours, slack))
    return history_of(arrived, now=0.0, observed_h=ARRIVAL_SPAN_H)
