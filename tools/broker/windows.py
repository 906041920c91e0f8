"""Decide *when* a job starts: forecast the grid per node and hour, then ask the planner.

`forecast_grid` is the one place the broker turns a grid source into (zone x hour) carbon and
price forecasts: hour 0 is the current hour's reading, later hours come from the injected
`tools.grid.outlook.ForecastProvider`: the one the composition root built next to the grid
source (Electricity Maps' forecast with a key, falling back per zone to the history model; the
history model otherwise, which reads only the source's past). Stored overrides with a known end
(a carbon spike, a surplus) change the forecast hours they cover. `plan_start` builds
the planner's inputs for one job over the nodes eligible now (capacity already committed per hour
from running work and reservations), calls `tools.broker.planner.plan_hour`, and says where and
when with the forecast kg CO2 of that window against starting now.

A job without slack (no deadline, or one that leaves no spare hour) starts now. A later window
is chosen only when its forecast cost under the objective (kg CO2 by default; the composite
score x kW when asked) is at least `DEFER_MIN_SAVING` below the best start now (the planner's
cost with the job forced to start now): forecasts are uncertain, and waiting for a marginal gain
only adds risk.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel
from sqlalchemy.orm import Session

from store import repo
from tools.broker.blocking import LARGE_JOB_GPUS, ArrivalHistory, stored_history
from tools.broker.placement import Candidate
from tools.broker.planner import Objective, PlanGrid, PlanJob, RunningJob, plan_hour
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.workloads import JobSpec
from tools.errors import DomainError, NoGridDataError
from tools.grid import ZONE_CODES, GridSource
from tools.grid.models import HOUR, MAX_CARBON_INTENSITY, floor_hour
from tools.grid.outlook import ForecastOverlay, ForecastProvider, GridForecast, history_provider

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
HORIZON_HOURS = 48
DEFER_MIN_SAVING = 0.05
"""A later window must save at least 5 % of the forecast CO2 of the greenest start now."""
PLAN_TIME_BUDGET_S = 1.0


@dataclass(frozen=True)
class ZoneForecast:
    """Carbon and price per zone and hour from `issued_at` (hour 0 = the current hour)."""

    issued_at: datetime
    zones: tuple[str, ...]
    ci: FloatArray
    """(zones, horizon) gCO2/kWh; an unknown zone is `MAX_CARBON_INTENSITY` (never preferred)."""
    price: FloatArray
    """(zones, horizon) EUR/MWh; NaN = unknown."""
    sources: tuple[str, ...] = ()
    """Per zone, who forecast hours 1.. (`GridForecast.source`; "none" when nobody could)."""

    @property
    def source(self) -> str:
        """Return the forecast sources of all zones, most used first, e.g. "history:model"."""
        counts = Counter(self.sources)
        return ", ".join(s for s, _ in counts.most_common()) or "reading"

    def row(self, zone: str) -> int:
        """Return the row of `zone`."""
        return self.zones.index(zone)


def _now_reading(grid: GridSource, zone: str, issued: datetime) -> tuple[float, float]:
    """Return (ci, price) of `zone` in the issue hour (NaN where unknown)."""
    try:
        r = grid.reading(zone, issued)
    except NoGridDataError:
        return math.nan, math.nan
    return (
        math.nan if r.carbon_intensity is None else r.carbon_intensity,
        math.nan if r.price_eur_per_mwh is None else r.price_eur_per_mwh,
    )


def _ahead(
    grid: GridSource, forecasts: ForecastProvider, zone: str, issued: datetime, hours: int
) -> GridForecast | None:
    """Return the provider's forecast for the `hours` after `issued`, with known overrides."""
    try:
        forecast = forecasts.forecast(zone, issued, hours)
    except NoGridDataError as exc:
        logger.info("no forecast for %s at %s: %s", zone, issued.isoformat(), exc)
        return None
    if isinstance(grid, ForecastOverlay):
        forecast = grid.adjust_forecast(forecast)
    return forecast


