"""A least-squares blend of seasonal profiles and recent anomalies, fitted only on the past.

For an issue hour `t` and lead `k` (forecasting hour `t+k`), the features are, per zone:

* `P1`, `P7`, `P28`: the value at the target's hour of day, averaged over the last 1, 7 and 28
  days known at `t` (the latest day's shape, the weekly and the monthly level);
* `W1`: the value one week before the target hour (day-of-week effect) or, when that is after
  `t`, two weeks before;
* `x0 .. x23`: the recorded values 0, 1, 2, 3, 6, 12 and 23 hours before `t` (the current
  weather regime and how it is moving);
* a constant.

The forecast is a linear blend of these with coefficients fitted by ridge-regularised least
squares separately for each zone, issue hour of day (0-23) and lead, on every issue hour of the
last `fit_days` days whose target is already known at the fit time. Why: the grid's daily shape
changes with the hour the forecast is made (solar mornings, evening peaks) and how much of the
current anomaly persists depends on the lead. Fits are refreshed every `refit_hours` (a week)
and cached, so hourly calls cost one small matrix product. With less than `MIN_FIT_DAYS` days
of history the seasonal-persistence model is used instead. Missing values (prices) are carried
forward for the features and never used as targets; a zone with no value at all forecasts NaN.
"""

from __future__ import annotations

import numpy as np

from tools.grid.forecast import FloatArray, SeasonalPersistenceForecaster

MIN_FIT_DAYS = 56
FIT_DAYS = 365
REFIT_HOURS = 168
MAX_FIT_LEAD = 48
"""Leads fitted; a longer lead reuses the fitted lead in (24, 48] with the same target hour."""
RIDGE = 0.01
"""Ridge penalty as a share of each feature's own sum of squares."""
LAGS = (0, 1, 2, 3, 6, 12, 23)
PROFILE_DAYS = (1, 7, 28)
FEATURE_DAYS = 28 + 2
"""History a feature needs before its issue hour (the 28-day profile plus leads up to 48 h)."""
N_FEATURES = len(PROFILE_DAYS) + 1 + len(LAGS) + 1
PREDICT_DAYS = 31
MIN_HISTORY_HOURS = (FEATURE_DAYS + MIN_FIT_DAYS) * 24 + MAX_FIT_LEAD + 1
"""History up to a refit boundary that the first fit needs; with less the model is seasonal
persistence."""
"""History one prediction's features read (28-day profile, week lag, lags, 2-day leads)."""


def _ffill(x: FloatArray) -> FloatArray:
    """Carry the last known value forward along axis 1 (backward at the start); NaN rows stay."""
    out = x.copy()
    for z in range(out.shape[0]):
        row = out[z]
        known = ~np.isnan(row)
        if not known.any() or known.all():
            continue
        idx = np.where(known, np.arange(row.size), 0)
        np.maximum.accumulate(idx, out=idx)
        filled = row[idx]
        filled[: int(np.flatnonzero(known)[0])] = row[known][0]
        out[z] = filled
    return out


def _hod_cumsum(x: FloatArray) -> FloatArray:
    """Return c with c[:, i] = x[:, i] + x[:, i-24] + x[:, i-48] + ... (same hour of day)."""
    n = x.shape[1]
    pad = (-n) % 24
    padded = np.concatenate([np.zeros((x.shape[0], pad)), x], axis=1)
    days = padded.reshape(x.shape[0], -1, 24)
    return np.cumsum(days, axis=1).reshape(x.shape[0], -1)[:, pad:]


def _features(x: FloatArray, cs: FloatArray, issues: np.ndarray, horizon: int) -> FloatArray:
    """Return (zones, len(issues), horizon, N_FEATURES) features for issue columns `issues`.

    Every feature of issue column `i` reads only columns <= i.
    """
    leads = np.arange(1, horizon + 1)
    target = issues[:, None] + leads[None, :]
    back = np.ceil(leads / 24).astype(np.int64)  # days back to the first same-hour value <= i
    cols = []
    for days in PROFILE_DAYS:
        hi = target - 24 * back[None, :]
        lo = hi - 24 * days
        upper = cs[:, np.clip(hi, 0, None)]
        lower = np.where(lo >= 0, cs[:, np.clip(lo, 0, None)], 0.0)
        cols.append((upper - lower) / days)
    weeks = np.where(leads > 168, 2, 1)
    cols.append(x[:, np.clip(target - 168 * weeks[None, :], 0, None)])
    for lag in LAGS:
        cols.append(
            np.broadcast_to(
                x[:, np.clip(issues - lag, 0, None)][:, :, None], (x.shape[0], *target.shape)
            )
        )
    cols.append(np.ones((x.shape[0], *target.shape)))
    return np.stack(cols, axis=-1)


