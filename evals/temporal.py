"""Measure how much of the per-zone temporal oracle's savings a forecast captures.

For each zone and every arrival hour, a job of `length` hours with `slack` hours runs in its own
zone with no capacity limit (the Sukprasert / carbon-anchors setting). Three schedules are
compared on recorded CI:

* start-now (the carbon-agnostic baseline);
* the temporal oracle: the lowest recorded-CI start in `[arrival, arrival + slack]` or, for an
  interruptible job, the `length` lowest hours of `[arrival, arrival + length + slack)`;
* the forecast policy, deciding every hour from the recorded current hour and the forecast for
  the later ones. Deferrable: start as soon as "now" is the best remaining start (it must start
  at the last allowed hour). Interruptible: run this hour when it is no dirtier than the
  `remaining`-th cleanest forecast hour left before the deadline (or when every hour left is
  needed).

Capture = (baseline - policy) / (baseline - oracle), in % of the oracle's savings, per zone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evals.gridwindow import GridWindow
from evals.view import ForecastBook

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Bin:
    """A job shape: `length` hours, `slack` hours, interruptible or not."""

    length: int
    slack: int
    interruptible: bool = False

    @property
    def label(self) -> str:
        """Return the carbon-anchors column name, e.g. "L4 S24" or "L24 S24 i"."""
        return f"L{self.length} S{self.slack}" + (" i" if self.interruptible else "")

    @property
    def lookahead(self) -> int:
        """Return the forecast hours a decision needs after the current hour."""
        return self.slack + self.length - 1


BINS = (
    Bin(1, 24),
    Bin(4, 24),
    Bin(12, 24),
    Bin(24, 24),
    Bin(4, 24, True),
    Bin(24, 24, True),
    Bin(4, 168),
    Bin(24, 168, True),
)
"""The (L, S) bins of carbon-anchors.md section 3, the headline bin L4 S24 second."""
HEADLINE = Bin(4, 24)


def _window_sums(values: FloatArray, length: int) -> FloatArray:
    cum = np.concatenate([np.zeros((*values.shape[:-1], 1)), np.cumsum(values, axis=-1)], axis=-1)
    return cum[..., length:] - cum[..., :-length]


def _deferrable(ci: FloatArray, ahead: FloatArray, arrivals: int, b: Bin) -> npt.NDArray[np.int64]:
    """Return (zones, arrivals) chosen start hours of the forecast policy."""
    n_zones = ci.shape[0]
    chosen = np.full((n_zones, arrivals), -1, dtype=np.int64)
    for t in range(arrivals + b.slack):
        lo, hi = max(0, t - b.slack), min(arrivals, t + 1)
        if lo >= hi:
            continue
        outlook = np.concatenate([ci[:, t : t + 1], ahead[:, t, : b.lookahead]], axis=1)
        est = _window_sums(outlook, b.length)  # (zones, slack + 1): start at t + j
        remaining = np.arange(lo, hi) + b.slack - t  # hours of slack left per arrival
        if b.slack:
            later = np.minimum.accumulate(est[:, 1:], axis=1)
            best_later = later[:, np.maximum(remaining - 1, 0)]
        else:
            best_later = np.full((n_zones, hi - lo), np.inf)
        go = (remaining[None, :] == 0) | (est[:, :1] <= best_later)
        block = chosen[:, lo:hi]
        block[(block < 0) & go] = t
    return chosen


def _interruptible(ci: FloatArray, ahead: FloatArray, arrivals: int, b: Bin) -> FloatArray:
    """Return (zones, arrivals) g/kWh-hours used by the forecast policy (sum over run hours)."""
    n_zones = ci.shape[0]
    left = np.full((n_zones, arrivals), b.length, dtype=np.int64)
    used = np.zeros((n_zones, arrivals))
    span = b.length + b.slack
    for t in range(arrivals + span - 1):
        lo, hi = max(0, t - span + 1), min(arrivals, t + 1)
        need = left[:, lo:hi]
        slots = np.arange(lo, hi) + span - t  # hours left before the deadline, this one included
        # Run now when fewer than `need` later forecast hours are strictly cleaner than now,
        # i.e. now is no dirtier than the need-th cleanest hour still to come.
        cleaner = np.cumsum(ahead[:, t, : span - 1] < ci[:, t : t + 1], axis=1)
        cleaner = np.concatenate([np.zeros((n_zones, 1), dtype=np.int64), cleaner], axis=1)
        count = cleaner[:, slots - 1]
        run = (need > 0) & ((need >= slots[None, :]) | (count < need))
        used[:, lo:hi] += np.where(run, ci[:, t : t + 1], 0.0)
        left[:, lo:hi] -= run
    return used


def capture_from_forecasts(
    ci: FloatArray, ahead: FloatArray, *, arrivals: int, b: Bin
) -> dict[str, FloatArray]:
    """Return per-zone mean baseline, oracle and policy g/kWh-hours per job and the capture %.

    Args:
        ci: (zones, hours) recorded CI of the replay hours; must cover arrivals + S + L hours.
        ahead: (zones, >= arrivals + S + L - 1, >= b.lookahead) forecasts; `ahead[:, t, k]` is the
            forecast of hour `t + 1 + k` made at hour `t`.
        arrivals: Number of arrival hours (hour 0 .. arrivals - 1).
        b: The job shape.
    """
    sums = _window_sums(ci, b.length)
    baseline = sums[:, :arrivals]
    if b.interruptible:
        idx = np.arange(arrivals)[:, None] + np.arange(b.length + b.slack)[None, :]
        oracle = np.sort(ci[:, idx], axis=2)[:, :, : b.length].sum(axis=2)
        policy = _interruptible(ci, ahead, arrivals, b)
    else:
        idx = np.arange(arrivals)[:, None] + np.arange(b.slack + 1)[None, :]
        oracle = sums[:, idx].min(axis=2)
        chosen = _deferrable(ci, ahead, arrivals, b)
        policy = sums[np.arange(ci.shape[0])[:, None], chosen]
    base, best, got = baseline.mean(axis=1), oracle.mean(axis=1), policy.mean(axis=1)
    saving = base - best
    with np.errstate(divide="ignore", invalid="ignore"):
        capture = np.where(saving > 0, 100.0 * (base - got) / saving, 100.0)
        reduction = np.where(base > 0, 100.0 * saving / base, 0.0)
    return {
        "baseline": base,
        "oracle": best,
        "policy": got,
        "capture_pct": capture,
        "oracle_reduction_pct": reduction,
    }


def book_forecasts(book: ForecastBook, hours: int, horizon: int) -> FloatArray:
    """Return (zones, hours, horizon) CI forecasts made at replay hours 0 .. hours - 1."""
    return np.stack([book.forecast("ci", t, horizon) for t in range(hours)], axis=1)


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
    b = Bin(length, slack)
    ahead = book_forecasts(book, arrivals + slack, max(b.lookahead, 1))
    res = capture_from_forecasts(window.actual_ci(), ahead, arrivals=arrivals, b=b)
    out: dict[str, dict[str, float]] = {}
    for z, zone in enumerate(window.zones):
        out[zone] = {
            "baseline_g_per_kwh": float(res["baseline"][z] / length),
            "oracle_g_per_kwh": float(res["oracle"][z] / length),
            "policy_g_per_kwh": float(res["policy"][z] / length),
            "oracle_reduction_pct": float(res["oracle_reduction_pct"][z]),
            "capture_pct": float(res["capture_pct"][z]),
        }
    out["mean"] = {
        "capture_pct": float(np.mean(res["capture_pct"])),
        "oracle_reduction_pct": float(np.mean(res["oracle_reduction_pct"])),
    }
    return out
