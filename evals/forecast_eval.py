"""Evaluate carbon-intensity forecasts on recorded data: temporal capture per (L, S) bin and MAE.

`evaluate_forecasts` loads `days` days of recorded grid from `start` with up to a year of
history before it (the fitted model needs it) and, for each forecast mode, issues a forecast at
every hour from the history up to that hour only (`tools.grid.forecast` forecasters, exactly as
the replay's `ForecastBook` does). It reports, per zone and as the mean of zones:

* temporal capture (`evals.temporal`) for every bin of `evals.temporal.BINS`; a bin whose
  window would run past the recorded data uses only the arrivals that fit;
* the mean absolute error of the next 24 hours' forecast, gCO2/kWh.

The first mode is the one measured (`model` by default); `naive` is reported beside it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evals.gridwindow import GridWindow, load_grid_window
from evals.temporal import BINS, HEADLINE, Bin, capture_from_forecasts
from evals.view import GridFeed
from tools.errors import InvalidInputError
from tools.grid.blend import FIT_DAYS, PREDICT_DAYS
from tools.grid.forecast import FORECAST_MODES, make_forecaster
from tools.grid.zones import ZONE_CODES, get_zone

MAE_HOURS = 24
HISTORY_DAYS = FIT_DAYS + PREDICT_DAYS + 3
MAX_DAYS = 3660


def forecast_tensor(
    window: GridWindow, mode: str, hours: int, horizon: int
) -> npt.NDArray[np.float32]:
    """Return (zones, hours, horizon) CI forecasts (float32) issued at hours 0 .. hours - 1.

    Each forecast sees the recorded history up to its issue hour only.
    """
    out = np.empty((len(window.zones), hours, horizon), dtype=np.float32)
    if mode == "dayahead":  # reads the prices published by each hour through the replay's view
        feed = GridFeed(window, mode)
        for t in range(hours):
            out[:, t] = feed.advance_to(t).forecast("ci", horizon)
        return out
    forecaster = make_forecaster(mode, window.ci[:, window.history :])
    for t in range(hours):
        history = window.ci[:, : window.history + t + 1]
        out[:, t] = np.maximum(forecaster.predict(history, t, horizon), 0.0)
    return out


def _check(start: datetime, days: int, zones: tuple[str, ...], modes: tuple[str, ...]) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInputError(
            f"--days {days!r}: give a whole number of days from 1 to {MAX_DAYS}"
        )
    if not zones:
        raise InvalidInputError("--zones is empty: name at least one zone")
    for zone in zones:
        get_zone(zone)
    for mode in modes:
        if mode not in FORECAST_MODES:
            raise InvalidInputError(f"forecast mode {mode!r}: choose one of {list(FORECAST_MODES)}")


def evaluate_forecasts(
    grid_dir: Path,
    *,
    start: datetime,
    days: int,
    zones: tuple[str, ...] = ZONE_CODES,
    modes: tuple[str, ...] = ("model", "naive"),
    bins: tuple[Bin, ...] = BINS,
) -> dict[str, Any]:
    """Return the evaluation report (JSON-shaped) for `days` days of arrivals from `start`.

    Raises:
        InvalidInputError: Bad days, zone or mode.
        NoGridDataError: The span is not inside every zone's recorded data.
    """
    _check(start, days, zones, modes)
    codes = tuple(get_zone(z).code for z in zones)
    lookahead = max(b.lookahead for b in bins)
    tail = lookahead + 1
    window = load_grid_window(
        grid_dir, codes, start=start, days=days, tail_hours=tail, history_days=HISTORY_DAYS
    )
    recorded = window.horizon - window.notes.get("tail_hours_repeated", 0)
    ci = window.actual_ci()
    arrivals = days * 24
    decide = arrivals + lookahead
    result: dict[str, Any] = {
        "start": window.start.isoformat(),
        "days": days,
        "zones": list(codes),
        "history_hours": window.history,
        "modes": list(modes),
        "bins": {},
        "bins_skipped": {},
        "notes": dict(window.notes),
    }
    tensors = {
        mode: forecast_tensor(window, mode, decide, max(lookahead, MAE_HOURS)) for mode in modes
    }
    for mode, ahead in tensors.items():
        target = np.stack([ci[:, t + 1 : t + 1 + MAE_HOURS] for t in range(arrivals)], axis=1)
        err = np.abs(ahead[:, :arrivals, :MAE_HOURS] - target)
        result.setdefault("mae", {})[mode] = {
            zone: round(float(err[z].mean()), 2) for z, zone in enumerate(codes)
        }
    for b in bins:
        fit = min(arrivals, recorded - b.slack - b.length + 1)
        if fit < 1:
            ends = window.start + timedelta(hours=recorded)
            latest = ends - timedelta(hours=b.slack + b.length)
            result["bins_skipped"][b.label] = (
                f"the recorded data ends at {ends.isoformat()}, before one job's window "
                f"({b.slack} h slack + {b.length} h): start by {latest.isoformat()} to measure it"
            )
            continue
        entry: dict[str, Any] = {
            "arrivals": int(fit),
            "oracle_reduction_pct": {},
            "capture_pct": {},
        }
        for mode, ahead in tensors.items():
            res = capture_from_forecasts(ci, ahead.astype(np.float64), arrivals=fit, b=b)
            entry["capture_pct"][mode] = {z: _r(res["capture_pct"][i]) for i, z in enumerate(codes)}
            entry["capture_pct"][mode]["mean"] = _r(float(np.mean(res["capture_pct"])))
            if not entry["oracle_reduction_pct"]:
                entry["oracle_reduction_pct"] = {
                    z: _r(res["oracle_reduction_pct"][i]) for i, z in enumerate(codes)
                }
        result["bins"][b.label] = entry
    head = result["bins"].get(HEADLINE.label)
    measured = modes[0]
    if head is not None:
        result["mean_capture_pct"] = head["capture_pct"][measured]["mean"]
        result["per_zone"] = {
            zone: {
                "capture_pct": head["capture_pct"][measured][zone],
                "mae": result["mae"][measured][zone],
                **{f"{mode}_capture_pct": head["capture_pct"][mode][zone] for mode in modes[1:]},
                **{f"{mode}_mae": result["mae"][mode][zone] for mode in modes[1:]},
            }
            for zone in codes
        }
        for mode in modes[1:]:
            result[f"{mode}_mean_capture_pct"] = head["capture_pct"][mode]["mean"]
    return result


def _r(value: float) -> float | None:
    return round(float(value), 2) if math.isfinite(value) else None
