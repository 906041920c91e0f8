"""Measure how much of the per-zone temporal oracle's savings a forecast captures.

For each zone and every arrival hour of the window, a job of `length` hours with `slack` hours
may start any time in `[arrival, arrival + slack]`, in its own zone, with no capacity limit
(the Sukprasert / carbon-anchors "deferral" setting). Three starts are compared on recorded CI:

* start-now (the carbon-agnostic baseline);
* the temporal oracle (lowest recorded-CI window);
* the forecast policy: every hour from arrival on, compare the recorded current hour plus the
  forecast for the later ones; start as soon as "now" is the best remaining window (it must start
  at the last allowed hour).

Capture = (baseline - policy) / (baseline - oracle), in % of the oracle's savings.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from evals.gridwindow import GridWindow
from evals.view import ForecastBook

FloatArray = npt.NDArray[np.float64]


def _window_sums(values: FloatArray, length: int) -> FloatArray:
    cum = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(values, axis=1)], axis=1)
    return cum[:, length:] - cum[:, :-length]


def temporal_capture(
    window: GridWindow, book: ForecastBook, *, arrivals: int, length: int = 4, slack: int = 24
) -> dict[str, dict[str, float]]:
    """Return per zone (and `mean`) the baseline, oracle and policy mean g/kWh and the capture %.

    Args:
        window: Grid window; `window.horizon` must cover `arrivals + slack + length` hours.
        book: Forecasts to decide with (its mode is the forecast regime measured).
        arrivals: Number of arrival hours (hour 0 .. arrivals-1).
        length: Job length in hours.
        slack: Slack in hours.
    """
    ci = window.actual_ci()
    sums = _window_sums(ci, length)
    n_zones = ci.shape[0]
    idx = np.arange(arrivals)[:, None] + np.arange(slack + 1)[None, :]
    baseline = sums[:, :arrivals]
    oracle = sums[:, idx].min(axis=2)
    chosen = np.full((n_zones, arrivals), -1, dtype=np.int64)
    for t in range(arrivals + slack):
        open_ = (
            (chosen < 0)
            & (np.arange(arrivals)[None, :] <= t)
            & (np.arange(arrivals)[None, :] + slack >= t)
        )
        if not open_.any():
            continue
        outlook = np.concatenate([ci[:, t : t + 1], book.forecast("ci", t, slack + length)], axis=1)
        est = _window_sums(outlook, length)
        for z, a in zip(*np.nonzero(open_), strict=True):
            remaining = a + slack - t
            if remaining == 0 or est[z, 0] <= est[z, 1 : remaining + 1].min():
                chosen[z, a] = t
    policy = sums[np.arange(n_zones)[:, None], chosen]
    out: dict[str, dict[str, float]] = {}
    captures = []
    for z, zone in enumerate(window.zones):
        base, best, got = baseline[z].mean(), oracle[z].mean(), policy[z].mean()
        saving = base - best
        capture = 100.0 * (base - got) / saving if saving > 0 else 100.0
        captures.append(capture)
        out[zone] = {
            "baseline_g_per_kwh": float(base / length),
            "oracle_g_per_kwh": float(best / length),
            "policy_g_per_kwh": float(got / length),
            "oracle_reduction_pct": float(100.0 * saving / base) if base > 0 else 0.0,
            "capture_pct": float(capture),
        }
    out["mean"] = {
        "capture_pct": float(np.mean(captures)),
        "oracle_reduction_pct": float(np.mean([v["oracle_reduction_pct"] for v in out.values()])),
    }
    return out