def forecast_zones(spec: JobSpec, now: datetime) -> list[str]:
    """Return the zones a plan of `spec` at `now` may forecast (none when it starts now).

    `plan_start` forecasts only for work with slack, and only the zones its nodes may be in.
    """
    if latest_start(spec, floor_hour(now)) == 0 or math.ceil(spec.duration_hours) > HORIZON_HOURS:
        return []
    denied = set(spec.denied_zones or ())
    return [
        z
        for z in ZONE_CODES
        if (spec.allowed_zones is None or z in spec.allowed_zones) and z not in denied
    ]


def warm_forecasts(
    forecasts: ForecastProvider | None,
    *,
    now: datetime,
    zones: Iterable[str] = ZONE_CODES,
    horizon: int = HORIZON_HOURS,
) -> None:
    """Ask `forecasts` for each zone's plan horizon now, so later plans read them from memory.

    Call it before opening a transaction that plans: with an Electricity Maps key the provider
    is a network service that keeps its answers for the issue hour
    (`tools.grid.fallback.FallbackForecaster`), so the requests happen here and not under the
    database locks the plan holds. A `horizon` longer than `HORIZON_HOURS` (a joint plan of
    long work) is asked for after the usual one, so a failure for the long one leaves the
    usual answer in memory. A zone it cannot forecast is left to the plan (which treats it as
    unknown). Without a provider (`None`: a history model built per plan) nothing is asked.
    """
    if forecasts is None:
        return
    issued = floor_hour(now)
    lengths = sorted({HORIZON_HOURS, max(horizon, HORIZON_HOURS)})
    for zone in zones:
        for length in lengths:
            try:
                forecasts.forecast(zone, issued, length - 1)
            except DomainError as exc:
                logger.info("no forecast for %s at %s: %s", zone, issued.isoformat(), exc)


def forecast_grid(
    *,
    grid: GridSource,
    zones: list[str],
    now: datetime,
    horizon: int = HORIZON_HOURS,
    forecasts: ForecastProvider | None = None,
) -> ZoneForecast:
    """Forecast carbon intensity and price per zone for `horizon` hours from `now`'s hour.

    Hour 0 is `grid`'s reading now (with any override). Hours 1.. come from `forecasts`, the
    process's long-lived provider (default: `history_provider` over the grid without its
    overrides, built for this call, so its fit is not reused); when `grid` is a
    `ForecastOverlay` (stored spikes and surpluses) its known changes are applied to the
    forecast hours they cover. A zone the provider cannot forecast is unknown after hour 0.
    """
    issued = floor_hour(now)
    if forecasts is None:
        forecasts = history_provider(grid.inner if isinstance(grid, ForecastOverlay) else grid)
    ci = np.full((len(zones), horizon), np.nan)
    price = np.full((len(zones), horizon), np.nan)
    sources: list[str] = []
    for i, zone in enumerate(zones):
        ci[i, 0], price[i, 0] = _now_reading(grid, zone, issued)
        ahead = _ahead(grid, forecasts, zone, issued, horizon - 1) if horizon > 1 else None
        if ahead is None:
            sources.append("none" if horizon > 1 else "reading")
            continue
        ci[i, 1:] = ahead.carbon_intensity
        price[i, 1:] = [math.nan if p is None else p for p in ahead.price_eur_per_mwh]
        sources.append(ahead.source)
    ci = np.where(np.isfinite(ci), np.clip(ci, 0.0, MAX_CARBON_INTENSITY), MAX_CARBON_INTENSITY)
    return ZoneForecast(
        issued_at=issued, zones=tuple(zones), ci=ci, price=price, sources=tuple(sources)
    )


