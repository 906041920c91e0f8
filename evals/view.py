"""Give policies the grid as it was known at the current hour, and nothing later.

Causality is enforced by construction, not declared. The harness keeps the `GridWindow` in a
`GridFeed` and copies each hour's recorded values into the policy's `GridView` only when the
replay reaches that hour; the view holds no reference to the window, the feed or any other
replay's forecasts, so no attribute path from a view leads to a later recorded value. Asking for
a recorded hour after `now` raises `FutureDataError`.

Forecasts for later hours are computed inside the view from the history it has been shown (modes
`naive`, `persistence` and `model`). Mode `dayahead` also reads the day-ahead prices published by
now (`tools.grid.dayahead`): the feed copies a price into the view only once its publication
time has passed, and `published()` raises `FutureDataError` on a price not yet published.
Mode `perfect` hands the view the recorded future as its forecast: such a view `sees_future`,
and the harness labels every run on it as not causal, whatever the policy declares.

`ForecastBook` is the harness-side forecast cache (temporal capture, benchmarks); policies never
receive it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from evals.gridwindow import GridWindow
from tools.grid.dayahead import published_leads
from tools.grid.dayahead_model import DayAheadForecaster
from tools.grid.forecast import Forecaster, make_forecaster
from tools.grid.models import HOUR

FloatArray = npt.NDArray[np.float64]
SeriesName = Literal["ci", "price"]
SERIES: tuple[SeriesName, ...] = ("ci", "price")


class FutureDataError(RuntimeError):
    """A policy asked for a recorded value after the current replay hour."""


def _frozen(values: FloatArray) -> FloatArray:
    out = np.array(values, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


def _predict(
    forecaster: Forecaster, series: SeriesName, history: FloatArray, now: int, horizon: int
) -> FloatArray:
    """Forecast replay hours `now+1 .. now+horizon` from `history` (ending at hour `now`)."""
    pred = forecaster.predict(history, now, horizon)
    if series == "ci":
        pred = np.maximum(pred, 0.0)  # intensity is never negative (prices can be)
    return _frozen(pred)


def _forecasters(window: GridWindow, mode: str) -> dict[SeriesName, Forecaster]:
    """Return one forecaster per series; only `perfect` keeps (a copy of) the recorded future."""
    return {
        "ci": make_forecaster(mode, _frozen(window.ci[:, window.history :])),
        "price": make_forecaster(mode, _frozen(window.price[:, window.history :])),
    }


class ForecastBook:
    """Harness-side forecasts of one window, computed on demand and cached (never for policies)."""

    def __init__(self, window: GridWindow, mode: str) -> None:
        self._window = window
        self.mode = mode
        self._forecasters = _forecasters(window, mode)
        self._cache: dict[tuple[SeriesName, int, int], FloatArray] = {}
        self._feed = GridFeed(window, mode) if mode == "dayahead" else None
        """Mode `dayahead` reads published prices through a view (hours in increasing order)."""

    @property
    def sees_future(self) -> bool:
        """Return True when the forecasts are the recorded future (mode `perfect`)."""
        return self._forecasters["ci"].sees_future

    def forecast(self, series: SeriesName, now: int, horizon: int) -> FloatArray:
        """Return the (zones, horizon) forecast for replay hours `now+1 .. now+horizon`."""
        key = (series, now, horizon)
        if key not in self._cache and self._feed is not None:
            self._cache[key] = self._feed.advance_to(now).forecast(series, horizon)
        if key not in self._cache:
            data = self._window.ci if series == "ci" else self._window.price
            history = data[:, : self._window.history + now + 1]
            self._cache[key] = _predict(self._forecasters[series], series, history, now, horizon)
        return self._cache[key]


class GridView:
    """The grid as seen at replay hour `now`: the past recorded, the future forecast.

    Built by `GridFeed`; the recorded arrays it holds have NaN in every column the replay has not
    reached, and only the feed fills them in.
    """

    __slots__ = (
        "_cache",
        "_data",
        "_dayahead",
        "_forecasters",
        "_history",
        "_known",
        "_now",
        "_zones",
    )

    def __init__(
        self,
        zones: tuple[str, ...],
        history: int,
        shape: tuple[int, ...],
        forecasters: dict[SeriesName, Forecaster],
    ) -> None:
        self._zones = zones
        self._history = history
        self._data: dict[SeriesName, FloatArray] = {s: np.full(shape, np.nan) for s in SERIES}
        self._forecasters = forecasters
        self._now = -1
        self._cache: dict[tuple[SeriesName, int], FloatArray] = {}
        self._dayahead = np.full(shape, np.nan)
        """Prices as published so far (mode `dayahead` only): recorded hours and published ones."""
        self._known = np.zeros(shape, dtype=np.int64)
        """Per column, the hours after it whose price is published at its start (calendar)."""

    @property
    def now(self) -> int:
        """Return the current replay hour."""
        return self._now

    @property
    def zones(self) -> tuple[str, ...]:
        """Return the zone codes, in array order."""
        return self._zones

    @property
    def sees_future(self) -> bool:
        """Return True when this view's forecasts are the recorded future (not causal)."""
        return self._forecasters["ci"].sees_future

    def _column(self, hour: int) -> int:
        return self._history + hour

    def actual(self, series: SeriesName, hour: int) -> FloatArray:
        """Return the recorded per-zone values of replay hour `hour` (<= now).

        Raises:
            FutureDataError: `hour` is after the current hour.
        """
        if hour > self._now:
            raise FutureDataError(
                f"policy read recorded {series} of hour {hour!r} at hour {self._now!r}; "
                "use forecast() or outlook() for later hours"
            )
        if self._column(hour) < 0:
            raise ValueError(f"hour {hour!r} is before the {self._history!r} h of history")
        return _frozen(self._data[series][:, self._column(hour)])

    def history(self, series: SeriesName, hours: int) -> FloatArray:
        """Return the last `hours` recorded hours up to and including now (zones, <=hours)."""
        end = self._column(self._now) + 1
        return _frozen(self._data[series][:, max(0, end - hours) : end])

    def published(self, hour: int) -> FloatArray:
        """Return the per-zone day-ahead prices of replay hour `hour` published by now.

        Raises:
            FutureDataError: The price of `hour` is not yet published in some zone (or the view
                was not built to read published prices, mode `dayahead`).
        """
        col = self._column(hour)
        if col < 0:
            raise ValueError(f"hour {hour!r} is before the {self._history!r} h of history")
        now_col = self._column(self._now)
        if self._now < 0 or (col > now_col + self._known[:, now_col]).any():
            raise FutureDataError(
                f"policy read the day-ahead price of hour {hour!r} at hour {self._now!r}, "
                "before it was published"
            )
        return _frozen(self._dayahead[:, col])

    def dayahead(self, hours: int, horizon: int) -> FloatArray:
        """Return (zones, <= hours + horizon) prices: recorded, then published.

        The last `hours` recorded hours up to now, then the next `horizon` hours' day-ahead
        prices as published by now (NaN where not yet published).
        """
        end = self._column(self._now) + 1
        return _frozen(self._dayahead[:, max(0, end - hours) : end + horizon])

    def forecast(self, series: SeriesName, horizon: int) -> FloatArray:
        """Return the (zones, horizon) forecast of hours `now+1 .. now+horizon`."""
        key = (series, horizon)
        if key not in self._cache:
            model = self._forecasters[series]
            end = self._column(self._now) + 1
            if isinstance(model, DayAheadForecaster):
                price = self._dayahead[:, : end + horizon]
                if series == "price":
                    pred = _frozen(model.predict_price(price, self._now, horizon))
                else:
                    ci = self._data["ci"][:, :end]
                    known = self._known[:, :end]
                    fit = model.predict_ci(ci, price, known, self._now, horizon)
                    pred = _frozen(np.maximum(fit, 0.0))
            else:
                pred = _predict(model, series, self._data[series][:, :end], self._now, horizon)
            self._cache[key] = pred
        return self._cache[key]

    def outlook(self, series: SeriesName, horizon: int) -> FloatArray:
        """Return (zones, horizon + 1): the recorded current hour, then `horizon` forecast hours."""
        now_col = self._data[series][:, self._column(self._now)][:, None]
        if horizon == 0:
            return _frozen(now_col)
        return _frozen(np.concatenate([now_col, self.forecast(series, horizon)], axis=1))


