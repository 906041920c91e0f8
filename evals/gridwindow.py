"""Cut a replay window (plus history and tail) out of recorded hourly grid files.

Hour 0 is the window start. The arrays also hold `history` hours before it (for the naive and
learned forecasters) and a tail after the window so that jobs arriving late can still finish.

Rules for gaps, all counted in `GridWindow.notes`:

* Missing rows (hours the file skips) matter only inside the replayed days: there they reject the
  window, naming the zone and the hours. Elsewhere they only shorten what is used: history starts
  after the last missing row before the window (`history_hours` of `history_hours_wanted`), and
  the data used ends at the first missing row after the window, as if the recording ended there.
* Missing carbon intensity (an empty cell): carried forward from the previous known hour
  (backward at the start).
* Tail hours past the end of the data used repeat its last recorded day, hour for hour.
* Missing price for *accounting* (`price_cost`): the zone's mean known price over the replayed
  hours; a zone with no price at all (e.g. IT) takes the mean of the other zones' known prices in
  the same hour. Policies never see these fills: they see NaN and apply the scorer's rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tools.clock import parse_time_in_range
from tools.errors import InvalidInputError, NoGridDataError
from tools.grid import load_zone_series
from tools.grid.models import ZoneSeries, ensure_utc

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
HISTORY_DAYS = 28
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class GridWindow:
    """Per-zone hourly arrays; column `history + t` is replay hour `t`."""

    zones: tuple[str, ...]
    start: datetime
    """Aware UTC start of replay hour 0."""
    history: int
    """Hours of recorded history before hour 0 held in the arrays."""
    horizon: int
    """Replay hours (window plus tail)."""
    ci: FloatArray
    """gCO2/kWh, shape (zones, history + horizon), no NaN."""
    price: FloatArray
    """EUR/MWh as recorded (NaN = missing), same shape."""
    price_cost: FloatArray
    """EUR/MWh with the accounting fill rule applied (no NaN), same shape."""
    notes: dict[str, int] = field(default_factory=dict)

    def actual_ci(self) -> FloatArray:
        """Return CI for the replay hours only, shape (zones, horizon)."""
        return self.ci[:, self.history :]

    def actual_price_cost(self) -> FloatArray:
        """Return the accounting price for the replay hours only, shape (zones, horizon)."""
        return self.price_cost[:, self.history :]


START_FORMS = "YYYY-MM-DD or YYYY-MM-DDTHH:00 (UTC unless it names a zone)"


def parse_window_start(text: str, what: str = "--start") -> datetime:
    """Parse the first hour of a replay or evaluation window as typed by a person.

    A date means its midnight; a time must be on the hour; UTC unless the text names a zone.

    Raises:
        InvalidInputError: Not a date or time, out of range, or not on the hour; the message
            names `what` and the value.
    """
    value = parse_time_in_range(text, what=what, expected=f"a date: use {START_FORMS}")
    if value.minute or value.second or value.microsecond:
        raise InvalidInputError(f"{what} {text!r} is not on the hour: use {START_FORMS}")
    return value


def _ffill(values: FloatArray) -> tuple[FloatArray, int]:
    out = values.copy()
    missing = np.isnan(out)
    if not missing.any():
        return out, 0
    if missing.all():
        raise NoGridDataError("a zone has no carbon intensity in the replayed hours")
    idx = np.where(~missing, np.arange(out.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = out[idx]
    first = int(np.flatnonzero(~missing)[0])
    out[:first] = out[first]
    return out, int(missing.sum())


def _extend(values: FloatArray, length: int) -> FloatArray:
    """Pad `values` to `length` by repeating its last 24 hours."""
    if values.size >= length:
        return values[:length]
    last_day = values[-24:]
    reps = int(np.ceil((length - values.size) / last_day.size))
    return np.concatenate([values, np.tile(last_day, reps)])[:length]


def check_span(series: list[ZoneSeries], start: datetime, days: int) -> None:
    """Refuse a window that is not on the hour or not inside every zone's recorded data.

    The message names the span all zones cover and what to change: the latest start that fits
    `days` days, or the most days that fit from `start`.

    Raises:
        NoGridDataError: The window is off the hour or outside the common recorded span.
    """
    first = max(s.start for s in series)
    end = min(s.end for s in series)
    span = (end - first) // _HOUR
    offset = (start - first) / _HOUR
    window = f"the window {start.isoformat()} + {days!r} days"
    if offset != int(offset):
        raise NoGridDataError(
            f"{window} does not start on the hour of the recorded rows: start on a whole hour"
        )
    latest = span - days * 24  # hours from `first`; integer arithmetic (no timedelta overflow)
    if 0 <= offset <= latest:
        return
    fixes = []
    if latest >= 0:
        fixes.append(
            f"start from {first.isoformat()} to {(first + latest * _HOUR).isoformat()} "
            f"for {days!r} days"
        )
    most = (span - int(offset)) // 24
    if offset >= 0 and most >= 1:
        fixes.append(f"ask for at most {most!r} days from {start.isoformat()}")
    if not fixes:
        fixes.append(f"start at {first.isoformat()} with at most {span // 24!r} days")
    raise NoGridDataError(
        f"every zone has data from {first.isoformat()} to {end.isoformat()}; {window} is not "
        f"inside it: {', or '.join(fixes)}"
    )


def _usable_span(s: ZoneSeries, start: datetime, days: int) -> tuple[ZoneSeries, int, int, int]:
    """Return (series, first usable row, window's first row, end of usable rows) for a window.

    The window is inside the series (`check_span`).

    Raises:
        NoGridDataError: The window misses rows.
    """
    window = days * 24
    offset = (start - s.start) / _HOUR
    lo, hi = int(offset), int(offset) + window
    missing = s.missing if s.missing is not None else np.zeros(len(s), dtype=bool)
    inside = np.flatnonzero(missing[lo:hi])
    if inside.size:
        first_gap = s.start + int(lo + inside[0]) * _HOUR
        raise NoGridDataError(
            f"zone {s.zone!r} has no rows for {inside.size!r} hours inside the window "
            f"{start.isoformat()} + {days!r} days (first {first_gap.isoformat()}): pick a "
            "window without missing hours or fill the file"
        )
    before = np.flatnonzero(missing[:lo])
    after = np.flatnonzero(missing[hi:])
    first = int(before[-1]) + 1 if before.size else 0
    end = hi + int(after[0]) if after.size else len(s)
    return s, first, lo, end


def fill_cost_price(price: FloatArray, span: slice) -> FloatArray:
    """Apply the accounting fill rule to a (zones, hours) price array over the `span` columns."""
    out = price.copy()
    part = out[:, span]
    known = ~np.isnan(part)
    for z in range(part.shape[0]):
        if known[z].any():
            part[z, ~known[z]] = part[z, known[z]].mean()
    with np.errstate(all="ignore"):
        hour_mean = np.nanmean(np.where(known, part, np.nan), axis=0)
    hour_mean = np.where(np.isnan(hour_mean), 0.0, hour_mean)
    for z in range(part.shape[0]):
        if not known[z].any():
            part[z] = hour_mean
    out[:, span] = part
    return np.where(np.isnan(out), 0.0, out)


def load_grid_window(
    directory: Path,
    zones: tuple[str, ...],
    *,
    start: datetime,
    days: int,
    tail_hours: int,
    history_days: int = HISTORY_DAYS,
) -> GridWindow:
    """Load `days` days from `start` for each zone, with up to `history_days` before and a tail.

    Missing rows are handled by the module's gap rules.

    Args:
        directory: Folder of recorded `<ZONE>.csv` files.
        zones: Zone codes to load, in fleet order.
        start: Aware UTC start of the window (the hour is used as is).
        days: Window length in days.
        tail_hours: Extra hours after the window for late jobs to finish.
        history_days: Days of history wanted before `start` (less is used when the data begins
            later; forecasts then rest on the history available).

    Raises:
        NoGridDataError: The window is not fully inside every zone's recorded data, or a zone
            misses rows inside it.
        InvalidInputError: `days` or `tail_hours` is out of range.
    """
    if days < 1 or tail_hours < 0:
        raise InvalidInputError(f"days {days!r} / tail_hours {tail_hours!r}: need >= 1 / >= 0")
    start = ensure_utc(start, "start")
    window = days * 24
    series = [load_zone_series(directory, z, allow_gaps=True) for z in zones]
    check_span(series, start, days)
    spans = [_usable_span(s, start, days) for s in series]
    wanted = history_days * 24
    history = min(wanted, *(offset - first for _, first, offset, _ in spans))
    length = history + window + tail_hours
    ci_rows, price_rows = [], []
    notes = {
        "ci_filled_hours": 0,
        "tail_hours_repeated": 0,
        "price_missing_hours": 0,
        "history_hours": history,
        "history_hours_wanted": wanted,
        "missing_rows_outside_window": 0,
    }
    for s, _first, offset, end in spans:
        lo = offset - history
        ci = _extend(s.carbon_intensity[lo:end][:length], length)
        price = _extend(s.price_eur_per_mwh[lo:end][:length], length)
        notes["tail_hours_repeated"] = max(notes["tail_hours_repeated"], length - (end - lo))
        if s.missing is not None:
            notes["missing_rows_outside_window"] += int(s.missing.sum())
        ci, filled = _ffill(ci.astype(np.float64))
        notes["ci_filled_hours"] += filled
        ci_rows.append(ci)
        price_rows.append(price.astype(np.float64))
    ci_arr, price_arr = np.vstack(ci_rows), np.vstack(price_rows)
    notes["tail_hours_repeated"] = max(0, notes["tail_hours_repeated"])
    if history < wanted:
        logger.info("grid window %s: %d h of history, %d wanted", start, history, wanted)
    notes["price_missing_hours"] = int(np.isnan(price_arr[:, history:]).sum())
    logger.info("grid window %s +%dd: %d zones, %d h history", start, days, len(zones), history)
    return GridWindow(
        zones=zones,
        start=start,
        history=history,
        horizon=window + tail_hours,
        ci=ci_arr,
        price=price_arr,
        price_cost=fill_cost_price(price_arr, slice(history, length)),
        notes=notes,
    )