class StartPlan(BaseModel):
    """Where and when a job runs, and what waiting saves by forecast."""

    start_at: datetime
    """When the job starts (aware UTC); the decision time when it starts now."""
    node_id: str
    zone: str
    co2_kg: float
    """Forecast kg CO2 of the job in the chosen window."""
    co2_kg_if_started_now: float
    """Forecast kg CO2 of the job started now where the broker would put it now."""
    saving_pct: float
    """100 x (co2_kg_if_started_now - co2_kg) / co2_kg_if_started_now."""
    why: str
    objective: Objective
    forecast_issued_at: datetime
    forecast_source: str | None = None
    """Who forecast the hours after the first (`ZoneForecast.source`); None: none was needed."""

    @property
    def deferred(self) -> bool:
        """Return True when the job waits for a later hour."""
        return self.start_at >= self.forecast_issued_at + HOUR


def latest_start(spec: JobSpec, issued: datetime, horizon: int = HORIZON_HOURS) -> int:
    """Return the last start hour offset from `issued` that meets the deadline (0 = none)."""
    if spec.deadline is None:
        return 0
    hours = math.ceil(spec.duration_hours)
    spare = (spec.deadline - issued) / HOUR - spec.duration_hours
    return max(0, min(math.floor(spare + 1e-9), horizon - hours))


def _kg(ci_row: FloatArray, start: int, spec: JobSpec, kw: float) -> float:
    whole = math.floor(spec.duration_hours)
    frac = spec.duration_hours - whole
    total = float(ci_row[start : start + whole].sum())
    if frac > 0:
        total += frac * float(ci_row[start + whole])
    return spec.gpu_count * kw * total / 1000.0


def window_kg(
    fc: ZoneForecast, zone: str, spec: JobSpec, kw_per_gpu: float, start_at: datetime
) -> float | None:
    """Return the forecast kg CO2 of the job from `start_at` in `zone` (None: beyond horizon)."""
    offset = max(0, int((floor_hour(start_at) - fc.issued_at) / HOUR))
    if offset + math.ceil(spec.duration_hours) > fc.ci.shape[1]:
        return None
    return _kg(fc.ci[fc.row(zone)], offset, spec, kw_per_gpu)


