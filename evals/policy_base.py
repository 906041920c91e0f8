"""Define what a replay policy sees each hour and what it may decide.

Each replay hour the harness hands a policy an `HourState` (jobs waiting, free GPUs, GPUs already
committed to running jobs in the coming hours) and a `GridView` (the grid up to now, forecasts
after). Both are causal by construction: `HourState.jobs` holds only the jobs that have arrived
(job ids are indices into it; a later job's id is out of range), its arrays are read-only copies,
and the view raises `FutureDataError` on a recorded hour after now and holds nothing later (see
`evals.view`). The policy returns a `Decision`:

* `starts`: (job, zone) pairs in priority order. The harness starts each one if the zone has the
  free GPUs, else the job stays waiting, routed to that zone.
* `routes`: (job, zone) pairs that route (queue) a job to a zone without starting it.
* `moves`: (job, zone) pairs that move a running job, for its hours left, to another zone with
  room (a checkpoint and restart, no hours lost); applied before the starts. A move counts as a
  reroute.

A job that is waiting and has been routed to a zone and is then routed or started elsewhere counts
as a reroute; the harness refuses more than `MAX_REROUTES` per job, moves of running jobs
included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from evals.fleet import Fleet
from evals.jobs import JobSet
from evals.view import GridView
from tools.broker.scoring import ScoreWeights, score_arrays

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MAX_REROUTES = 5
REROUTE_MIN_IMPROVEMENT = 0.25
CAPACITY_EPS = 1e-9


@dataclass
class HourState:
    """What the harness tells a policy at replay hour `now`."""

    now: int
    jobs: JobSet
    """The jobs that have arrived by `now` (ids `0 .. len(jobs)-1`), read-only copies."""
    fleet: Fleet
    pending: IntArray
    """Ids of jobs that have arrived and not started, in arrival order."""
    routed: IntArray
    """Zone each arrived job is routed to (-1 = not routed); a read-only copy."""
    reroutes: IntArray
    """Reroutes used so far per arrived job; a read-only copy."""
    committed: FloatArray
    """(zones, hours) GPUs used by running jobs from `now` on; a read-only copy."""
    start: IntArray
    """Start hour per arrived job (-1 = not started); a read-only copy. A running job's zone
    is `routed`."""

    @property
    def free(self) -> FloatArray:
        """Return the free GPUs per zone this hour."""
        return np.maximum(self.fleet.capacity - self.committed[:, 0], 0.0)


@dataclass
class Decision:
    """A policy's starts and routes for one hour."""

    starts: list[tuple[int, int]] = field(default_factory=list)
    routes: list[tuple[int, int]] = field(default_factory=list)
    moves: list[tuple[int, int]] = field(default_factory=list)


class Policy(Protocol):
    """A replay policy: decides hour by hour from an `HourState` and a `GridView`."""

    name: str
    causal: bool
    """False for a policy that uses the recorded future by itself (a precomputed schedule). The
    harness also labels a run not causal when its view's forecasts are `perfect`."""

    def decide(self, state: HourState, view: GridView) -> Decision:
        """Return this hour's starts and routes."""
        ...


def impute_prices(price: FloatArray) -> FloatArray:
    """Fill missing prices per column with the column's highest known price (the scorer's rule).

    A column with no known price gets 0, which makes the price term 0 for every zone in that hour,
    as `tools.broker.scoring.score_arrays` does when no candidate has a price.
    """
    with np.errstate(all="ignore"):
        known_max = np.where(np.isnan(price), -np.inf, price).max(axis=0, keepdims=True)
    fill = np.where(np.isfinite(known_max), known_max, 0.0)
    return np.where(np.isnan(price), np.broadcast_to(fill, price.shape), price)


def score_matrix(
    ci: FloatArray, price: FloatArray, utilization: FloatArray, weights: ScoreWeights
) -> FloatArray:
    """Score every (zone, hour) cell with the composite scorer; missing prices imputed per hour."""
    filled = impute_prices(price)
    util = np.broadcast_to(utilization, ci.shape)
    scored = score_arrays(ci.ravel(), filled.ravel(), np.ascontiguousarray(util).ravel(), weights)
    return scored.score.reshape(ci.shape)


def urgency_order(state: HourState) -> IntArray:
    """Return pending job ids ordered by latest start, then arrival (stable)."""
    pending = state.pending
    if pending.size == 0:
        return pending
    key = state.jobs.latest_start[pending]
    return pending[np.argsort(key, kind="stable")]
