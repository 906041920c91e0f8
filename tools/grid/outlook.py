"""Forecast a zone's next hours as a typed `GridForecast` issued at a known time.

Two kinds of provider implement `ForecastProvider`:

* `HistoryForecaster` (here): runs a `tools.grid.forecast` model over the zone's recorded or
  simulated history up to the issue hour. It reads the grid only through a `PastGrid`, a view
  that holds the issue time and refuses every hour after it, so a history forecast cannot see
  the future even by mistake; the day-ahead prices published by the issue hour
  (`tools.grid.dayahead`) are its one explicit read of later hours, and it refuses any price
  not yet published. `history_provider` builds the one the product uses (`PLANNING_MODE`
  by default, over `history_days_for(source, mode)` days).
* the Electricity Maps forecast endpoint (`tools.integrations.electricitymaps_forecast`), which
  `graphs.wiring.make_forecast_provider` picks when an API key is set, wrapped in a
  `tools.grid.fallback.FallbackForecaster` so that a zone it cannot forecast gets the history
  model's forecast, labelled as such.

The broker plans on these (`tools.broker.windows.forecast_grid`), with one provider per process
built next to the grid source. Forecasts for many hours of one zone are cheap after the first:
the history model's fit is cached for a week of issue hours and the history it reads is reused
within an issue hour.

Known future changes to a zone (an injected carbon spike or surplus with a known end) are not
history: a grid source that carries them implements `ForecastOverlay`, and the broker applies
them to the forecast hours they cover.

A forecast starts at the hour after the issue hour and covers `hours` consecutive hours.
Carbon intensity is gCO2eq/kWh (life-cycle), prices EUR/MWh (None where unknown).
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tools.errors import InvalidInputError, NoGridDataError
from tools.grid.blend import REFIT_HOURS
from tools.grid.dayahead import published_leads, published_until
from tools.grid.dayahead_model import DayAheadForecaster
from tools.grid.forecast import (
    MODEL_PROFILE_DAYS,
    NAIVE_DAYS,
    PLANNING_MODE,
    FloatArray,
    Forecaster,
    make_forecaster,
)
from tools.grid.models import HOUR, GridSource, check_hours, ensure_utc, floor_hour
from tools.grid.zones import get_zone

DEFAULT_HORIZON_HOURS = 48
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DEFAULT_HISTORY_DAYS = 365
"""Days of history the fitted models read (they need about a year to fit their shapes)."""
FITTED_MODES = ("model", "dayahead")
"""Modes fitted on the past: the blend and the day-ahead price correction."""
PROFILE_HISTORY_DAYS = {"persistence": MODEL_PROFILE_DAYS, "naive": NAIVE_DAYS}
"""Days of history each profile model reads: exactly the days its profile spans (persistence's
fit and profile use the last 7 days only, so reading more changes nothing but the cost)."""
SHORT_HISTORY_DAYS = 100
"""History the fitted blend reads from a source that builds every hour's reading (the simulator):
enough for its first fit (`tools.grid.blend.MIN_FIT_DAYS`) at a third of the reading cost."""


class FutureReadError(NoGridDataError):
    """Something asked a `PastGrid` for an hour after its issue time."""


class GridForecast(BaseModel):
    """One zone's forecast: hourly carbon intensity and price after `issued_at`."""

    model_config = ConfigDict(frozen=True)

    zone: str
    issued_at: datetime
    """When the forecast was made (aware UTC); it uses nothing recorded after this hour."""
    source: str
    """Who made it: "history:<model>" or "electricitymaps"; a fallback says so, e.g.
    "history:model (electricitymaps unavailable)", and its note says why."""
    times: tuple[datetime, ...]
    """Start of each forecast hour, UTC, consecutive, the first after the issue hour."""
    carbon_intensity: tuple[float, ...]
    """gCO2eq/kWh per hour."""
    price_eur_per_mwh: tuple[float | None, ...]
    """EUR/MWh per hour; None where the source has no price."""
    note: str | None = Field(default=None)

    @field_validator("issued_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return ensure_utc(value, "issued_at")

    @model_validator(mode="after")
    def _consistent(self) -> GridForecast:
        n = len(self.times)
        if n == 0 or len(self.carbon_intensity) != n or len(self.price_eur_per_mwh) != n:
            raise InvalidInputError(
                f"forecast for {self.zone!r} needs equally many times, intensities and prices, "
                f"got {n}, {len(self.carbon_intensity)}, {len(self.price_eur_per_mwh)}"
            )
        first = floor_hour(self.issued_at) + HOUR
        for i, ts in enumerate(self.times):
            if ensure_utc(ts, "times") != first + i * HOUR:
                raise InvalidInputError(
                    f"forecast for {self.zone!r}: hour {i} is {ts.isoformat()}, expected "
                    f"{(first + i * HOUR).isoformat()} (consecutive hours after the issue hour)"
                )
        for ci in self.carbon_intensity:
            if not math.isfinite(ci) or ci < 0:
                raise InvalidInputError(
                    f"forecast for {self.zone!r}: carbon intensity {ci!r} must be a number >= 0"
                )
        return self

    @property
    def hours(self) -> int:
        """Return the number of forecast hours."""
        return len(self.times)


class ForecastProvider(Protocol):
    """Anything that forecasts a zone's grid for the hours after an issue time."""

    @property
    def name(self) -> str:
        """Return the provider name stored in each forecast's `source`."""
        ...

    def forecast(
        self, zone: str, issued_at: datetime, hours: int = DEFAULT_HORIZON_HOURS
    ) -> GridForecast:
        """Return the forecast for the `hours` hours after the hour containing `issued_at`."""
        ...


class PastGrid:
    """A grid source seen from `issued_at`: hours up to and including the issue hour only."""

    def __init__(self, source: GridSource, issued_at: datetime) -> None:
        """Wrap `source`; every read is checked against the issue hour.

        Args:
            source: The grid source to read history from.
            issued_at: Aware time; the hour containing it is the last readable hour.
        """
        self._source = source
        self.issue_hour = floor_hour(ensure_utc(issued_at, "issued_at"))

    def history(self, zone: str, hours: int) -> tuple[FloatArray, FloatArray]:
        """Return (carbon intensity, price) for the `hours` hours ending at the issue hour.

        Hours the source does not have (before its first record) are left out, so fewer than
        `hours` values may come back. Missing values are NaN.

        Raises:
            NoGridDataError: The source has no data for the issue hour.
        """
        count = check_hours(hours)
        start = self.issue_hour - (count - 1) * HOUR
        return self._read(zone, start, count)

    def published_prices(self, zone: str, hours: int) -> FloatArray:
        """Return the day-ahead prices of the `hours` hours after the issue hour, as published.

        Hours whose price is not yet public at the issue hour (`tools.grid.dayahead`) are NaN,
        and are never read.
        """
        count = check_hours(hours)
        start = self.issue_hour + HOUR
        public = int((published_until(zone, self.issue_hour) - start) / HOUR)
        out = np.full(count, np.nan)
        if public > 0:
            out[: min(count, public)] = self.read_published(zone, start, min(count, public))
        return out

    def read_published(self, zone: str, start: datetime, count: int) -> FloatArray:
        """Return the day-ahead prices of `count` hours from `start` (after the issue hour).

        Raises:
            FutureReadError: An hour's price is not yet published at the issue hour.
        """
        last = start + (check_hours(count) - 1) * HOUR
        until = published_until(zone, self.issue_hour)
        if last >= until:
            raise FutureReadError(
                f"forecast issued at {self.issue_hour.isoformat()} asked for zone {zone!r}'s "
                f"day-ahead price of {last.isoformat()}: only prices published by the issue hour "
                f"(up to {(until - HOUR).isoformat()}) may be read"
            )
        return self._fetch(zone, start, count)[1]

    def _read(self, zone: str, start: datetime, count: int) -> tuple[FloatArray, FloatArray]:
        last = start + (count - 1) * HOUR
        if last > self.issue_hour:
            raise FutureReadError(
                f"forecast issued at {self.issue_hour.isoformat()} asked for zone {zone!r} "
                f"up to {last.isoformat()}: only hours up to the issue hour may be read"
            )
        return self._fetch(zone, start, count)

    def _fetch(self, zone: str, start: datetime, count: int) -> tuple[FloatArray, FloatArray]:
        window = getattr(self._source, "history_arrays", None)
        if callable(window):
            ci, price = window(zone, start, count)
            return np.asarray(ci, dtype=np.float64), np.asarray(price, dtype=np.float64)
        readings = self._source.series(zone, start, count)
        ci = np.array(
            [np.nan if r.carbon_intensity is None else r.carbon_intensity for r in readings]
        )
        price = np.array(
            [np.nan if r.price_eur_per_mwh is None else r.price_eur_per_mwh for r in readings]
        )
        return ci.astype(np.float64), price.astype(np.float64)


class HistoryForecaster:
    """Forecast from the source's own history with a `tools.grid.forecast` model."""

    def __init__(
        self,
        source: GridSource,
        mode: str = PLANNING_MODE,
        *,
        history_days: int = MODEL_PROFILE_DAYS,
    ) -> None:
        """Build a provider over `source`.

        Args:
            source: Grid source whose history is read (through a `PastGrid`).
            mode: "persistence" (the planner's), "dayahead" (persistence corrected by the
                day-ahead prices published by the issue hour), "model" (fitted blend) or
                "naive" (28-day hour-of-day mean); "perfect" is refused.
            history_days: Days of history to read before each issue hour.

        Raises:
            InvalidInputError: Unknown or non-causal mode, or `history_days` < 1.
        """
        if mode == "perfect":
            raise InvalidInputError(
                "forecast mode 'perfect' reads the future: use 'persistence', 'model' or 'naive'"
            )
        if history_days < 1:
            raise InvalidInputError(f"history_days must be >= 1, got {history_days!r}")
        self._source = source
        self.mode = mode
        self.history_days = history_days
        self._models: dict[tuple[str, str], Forecaster] = {}
        self._read: dict[str, tuple[datetime, int, FloatArray, FloatArray]] = {}
        """Per zone, the last history read (issue hour, hours, carbon, price)."""
        self._lock = threading.Lock()
        """One forecast at a time: the process shares one provider between threads."""

    def _model(self, zone: str, series: str) -> Forecaster:
        key = (zone, series)
        if key not in self._models:
            self._models[key] = make_forecaster(self.mode, np.empty((1, 0)))
        return self._models[key]

    def _history(self, past: PastGrid, zone: str, hours: int) -> tuple[FloatArray, FloatArray]:
        """Return `past.history(zone, hours)`, reading only the hours not read before.

        The last read per zone is kept: a later issue hour reads the hours since the last one
        (and that one again, in case the source revised it) and reuses the rest. Sources
        that build every hour's reading (the simulator) would otherwise pay for a year of
        readings every hour.
        """
        last = self._read.get(zone)
        if last is not None and last[0] == past.issue_hour and last[1] == hours:
            return last[2], last[3]
        ci, price = self._extend(past, zone, hours, last) if last else past.history(zone, hours)
        self._read[zone] = (past.issue_hour, hours, ci, price)
        return ci, price

    @staticmethod
    def _extend(
        past: PastGrid,
        zone: str,
        hours: int,
        last: tuple[datetime, int, FloatArray, FloatArray],
    ) -> tuple[FloatArray, FloatArray]:
        """Return the `hours` up to `past`'s issue hour from `last`'s read and the new hours."""
        end, _, old_ci, old_price = last
        new = int((past.issue_hour - end) / HOUR)
        first = end - (old_ci.size - 1) * HOUR
        start = past.issue_hour - (hours - 1) * HOUR
        if new < 0 or new >= hours or start < first:
            return past.history(zone, hours)
        tail_ci, tail_price = past.history(zone, new + 1)
        if tail_ci.size != new + 1:
            return past.history(zone, hours)
        skip = int((start - first) / HOUR)
        return (
            np.concatenate([old_ci[skip:-1], tail_ci]),
            np.concatenate([old_price[skip:-1], tail_price]),
        )

    @property
    def name(self) -> str:
        """Return "history:<mode>"."""
        return f"history:{self.mode}"

    def forecast(
        self, zone: str, issued_at: datetime, hours: int = DEFAULT_HORIZON_HOURS
    ) -> GridForecast:
        """Return the forecast for the `hours` hours after the hour containing `issued_at`.

        Raises:
            UnknownZoneError: Unknown zone.
            NoGridDataError: The source has no history up to the issue hour.
        """
        code = get_zone(zone).code
        count = check_hours(hours)
        with self._lock:
            return self._forecast(code, issued_at, count)

    def _forecast(self, code: str, issued_at: datetime, count: int) -> GridForecast:
        past = PastGrid(self._source, issued_at)
        # Hours since the epoch keep the hour of day and let a fitted model be reused for a
        # week of issue hours: the history read starts at the same hour all week.
        now = int((past.issue_hour - EPOCH) / HOUR)
        ci, price = self._history(past, code, self.history_days * 24 + now % REFIT_HOURS)
        if ci.size == 0 or np.isnan(ci).all():
            raise NoGridDataError(
                f"no carbon-intensity history for zone {code!r} up to "
                f"{past.issue_hour.isoformat()}: cannot forecast"
            )
        model = self._model(code, "ci")
        if isinstance(model, DayAheadForecaster):
            prices = np.concatenate([price, past.published_prices(code, count)])[None, :]
            first = past.issue_hour - (ci.size - 1) * HOUR
            known = published_leads(code, first, ci.size)[None, :]
            ci_hat = model.predict_ci(ci[None, :], prices, known, now, count)[0]
            price_hat = model.predict_price(prices, now, count)[0]
        else:
            ci_hat = model.predict(ci[None, :], now, count)[0]
            price_hat = self._model(code, "price").predict(price[None, :], now, count)[0]
        ci_hat = np.maximum(np.nan_to_num(ci_hat, nan=float(np.nanmean(ci))), 0.0)
        times = tuple(past.issue_hour + (i + 1) * HOUR for i in range(count))
        return GridForecast(
            zone=code,
            issued_at=ensure_utc(issued_at, "issued_at"),
            source=self.name,
            times=times,
            carbon_intensity=tuple(float(v) for v in ci_hat),
            price_eur_per_mwh=tuple(None if math.isnan(v) else float(v) for v in price_hat),
            note=f"from {ci.size} h of {self._source.name} history up to the issue hour",
        )


def history_days_for(source: GridSource, mode: str = PLANNING_MODE) -> int:
    """Return the days of history the history model `mode` reads from `source`.

    The profile models read `PROFILE_HISTORY_DAYS` of their mode. For the fitted models
    (`FITTED_MODES`), recorded files are sliced as arrays and read `DEFAULT_HISTORY_DAYS`;
    other sources build every hour's reading, so they read `SHORT_HISTORY_DAYS`, the shortest
    history the fitted models accept with room to spare.
    """
    if mode not in FITTED_MODES:
        return PROFILE_HISTORY_DAYS.get(mode, NAIVE_DAYS)
    return DEFAULT_HISTORY_DAYS if source.name == "recorded" else SHORT_HISTORY_DAYS


def history_provider(source: GridSource, mode: str = PLANNING_MODE) -> HistoryForecaster:
    """Return the history model the product forecasts with over `source` (`PLANNING_MODE`).

    Raises:
        InvalidInputError: Unknown or non-causal mode.
    """
    return HistoryForecaster(source, mode, history_days=history_days_for(source, mode))


@runtime_checkable
class ForecastOverlay(Protocol):
    """A grid source that knows changes to future hours which no history shows.

    `tools.incidents.detection.OverriddenGrid` is one: an injected carbon spike or surplus has a
    known end, so the hours it covers are adjusted in every forecast made while it is stored.
    """

    @property
    def inner(self) -> GridSource:
        """Return the source without the changes (the one whose history forecasts read)."""
        ...

    def adjust_forecast(self, forecast: GridForecast) -> GridForecast:
        """Return `forecast` with the known changes applied to the hours they cover."""
        ...