def plan_start(
    *,
    session: Session,
    grid: GridSource,
    spec: JobSpec,
    candidates: list[Candidate],
    now: datetime,
    workload_id: str | None = None,
    objective: Objective = "carbon",
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    forecasts: ForecastProvider | None = None,
    move_running: bool = True,
) -> StartPlan | None:
    """Return where and when the job should start among `candidates` (eligible now, best first).

    None when there is no candidate. The route-now choice is `candidates[0]` (today's score);
    a later window replaces it only with slack and a forecast saving of `DEFER_MIN_SAVING`.
    `forecasts` is the process's provider (see `forecast_grid` for the default). With
    `move_running` (the re-plans may move running work, `TGTG_MOVE_RUNNING_WORK`) and a movable
    job, its blocking charge is capped by its cost of moving, as in the hourly re-plan.
    """
    if not candidates:
        return None
    issued = floor_hour(now)
    latest = latest_start(spec, issued)
    hours = math.ceil(spec.duration_hours)
    now_choice = candidates[0]
    if latest == 0 or hours > HORIZON_HOURS:
        if spec.deadline is None:
            why = "no deadline: starts now"
        elif hours >= HORIZON_HOURS:
            why = f"runs {hours} h, the {HORIZON_HOURS} h forecast horizon or more: starts now"
        else:
            why = "no slack before the deadline: starts now"
        return StartPlan(
            start_at=now,
            node_id=now_choice.node_id,
            zone=now_choice.zone,
            co2_kg=now_choice.co2_kg,
            co2_kg_if_started_now=now_choice.co2_kg,
            saving_pct=0.0,
            why=why,
            objective=objective,
            forecast_issued_at=issued,
        )
    nodes = {n.id: n for n in repo.list_nodes(session=session)}
    zones = sorted({c.zone for c in candidates})
    fc = forecast_grid(grid=grid, zones=zones, now=now, forecasts=forecasts)
    rows = [fc.row(c.zone) for c in candidates]
    kw = np.array([nodes[c.node_id].power_kw_per_gpu for c in candidates])
    end = issued + HORIZON_HOURS * HOUR
    committed = np.array(
        [
            repo.hourly_use(
                session=session,
                node_id=c.node_id,
                start=issued,
                end=end,
                now=now,
                exclude_workload_id=workload_id,
            )
            for c in candidates
        ],
        dtype=np.float64,
    )
    plan_grid = PlanGrid(
        ci=fc.ci[rows],
        price=fc.price[rows],
        capacity=np.array([nodes[c.node_id].gpu_count for c in candidates], dtype=np.float64),
        committed=committed,
        kw_per_gpu=kw,
    )
    job = PlanJob(key=workload_id or "job", gpus=spec.gpu_count, hours=hours, latest_start=latest)
    arrivals = stored_history(session=session, now=now)
    # No running work moves for a single route; given (empty), it prices the blocking charge
    # as the hourly re-plan does, where this job could move off for a large one.
    may_move: list[RunningJob] | None = [] if move_running and spec.movable else None
    result = plan_hour(
        [job],
        plan_grid,
        objective=objective,
        weights=weights,
        time_budget_s=PLAN_TIME_BUDGET_S,
        arrivals=arrivals,
        running=may_move,
    )
    now_kg = _kg(plan_grid.ci[0], 0, spec, float(kw[0]))
    at_once = plan_hour(
        [replace(job, latest_start=0)],
        plan_grid,
        objective=objective,
        weights=weights,
        time_budget_s=PLAN_TIME_BUDGET_S,
        arrivals=arrivals,
        running=may_move,
    )
    best_now = at_once.slots[0].cost if at_once.slots else float("inf")
    unit = "kg CO2" if objective == "carbon" else "composite cost"
    base = StartPlan(
        start_at=now,
        node_id=now_choice.node_id,
        zone=now_choice.zone,
        co2_kg=now_kg,
        co2_kg_if_started_now=now_kg,
        saving_pct=0.0,
        why="",
        objective=objective,
        forecast_issued_at=issued,
        forecast_source=fc.source,
    )
    if not result.slots:
        return base.model_copy(update={"why": "no later window has room before the deadline"})
    slot = result.slots[0]
    kg = _kg(plan_grid.ci[slot.site], slot.start, spec, float(kw[slot.site]))
    if slot.start == 0 or slot.cost > best_now * (1 - DEFER_MIN_SAVING):
        why = (
            f"starting now is best within the {latest} h of slack"
            if slot.start == 0
            else (
                f"the best later window saves less than {DEFER_MIN_SAVING:.0%} over starting "
                f"now ({slot.cost:.2f} vs {best_now:.2f} {unit} by forecast)"
            )
        )
        return base.model_copy(update={"why": why})
    chosen = candidates[slot.site]
    start_at = issued + slot.start * HOUR
    saving = 100.0 * (now_kg - kg) / now_kg if now_kg > 0 else 0.0
    return base.model_copy(
        update={
            "start_at": start_at,
            "node_id": chosen.node_id,
            "zone": chosen.zone,
            "co2_kg": kg,
            "saving_pct": saving,
            "why": (
                f"{'greenest' if objective == 'carbon' else 'best-scoring'} forecast window "
                f"within the deadline: {chosen.node_id} "
                f"({chosen.zone}) from {start_at.isoformat()}, {kg:.1f} kg CO2 vs "
                f"{now_kg:.1f} kg starting now ({saving:.0f} % less; forecast issued "
                f"{issued.isoformat()})"
                + _blocking_note(slot.charge, unit, arrivals, capped=may_move is not None)
            ),
        }
    )


def _blocking_note(charge: float, unit: str, arrivals: ArrivalHistory, *, capped: bool) -> str:
    """Say when the window's node was weighed against blocking a large job."""
    if not arrivals.arrivals:
        return ""
    at_most = ", at most the cost of moving off for one" if capped else ""
    return (
        f"; nodes that can hold an {LARGE_JOB_GPUS:g}-GPU job were also priced by the risk of "
        f"blocking one ({len(arrivals.arrivals)} arrived in the last week; {charge:.2f} {unit} "
        f"expected on this node{at_most})"
    )
