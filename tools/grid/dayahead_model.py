"""Forecasts that use the day-ahead prices published by the issue hour (mode `dayahead`).

Price: the published day-ahead price where it is known (exact), seasonal persistence beyond.

Carbon intensity: the seasonal-persistence forecast (`tools.grid.forecast`) plus a linear
correction. For issue hour `t` and lead `k`, per zone, the correction reads:

* `a(t, k)`: the price of hour `t+k` minus the 7-day hour-of-day price profile known at `t`,
  divided by that week's mean absolute deviation from the profile and clipped to +-3 (a price
  spike, e.g. a winter storm, moves the forecast at most as much as three typical deviations);
  used where the price of `t+k` is published at `t`, else 0; and the same for the hours
  before and after `t+k` (the shape of the published day around the target hour);
* `tail(t, k)`: for the hours not yet published, the mean `a` of the last 6 published hours
  (tomorrow's wind shows in today's late prices), else 0;
* the persistence forecast itself, and how far from it lie the CI now and 3, 12 and 23 hours
  ago, the CI at the target's hour of day on the last day known at `t` and one week before the
  target (how much of the current regime and of yesterday's shape to keep; gCO2/kWh / 100);
* a constant.

The correction's coefficients are fitted by ridge-regularised least squares on the persistence
forecast's errors, separately per zone, issue hour of day and lead, on every issue hour of the
last `FIT_DAYS` days whose target is known at the fit time; publication is replayed with
`tools.grid.dayahead.published_leads`. Why: within a zone the day-ahead price and CI share a
driver (residual load after wind and solar), so the published prices show the shape of the next
day that history cannot, and a fitted blend of the recent CI keeps what persistence's single
decay rate misses. Fits are refreshed every `REFIT_HOURS` and cached; with less than
`MIN_FIT_DAYS` of fit history the forecast is seasonal persistence.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from tools.grid.blend import _ffill, fitted_lead_index, ridge_by_issue_hour
from tools.grid.forecast import MAX_PHI, FloatArray, SeasonalPersistenceForecaster, _nanmean

IntArray = npt.NDArray[np.int64]
WEEK = 168
FIT_DAYS = 365
MIN_FIT_DAYS = 56
REFIT_HOURS = 168
MAX_FIT_LEAD = 48
CLIP = 3.0
TAIL_HOURS = 6
PRICE_FEATURES = 5
HISTORY_LAGS = (0, 3, 12, 23)
"""Hours before the issue hour whose CI (minus the persistence forecast) is a feature."""
N_FEATURES = PRICE_FEATURES + 1 + len(HISTORY_LAGS) + 2
SCALE = 100.0
"""gCO2/kWh per unit of a CI feature (keeps the features on the price features' scale)."""


def persistence_paths(x: FloatArray, issues: IntArray, horizon: int) -> FloatArray:
    """Return (zones, len(issues), horizon) seasonal-persistence forecasts, one per issue.

    Issued at columns `issues` of `x` (each at least 167): equal to
    `SeasonalPersistenceForecaster` on the week ending at each issue column.
    """
    zones, n = x.shape[0], issues.size
    win = sliding_window_view(x, WEEK, axis=1)[:, issues - (WEEK - 1)]
    prof = _nanmean(win.reshape(zones, n, 7, 24), axis=2)
    resid = np.nan_to_num(win - np.tile(prof, (1, 1, 7)))
    prev, nxt = resid[..., :-1], resid[..., 1:]
    denom = (prev * prev).sum(axis=-1)
    phi = np.where(denom > 0, (prev * nxt).sum(axis=-1) / np.where(denom > 0, denom, 1), 0)
    phi = np.clip(phi, 0.0, MAX_PHI)
    leads = np.arange(1, horizon + 1)
    out: FloatArray = prof[..., (WEEK - 1 + leads) % 24] + phi[..., None] ** leads * resid[..., -1:]
    return out


def price_features(
    price: FloatArray, issues: IntArray, known: IntArray, horizon: int
) -> FloatArray:
    """Return (zones, len(issues), horizon, PRICE_FEATURES) features for issue columns `issues`.

    Per lead: the published anomaly `a`, the tail mean, a constant, and `a` one hour before and
    one hour after (0 where not published; the hour before lead 1 is the issue hour itself).

    Args:
        price: (zones, m) prices, NaN where unknown; every column `issue + k` with
            `k <= known[:, i]` must be a price published at that issue.
        issues: Issue columns (each at least 167).
        known: (zones, len(issues)) published leads at each issue.
        horizon: Leads 1 .. horizon.
    """
    zones, n = price.shape[0], issues.size
    filled = _ffill(price[:, : issues[-1] + 1])
    win = sliding_window_view(filled, WEEK, axis=1)[:, issues - (WEEK - 1)]
    prof = _nanmean(win.reshape(zones, n, 7, 24), axis=2)
    scale = _nanmean(np.abs(win - np.tile(prof, (1, 1, 7))), axis=2)
    leads = np.arange(0, horizon + 2)  # the hour before lead 1 and the one after the last
    cols = np.clip(issues[:, None] + leads[None, :], 0, price.shape[1] - 1)
    target = np.where(issues[:, None] + leads[None, :] < price.shape[1], price[:, cols], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (target - prof[..., (WEEK - 1 + leads) % 24]) / scale[..., None]
    anomaly = np.clip(ratio, -CLIP, CLIP)
    published = leads[None, None, :] <= known[..., None]
    every = np.where(published & np.isfinite(anomaly), anomaly, 0.0)
    f1 = every[..., 1:-1]
    usable = published[..., 1:-1] & np.isfinite(anomaly[..., 1:-1])
    inner = leads[1:-1]
    last = np.maximum(np.minimum(known, horizon), 0)
    recent = (inner[None, None, :] > last[..., None] - TAIL_HOURS) & usable
    count = recent.sum(axis=2)
    tail = np.where(count > 0, (f1 * recent).sum(axis=2) / np.maximum(count, 1), 0.0)
    f2 = np.where(published[..., 1:-1], 0.0, tail[..., None])
    return np.stack([f1, f2, np.ones_like(f1), every[..., :-2], every[..., 2:]], axis=-1)


def history_features(ci: FloatArray, issues: IntArray, base: FloatArray) -> FloatArray:
    """Return (zones, len(issues), horizon, N_FEATURES - PRICE_FEATURES) CI features.

    `base` is the (zones, len(issues), horizon) persistence forecast of each issue; every
    feature of issue column `i` reads only columns <= i (each at least 167 + 168 * (weeks
    of the longest lead - 1)).
    """
    horizon = base.shape[2]
    leads = np.arange(1, horizon + 1)
    target = issues[:, None] + leads[None, :]
    day = target - 24 * np.ceil(leads / 24).astype(np.int64)[None, :]
    week = target - 168 * np.ceil(leads / 168).astype(np.int64)[None, :]
    shape = (ci.shape[0], issues.size, horizon)
    cols = [base]
    cols += [np.broadcast_to(ci[:, issues - lag][..., None], shape) for lag in HISTORY_LAGS]
    cols += [ci[:, np.clip(day, 0, None)], ci[:, np.clip(week, 0, None)]]
    out = np.stack(cols, axis=-1)
    out[..., 1:] -= base[..., None]
    return np.where(np.isfinite(out), out / SCALE, 0.0)


def fit_dayahead(
    ci: FloatArray, price: FloatArray, known: IntArray, now: int, horizon: int
) -> FloatArray | None:
    """Return (zones, 24, horizon, N_FEATURES) correction coefficients, or None.

    `ci`, `price` and `known` are (zones, n) history ending at replay hour `now`; samples are
    the issue columns of the last `FIT_DAYS` days whose target is inside the history.
    """
    n = ci.shape[1]
    first = max(WEEK - 1, n - horizon - FIT_DAYS * 24)
    last = n - 1 - horizon
    if last - first < MIN_FIT_DAYS * 24:
        return None
    issues = np.arange(first, last + 1)
    hods = (now - (n - 1) + issues) % 24
    targets = issues[:, None] + np.arange(1, horizon + 1)[None, :]
    coef = np.zeros((ci.shape[0], 24, horizon, N_FEATURES))
    for z in range(ci.shape[0]):
        base = persistence_paths(ci[z : z + 1], issues, horizon)[0]
        y = ci[z, targets] - base
        w = np.isfinite(y)
        y = np.where(w, y, 0.0)
        feats = np.concatenate(
            [
                price_features(price[z : z + 1], issues, known[z : z + 1, issues], horizon)[0],
                history_features(ci[z : z + 1], issues, base[None])[0],
            ],
            axis=-1,
        )
        coef[z] = ridge_by_issue_hour(feats, y, w.astype(np.float64), hods)
    return coef


class DayAheadForecaster:
    """Seasonal persistence corrected by the published day-ahead prices, refitted weekly."""

    sees_future = False

    def __init__(self) -> None:
        """Create the model (fits are cached per refit week)."""
        self._persistence = SeasonalPersistenceForecaster()
        self._fits: dict[tuple[object, ...], FloatArray | None] = {}

    def predict(self, history: FloatArray, now: int, horizon: int) -> FloatArray:
        """Return seasonal persistence: without published prices there is nothing to add."""
        return self._persistence.predict(history, now, horizon)

    def predict_price(self, price: FloatArray, now: int, horizon: int) -> FloatArray:
        """Return the published price where known, seasonal persistence beyond.

        `price` is (zones, n + horizon): history ending at replay hour `now`, then the next
        `horizon` hours as published at `now` (NaN where not published).
        """
        n = price.shape[1] - horizon
        guess = self._persistence.predict(price[:, :n], now, horizon)
        out: FloatArray = np.where(np.isnan(price[:, n:]), guess, price[:, n:])
        return out

    def predict_ci(
        self, ci: FloatArray, price: FloatArray, known: IntArray, now: int, horizon: int
    ) -> FloatArray:
        """Return the corrected CI forecast for replay hours `now+1 .. now+horizon`.

        Args:
            ci: (zones, n) CI history ending at replay hour `now`.
            price: (zones, n + horizon) price history, then the next hours as published at `now`.
            known: (zones, n) published leads at each history hour (a calendar rule).
            now: Replay hour of the last history column; hour 0 starts at midnight UTC.
            horizon: Hours to predict.
        """
        n = ci.shape[1]
        base = self._persistence.predict(ci, now, horizon)
        coef = self._coefficients(ci, price[:, :n], known, now, min(horizon, MAX_FIT_LEAD))
        if coef is None or n < WEEK:
            return base
        issue = np.array([n - 1])
        feats = np.concatenate(
            [
                price_features(price, issue, known[:, -1:], horizon),
                history_features(ci, issue, base[:, None]),
            ],
            axis=-1,
        )[:, 0]
        use = fitted_lead_index(horizon, coef.shape[2])
        pred: FloatArray = base + np.einsum("zkf,zkf->zk", feats, coef[:, now % 24][:, use])
        return np.where(np.isfinite(pred), pred, base)

    def _coefficients(
        self, ci: FloatArray, price: FloatArray, known: IntArray, now: int, horizon: int
    ) -> FloatArray | None:
        back = now % REFIT_HOURS
        end = ci.shape[1] - back
        if end <= 0:
            return None
        probe = float(np.nansum(ci[:, max(0, end - 24 * FIT_DAYS) : end : 97]))
        key = (ci.shape[0], end, now - back, horizon, probe)
        if key not in self._fits:
            if len(self._fits) > 8:
                self._fits.clear()
            self._fits[key] = fit_dayahead(
                ci[:, :end], price[:, :end], known[:, :end], now - back, horizon
            )
        return self._fits[key]