def fit_blend(
    history: FloatArray, now: int, horizon: int, fit_days: int = FIT_DAYS
) -> FloatArray | None:
    """Return (zones, 24, horizon, N_FEATURES) coefficients fitted on `history`, or None.

    Issue hours are indexed by hour of day of the issue (`now` is the replay hour of the last
    column, hour 0 at midnight UTC). Samples are the issue columns of the last `fit_days` days
    whose target column is inside `history`; None when there are fewer than `MIN_FIT_DAYS`.
    """
    n = history.shape[1]
    first = max(FEATURE_DAYS * 24, n - horizon - fit_days * 24)
    last = n - 1 - horizon
    if last - first < MIN_FIT_DAYS * 24:
        return None
    x = _ffill(history)
    known_target = ~np.isnan(history)
    cs = _hod_cumsum(np.nan_to_num(x))
    issues = np.arange(first, last + 1)
    hods = (now - (n - 1) + issues) % 24
    leads = np.arange(1, horizon + 1)
    coef = np.full((history.shape[0], 24, horizon, N_FEATURES), np.nan)
    for z in range(history.shape[0]):
        if np.isnan(x[z]).all():
            continue
        feats = _features(x[z : z + 1], cs[z : z + 1], issues, horizon)[0]
        target_cols = issues[:, None] + leads[None, :]
        y = x[z, target_cols]
        w = known_target[z, target_cols].astype(np.float64)
        coef[z] = ridge_by_issue_hour(feats, y, w, hods)
    return coef


def ridge_by_issue_hour(
    feats: FloatArray, y: FloatArray, weight: FloatArray, hods: np.ndarray
) -> FloatArray:
    """Return (24, horizon, F) ridge least-squares coefficients, one fit per issue hour and lead.

    Args:
        feats: (samples, horizon, F) features of each issue sample and lead.
        y: (samples, horizon) targets (any value where `weight` is 0).
        weight: (samples, horizon) sample weights (0 for an unknown target).
        hods: (samples,) hour of day of each sample's issue.

    The penalty is `RIDGE` times each feature's own sum of squares (plus 1e-9), so a feature
    that never varies for an hour (a constant, an unpublished price) cannot make it singular.
    """
    n_feat = feats.shape[-1]
    eye = np.eye(n_feat)[None]
    coef = np.zeros((24, feats.shape[1], n_feat))
    for hod in range(24):
        sel = hods == hod
        a = feats[sel].transpose(1, 0, 2)  # (horizon, samples, F)
        m = weight[sel].T[:, :, None]
        t = y[sel].T[:, :, None]
        gram = a.transpose(0, 2, 1) @ (a * m)
        rhs = (a.transpose(0, 2, 1) @ (t * m))[..., 0]
        diag = np.einsum("kff->kf", gram)
        gram = gram + (RIDGE * diag[:, :, None] + 1e-9) * eye
        coef[hod] = np.linalg.solve(gram, rhs[..., None])[..., 0]
    return coef


def fitted_lead_index(horizon: int, fitted: int) -> np.ndarray:
    """Return, per lead 1..horizon, the index of the fitted lead to use.

    Leads beyond the `fitted` ones reuse the fitted lead in (fitted-24, fitted] with the same
    target hour of day.
    """
    leads = np.arange(1, horizon + 1)
    return np.where(leads <= fitted, leads, fitted - (fitted - leads) % 24) - 1


class BlendForecaster:
    """Least-squares blend of profiles and anomalies, refitted weekly on the trailing year."""

    sees_future = False

    def __init__(self, fit_days: int = FIT_DAYS, refit_hours: int = REFIT_HOURS) -> None:
        """Create the model.

        Args:
            fit_days: Days of issue hours a fit uses (the most recent ones).
            refit_hours: Hours between refits; calls in between reuse the cached fit.
        """
        self.fit_days = fit_days
        self.refit_hours = refit_hours
        self._fallback = SeasonalPersistenceForecaster()
        self._fits: dict[tuple[object, ...], FloatArray | None] = {}

    def _coefficients(self, history: FloatArray, now: int, horizon: int) -> FloatArray | None:
        # Fit on history up to the last refit boundary so that a week of calls shares one fit.
        back = now % self.refit_hours
        end = history.shape[1] - back
        if end <= 0:
            return None
        part = history[:, :end]
        probe = part[:, max(0, end - self.fit_days * 24 - horizon) :: 97]
        fit_h = min(horizon, MAX_FIT_LEAD)
        key = (
            part.shape,
            now - back,
            fit_h,
            float(np.nansum(probe)),
            float(np.nansum(part[:, -1])),
        )
        if key not in self._fits:
            if len(self._fits) > 8:
                self._fits.clear()
            self._fits[key] = fit_blend(part, now - back, fit_h, self.fit_days)
        return self._fits[key]

    def predict(self, history: FloatArray, now: int, horizon: int) -> FloatArray:
        """Return the blended forecast for replay hours `now+1 .. now+horizon`."""
        coef = self._coefficients(history, now, horizon)
        if coef is None or history.shape[1] < FEATURE_DAYS * 24:
            return self._fallback.predict(history, now, horizon)
        x = _ffill(history[:, -PREDICT_DAYS * 24 :])
        cs = _hod_cumsum(np.nan_to_num(x))
        issue = np.array([x.shape[1] - 1])
        feats = _features(x, cs, issue, horizon)[:, 0]  # (zones, horizon, F)
        use = fitted_lead_index(horizon, coef.shape[2])
        pred = np.einsum("zkf,zkf->zk", feats, coef[:, now % 24][:, use])
        fallback = self._fallback.predict(history, now, horizon)
        return np.where(np.isnan(pred), fallback, pred)
