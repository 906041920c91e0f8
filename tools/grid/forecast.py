"""Forecast carbon intensity and price for the hours after `now` from the hours up to `now`.

Five modes:

* `perfect`: the recorded future itself (an upper bound on forecast quality; not causal).
* `naive`: hour-of-day mean of the last 28 days (the floor named in carbon-anchors.md).
* `persistence`: `SeasonalPersistenceForecaster` below, the mode the planner forecasts with
  (`PLANNING_MODE`).
* `model`: `BlendForecaster` (`tools.grid.blend`), a least-squares blend of daily and weekly
  profiles and recent anomalies fitted per zone, issue hour and lead on up to a year of the
  past. With less than `tools.grid.blend.MIN_FIT_DAYS` of fit history (e.g. a replay window
  loaded with 28 days of history, as `naive` replays load) it is the seasonal-persistence model
  below. The broker plans on it through `tools.grid.outlook.HistoryForecaster`.
* `dayahead`: `DayAheadForecaster` (`tools.grid.dayahead_model`), seasonal persistence corrected
  by the day-ahead prices published by the issue hour and by the recent CI's distance from it;
  with less than `tools.grid.dayahead_model.MIN_FIT_DAYS` of history it is persistence.

`SeasonalPersistenceForecaster`: the hour-of-day mean of the last 7 days (tracks seasonal drift
faster than 28 days; a weekly window averages out weekday effects). The current anomaly
`r = x_now - profile(now)` persists and decays as `phi**k` at lead `k`, where `phi` is the
least-squares AR(1) coefficient of the anomalies over the last 7 days, clipped to [0, 0.99].
Why: grid CI is a strong daily cycle plus weather regimes (wind fronts, cloud) that last hours
to days; the daily profile captures the first and the fitted decay the second. Fits use only
history, per zone and per call.

With less than a day of history (a window at the very start of the recorded data) both use the
mean of the hours there are, until a full day has been seen.

Every forecaster returns a (zones, horizon) array for hours `now+1 .. now+horizon`; NaN in the
history (missing prices) is ignored, and an hour-of-day with no known value forecasts NaN.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from tools.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
ForecastMode = Literal["perfect", "naive", "persistence", "model", "dayahead"]
FORECAST_MODES: tuple[ForecastMode, ...] = ("perfect", "naive", "persistence", "model", "dayahead")
PLANNING_MODE: ForecastMode = "persistence"
"""The history model the planner plans on. Chosen by replaying 20 recorded weeks of 2021-2024
through the product's planner: on seasonal persistence the planner emits 3,043 kg (1.075 x the
oracle, 0 missed deadlines); on the fitted blend 3,363 kg (1.177 x, 8 missed), although the
blend captures more of a single zone's temporal saving (`evals.forecast_eval`). The blend stays
available as `model`."""
NAIVE_DAYS = 28
MODEL_PROFILE_DAYS = 7
MAX_PHI = 0.99


class Forecaster(Protocol):
    """Predict the hours after the last column of `history`."""

    sees_future: bool

    def predict(self, history: FloatArray, now: int, horizon: int) -> FloatArray:
        """Return (zones, horizon) predictions for replay hours `now+1 .. now+horizon`.

        Args:
            history: (zones, n) actuals ending at replay hour `now` (inclusive).
            now: Replay hour of the last history column; hour 0 starts at midnight UTC.
            horizon: Hours to predict.
        """
        ...


def _hod_profile(history: FloatArray, now: int, days: int) -> FloatArray:
    """Return the (zones, 24) hour-of-day nanmean over the last `days` days of `history`."""
    n = min(history.shape[1], days * 24)
    n -= n % 24
    if n == 0:
        if history.shape[1] == 0:
            raise InvalidInputError("forecasts need at least one hour of history")
        return np.repeat(_nanmean(history, axis=1)[:, None], 24, axis=1)
    recent = history[:, history.shape[1] - n :]
    first_hod = (now - n + 1) % 24
    blocks = recent.reshape(history.shape[0], n // 24, 24)
    return np.roll(_nanmean(blocks, axis=1), first_hod, axis=1)


def _nanmean(values: FloatArray, axis: int) -> FloatArray:
    """Return the mean of the known values along `axis`; NaN where none is known.

    Like `np.nanmean`, without its "Mean of empty slice" warning for an all-NaN slice (a zone
    without prices), which would need `warnings.catch_warnings`, not safe across the request
    threads that plan.
    """
    known = ~np.isnan(values)
    count = known.sum(axis=axis)
    total = np.where(known, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _tile_profile(profile: FloatArray, now: int, horizon: int) -> FloatArray:
    hods = (now + 1 + np.arange(horizon)) % 24
    return profile[:, hods]


class NaiveForecaster:
    """Hour-of-day mean of the last 28 days."""

    sees_future = False

    def predict(self, history: FloatArray, now: int, horizon: int) -> FloatArray:
        """Return the hour-of-day means for the next `horizon` hours."""
        return _tile_profile(_hod_profile(history, now, NAIVE_DAYS), now, horizon)


class SeasonalPersistenceForecaster:
    """7-day hour-of-day profile plus a fitted AR(1) decay of the current anomaly."""

    sees_future = False

    def predict(self, history: FloatArray, now: int, horizon: int) -> FloatArray:
        """Return profile + phi**k * current anomaly for leads k = 1..horizon."""
        profile = _hod_profile(history, now, MODEL_PROFILE_DAYS)
        n = min(history.shape[1], MODEL_PROFILE_DAYS * 24)
        recent = history[:, history.shape[1] - n :]
        hods = (now - n + 1 + np.arange(n)) % 24
        resid = np.nan_to_num(recent - profile[:, hods])
        prev, nxt = resid[:, :-1], resid[:, 1:]
        denom = (prev * prev).sum(axis=1)
        phi = np.where(denom > 0, (prev * nxt).sum(axis=1) / np.where(denom > 0, denom, 1), 0)
        phi = np.clip(phi, 0.0, MAX_PHI)
        decay = phi[:, None] ** np.arange(1, horizon + 1)[None, :]
        forecast: FloatArray = _tile_profile(profile, now, horizon) + decay * resid[:, -1:]
        return forecast


class PerfectForecaster:
    """The recorded future: `future[:, now+1 : now+1+horizon]` (replay hours)."""

    sees_future = True

    def __init__(self, actual: FloatArray) -> None:
        self._actual = actual

    def predict(self, history: FloatArray, now: int, horizon: int) -> FloatArray:
        """Return the actual values of the next `horizon` hours (padded with the last hour)."""
        part = self._actual[:, now + 1 : now + 1 + horizon]
        if part.shape[1] < horizon:
            pad = np.repeat(self._actual[:, -1:], horizon - part.shape[1], axis=1)
            part = np.concatenate([part, pad], axis=1)
        return part


def make_forecaster(mode: str, actual: FloatArray) -> Forecaster:
    """Return the forecaster for `mode`; `actual` (zones, horizon) is used only by `perfect`.

    Raises:
        InvalidInputError: Unknown mode.
    """
    if mode == "perfect":
        return PerfectForecaster(actual)
    if mode == "naive":
        return NaiveForecaster()
    if mode == "persistence":
        return SeasonalPersistenceForecaster()
    if mode == "model":
        from tools.grid.blend import BlendForecaster  # blend builds on this module

        return BlendForecaster()
    if mode == "dayahead":
        from tools.grid.dayahead_model import DayAheadForecaster  # builds on this module

        return DayAheadForecaster()
    raise InvalidInputError(f"forecast mode {mode!r}: choose one of {list(FORECAST_MODES)}")