class GridFeed:
    """The harness's side of a `GridView`: owns the window and reveals it one hour at a time."""

    def __init__(self, window: GridWindow, mode: str) -> None:
        self._window = window
        self.mode = mode
        forecasters = _forecasters(window, mode)
        self.view = GridView(window.zones, window.history, window.ci.shape, forecasters)
        self._revealed = 0
        """Columns of the window copied into the view so far."""
        self._published = np.zeros(len(window.zones), dtype=np.int64)
        """Per zone, columns of published prices copied into the view so far (mode `dayahead`)."""
        self._dayahead = mode == "dayahead"
        if self._dayahead:
            first = window.start - window.history * HOUR
            cols = window.ci.shape[1]
            for z, zone in enumerate(window.zones):
                self.view._known[z] = published_leads(zone, first, cols)

    @property
    def sees_future(self) -> bool:
        """Return True when the view's forecasts are the recorded future."""
        return self.view.sees_future

    def advance_to(self, hour: int) -> GridView:
        """Reveal recorded hours up to and including `hour` and return the view (never back)."""
        if hour < self.view.now:
            raise ValueError(f"view cannot go back from hour {self.view.now!r} to {hour!r}")
        end = self._window.history + hour + 1
        if end > self._window.ci.shape[1]:
            raise ValueError(f"hour {hour!r} is past the window's {self._window.horizon!r} hours")
        view = self.view
        sources: tuple[tuple[SeriesName, FloatArray], ...] = (
            ("ci", self._window.ci),
            ("price", self._window.price),
        )
        for series, source in sources:
            view._data[series][:, self._revealed : end] = source[:, self._revealed : end]
        self._revealed = end
        if self._dayahead:
            for z in range(len(view.zones)):
                upto = min(end + int(view._known[z, end - 1]), self._window.price.shape[1])
                start = int(self._published[z])
                if upto > start:
                    view._dayahead[z, start:upto] = self._window.price[z, start:upto]
                    self._published[z] = upto
        if hour != view._now:
            view._cache.clear()
        view._now = hour
        return view
