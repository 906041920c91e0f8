"""The planner's data: jobs, grid, slots, plans, and running work that may move.

`tools.broker.planner` plans with them; `tools.broker.make_room` moves running work for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from tools.broker.scoring import ScoreWeights, score_arrays
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
    gpus: float
    """GPUs asked for (fractional for a shared GPU)."""
    hours: int
    latest_start: int
    """Last allowed start offset so the job ends by its deadline; 0 = must start now."""
    eligible: BoolArray | None = None
    """(sites,) True where the job may run; None = every site."""
    planned: tuple[int, int] | None = None
    """(site, start offset) an earlier plan gave the job (scheduled or deferred work): the plan
    never leaves it unplaced while that slot is still free (see `plan_hour`)."""
    movable: bool = True
    """Whether, once running, it may move to make room for other work: with running work that
    may move (`plan_hour`'s `running`), its blocking charge is then capped by its cost of moving
    (`tools.broker.blocking`); False charges it in full."""


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
    charge: float = 0.0
    """Expected cost of the large jobs this slot may block (`tools.broker.blocking`)."""


@dataclass
class PlanResult:
    """The plan: a slot per placed job, and the keys of jobs that fit nowhere."""

    slots: list[Slot] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    method: str = "greedy"
    moves: list[Move] = field(default_factory=list)
    """Running work moved so that work starting now starts on a cleaner site (`running`)."""


def plan_rates(grid: PlanGrid, objective: Objective, weights: ScoreWeights) -> FloatArray:
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


def check_plan(jobs: list[PlanJob], grid: PlanGrid) -> None:
    """Raise InvalidInputError when the grid's shapes disagree or a job cannot fit the horizon."""
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


@dataclass(frozen=True)
class RunningJob:
    """Work that runs now: where, how big, for how many more hours, and how often it may move."""

    key: str
    site: int
    gpus: float
    hours_left: int
    moves_left: int
    eligible: BoolArray | None = None
    """(sites,) where it may run; None = every site with GPUs."""


@dataclass(frozen=True)
class Move:
    """One running job moved to another site so that `for_key` can start where it was."""

    key: str
    from_site: int
    to_site: int
    for_key: str
    cost_before: float
    """Forecast cost of the jobs involved without the moves (the starting job on its slot)."""
    cost_after: float
    """The same with the moves and the starting job on the freed site."""
