"""Plan pending work over (site, start hour) from forecasts: the broker's one planner.

The product (route, the background loop, the incident agent) and the replay harness call the same
function, `plan_hour`. A *site* is whatever holds GPUs: a node in the product, a zone's pooled
fleet in the replays. Everything is hours relative to the plan's origin (offset 0 = the hour the
plan is made); callers translate to and from wall time.

Inputs are forecasts only (`PlanGrid.ci`/`price` are what a forecaster said at the origin hour),
the GPUs already committed per site and hour (running work), and the jobs still free to move
(pending, and scheduled but not started). Output: one `Slot` per job that fits somewhere
(site, start offset); jobs that fit nowhere are listed in `PlanResult.unplaced`. A job with no
slack (`latest_start == 0`) can only start now.

Greedy (the fallback, always available): jobs that must start now first; then by regret (GPUs x
(second-best minus best site's window cost), as in Vogel's method), each job takes its cheapest
feasible (site, start) window against capacity booked so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights, score_arrays
from tools.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Objective = Literal["carbon", "composite"]
CAPACITY_EPS = 1e-9
CARBON_ONLY = ScoreWeights(carbon=1.0, price=0.0, utilization=0.0)


@dataclass(frozen=True)
class PlanJob:
    """One job free to be (re)planned."""

    key: str
    """Caller's id (workload id, or replay job index as text)."""
    gpus: int
    hours: int
    latest_start: int
    """Last allowed start offset so the job ends by its deadline; 0 = must start now."""
    eligible: BoolArray | None = None
    """(sites,) True where the job may run; None = every site."""


@dataclass(frozen=True)
class PlanGrid:
    """Forecasts and capacity per site, from the plan's origin hour on."""

    ci: FloatArray
    """(sites, horizon) forecast carbon intensity, gCO2/kWh."""
    price: FloatArray
    """(sites, horizon) forecast price, EUR/MWh (NaN = unknown)."""
    capacity: FloatArray
    """(sites,) GPUs each site has in all (0 = unusable)."""
    committed: FloatArray
    """(sites, horizon) GPUs already taken by running work."""
    kw_per_gpu: FloatArray
    """(sites,) power draw per GPU, kW."""

    @property
    def horizon(self) -> int:
        """Return the number of forecast hours."""
        return int(self.ci.shape[1])


@dataclass(frozen=True)
class Slot:
    """Where and when one job runs: site index and start offset in hours."""

    key: str
    site: int
    start: int
    cost: float
    """Objective over the job's hours (kg CO2 for `carbon`), from forecasts."""


@dataclass
class PlanResult:
    """The plan: a slot per placed job, and the keys of jobs that fit nowhere."""

    slots: list[Slot] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    method: str = "greedy"


def _rates(grid: PlanGrid, objective: Objective, weights: ScoreWeights) -> FloatArray:
    """Return (sites, horizon) cost per GPU-hour: kg CO2 (carbon) or kW x score (composite)."""
    if objective == "carbon":
        return grid.ci * grid.kw_per_gpu[:, None] / 1000.0
    price = grid.price
    if np.isnan(price).any():
        worst = np.nanmax(np.where(np.isnan(price), -np.inf, price), axis=0)
        price = np.where(np.isnan(price), np.where(np.isfinite(worst), worst, 0.0)[None, :], price)
    util = np.zeros(grid.ci.size)
    score = score_arrays(grid.ci.ravel(), price.ravel(), util, weights).score
    return np.asarray(score, dtype=np.float64).reshape(grid.ci.shape) * grid.kw_per_gpu[:, None]


def _check(jobs: list[PlanJob], grid: PlanGrid) -> None:
    sites, horizon = grid.ci.shape
    for name, arr in (("price", grid.price), ("committed", grid.committed)):
        if arr.shape != (sites, horizon):
            raise InvalidInputError(
                f"plan grid {name} has shape {arr.shape}; make it {(sites, horizon)}"
            )
    for job in jobs:
        if job.gpus <= 0 or job.hours <= 0:
            raise InvalidInputError(
                f"job {job.key}: gpus {job.gpus}, hours {job.hours}; make both > 0"
            )
        if job.latest_start + job.hours > horizon:
            raise InvalidInputError(
                f"job {job.key} may end at offset {job.latest_start + job.hours}, beyond the "
                f"{horizon} h forecast horizon; forecast further or shorten its deadline"
            )


def plan_greedy(
    jobs: list[PlanJob],
    grid: PlanGrid,
    *,
    objective: Objective = "carbon",
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> PlanResult:
    """Place jobs one at a time, most regret first, each on its cheapest feasible window."""
    _check(jobs, grid)
    result = PlanResult(method="greedy")
    if not jobs:
        return result
    rate = _rates(grid, objective, weights)
    sites, horizon = rate.shape
    cum = np.concatenate([np.zeros((sites, 1)), np.cumsum(rate, axis=1)], axis=1)
    usable = grid.capacity > 0
    booked = np.array(grid.committed, dtype=np.float64, copy=True)
    room = np.where(usable, grid.capacity, -1.0)[:, None] + CAPACITY_EPS
    regret = np.zeros(len(jobs))
    for i, job in enumerate(jobs):
        ok = usable if job.eligible is None else usable & job.eligible
        n_start = max(job.latest_start, 0) + 1
        per_site = (cum[:, job.hours : job.hours + n_start] - cum[:, :n_start]).min(axis=1)
        best_two = np.sort(per_site[ok])[:2]
        regret[i] = (best_two[-1] - best_two[0]) * job.gpus if best_two.size else 0.0
    slack = np.array([job.latest_start > 0 for job in jobs])
    for i in np.lexsort((-regret, slack)):
        job = jobs[int(i)]
        ok = usable if job.eligible is None else usable & job.eligible
        n_start = max(job.latest_start, 0) + 1
        sums = cum[:, job.hours : job.hours + n_start] - cum[:, :n_start]
        span = booked[:, : n_start + job.hours - 1]
        peak = span if job.hours == 1 else sliding_window_view(span, job.hours, axis=1).max(axis=2)
        feasible = (peak + job.gpus <= room) & ok[:, None]
        if not feasible.any():
            result.unplaced.append(job.key)
            continue
        masked = np.where(feasible, sums, np.inf)
        start, site = divmod(int(np.argmin(masked.T.ravel())), sites)
        booked[site, start : start + job.hours] += job.gpus
        result.slots.append(Slot(job.key, site, start, float(masked[site, start] * job.gpus)))
    return result


def plan_hour(
    jobs: list[PlanJob],
    grid: PlanGrid,
    *,
    objective: Objective = "carbon",
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    time_budget_s: float = 1.0,
) -> PlanResult:
    """Plan all free jobs jointly against committed capacity; the product's and replay's entry.

    Args:
        jobs: Pending and scheduled-not-started jobs.
        grid: Forecasts and capacity per site from the origin hour.
        objective: `carbon` minimises forecast kg CO2; `composite` the broker's score x kW.
        weights: Score weights for `composite`.
        time_budget_s: Wall-time budget for the joint solve; the greedy plan is the fallback.

    Raises:
        InvalidInputError: Shapes disagree, a job has no GPUs or hours, or a deadline lies beyond
            the forecast horizon.
    """
    del time_budget_s  # the joint solve arrives with the MILP; greedy is always within budget
    return plan_greedy(jobs, grid, objective=objective, weights=weights)
