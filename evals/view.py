"""Give policies the grid as it was known at the current hour, and nothing later.

A policy gets a `GridView`: recorded values up to and including the current hour, and forecasts
for later hours from the replay's forecaster. Asking for a recorded value after the current hour
raises `FutureDataError`; arrays handed out are read-only copies, so a policy cannot reach the
harness's data through them. Forecasts are cached per (series, hour, horizon) in a `ForecastBook`
shared by all policies of one replay, so each forecast is computed once.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from evals.gridwindow import GridWindow
from tools.grid.forecast import Forecaster, make_forecaster

FloatArray = npt.NDArray[np.float64]
SeriesName = Literal["ci", "price"]


class FutureDataError(RuntimeError):
    """A policy asked for a recorded value after the current replay hour."""


def _frozen(values: FloatArray) -> FloatArray:
    out = np.array(values, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


class ForecastBook:
    """Forecasts of one replay, computed on demand from history and cached."""

    def __init__(self, window: GridWindow, mode: str) -> None:
        self._window = window
        self.mode = mode
        self._forecasters: dict[SeriesName, Forecaster] = {
            "ci": make_forecaster(mode, window.ci[:, window.history :]),
            "price": make_forecaster(mode, window.price[:, window.history :]),
        }
        self._cache: dict[tuple[SeriesName, int, int], FloatArray] = {}

    @property
    def sees_future(self) -> bool:
        """Return True when the forecasts are the recorded future (mode `perfect`)."""
        return self._forecasters["ci"].sees_future

    def forecast(self, series: SeriesName, now: int, horizon: int) -> FloatArray:
        """Return the (zones, horizon) forecast for replay hours `now+1 .. now+horizon`."""
        key = (series, now, horizon)
        if key not in self._cache:
            data = self._window.ci if series == "ci" else self._window.price
            history = data[:, : self._window.history + now + 1]
            pred = self._forecasters[series].predict(history, now, horizon)
            if series == "ci":
                pred = np.maximum(pred, 0.0)  # intensity is never negative (prices can be)
            self._cache[key] = _frozen(pred)
        return self._cache[key]


class GridView:
    """The grid as seen at replay hour `now`: the past recorded, the future forecast."""

    def __init__(self, window: GridWindow, book: ForecastBook) -> None:
        self._window = window
        self._book = book
        self._now = 0

    @property
    def now(self) -> int:
        """Return the current replay hour."""
        return self._now

    @property
    def zones(self) -> tuple[str, ...]:
        """Return the zone codes, in array order."""
        return self._window.zones

    def advance_to(self, hour: int) -> None:
        """Move the view to replay hour `hour` (the harness calls this; hours never go back)."""
        if hour < self._now:
            raise ValueError(f"view cannot go back from hour {self._now!r} to {hour!r}")
        self._now = hour

    def _data(self, series: SeriesName) -> FloatArray:
        return self._window.ci if series == "ci" else self._window.price

    def actual(self, series: SeriesName, hour: int) -> FloatArray:
        """Return the recorded per-zone values of replay hour `hour` (<= now).

        Raises:
            FutureDataError: `hour` is after the current hour.
        """
        if hour > self._now:
            raise FutureDataError(
                f"policy read recorded {series} of hour {hour!r} at hour {self._now!r}; "
                "use forecast() for later hours"
            )
        return _frozen(self._data(series)[:, self._window.history + hour])

    def history(self, series: SeriesName, hours: int) -> FloatArray:
        """Return the last `hours` recorded hours up to and including now (zones, <=hours)."""
        end = self._window.history + self._now + 1
        return _frozen(self._data(series)[:, max(0, end - hours) : end])

    def outlook(self, series: SeriesName, horizon: int) -> FloatArray:
        """Return (zones, horizon + 1): the recorded current hour, then `horizon` forecast hours."""
        now_col = self._data(series)[:, self._window.history + self._now][:, None]
        if horizon == 0:
            return _frozen(now_col)
        ahead = self._book.forecast(series, self._now, horizon)
        return _frozen(np.concatenate([now_col, ahead], axis=1))
