"""Load one zone's hourly CSV into numpy arrays, validating it row by row.

Two layouts are read, recognised by their header:

* ours: `datetime_utc,carbon_intensity_gco2_per_kwh,renewable_pct,price_eur_per_mwh`, where
  the carbon column is Electricity Maps' life-cycle (LCA) intensity;
* Electricity Maps' hourly export, in either generation of its column names:
  `Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),
  Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,
  Data Estimated,Data Estimation Method` or the newer `... Carbon intensity gCO₂eq/kWh (Life
  cycle),Carbon-free energy percentage (CFE%),Renewable energy percentage (RE%) ...`.
  Life-cycle intensity is preferred when both are present; the series records which it used.
  Exports carry no price, so the price array is all NaN.

Header matching ignores case, spaces and the subscript in "CO₂". Empty cells stay NaN.
Rows must be contiguous hours; with `allow_gaps=True` a forward jump is accepted instead, and the
hours without a row become NaN hours flagged in `ZoneSeries.missing` (for callers that use only
part of a file and check their own span).
"""

from __future__ import annotations

import csv
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from tools.errors import InvalidInputError, NoGridDataError
from tools.grid.models import HOUR, MAX_CARBON_INTENSITY, ZoneSeries
from tools.grid.zones import get_zone

logger = logging.getLogger(__name__)

PRICE_RANGE = (-1000.0, 15000.0)
"""Accepted EUR/MWh: wider than every market's price floor and cap in these zones."""

_ALIASES: dict[str, tuple[str, ...]] = {
    "datetime": ("datetime_utc", "datetime(utc)"),
    "ci_lca": (
        "carbon_intensity_gco2_per_kwh",
        "carbonintensitygco2eq/kwh(lca)",
        "carbonintensitygco2eq/kwh(lifecycle)",
    ),
    "ci_direct": ("carbonintensitygco2eq/kwh(direct)",),
    "renewable": (
        "renewable_pct",
        "renewablepercentage",
        "renewableenergypercentage(re%)",
    ),
    "price": ("price_eur_per_mwh",),
    "zone_id": ("zoneid",),
    "estimated": ("dataestimated",),
}


def _normalise(header: str) -> str:
    return "".join(header.replace("₂", "2").lower().split()).lstrip("\ufeff")


def _columns(header: list[str], path: Path) -> dict[str, int]:
    """Map our column roles to positions in `header`."""
    where = {_normalise(name): i for i, name in enumerate(header)}
    found: dict[str, int] = {}
    for role, names in _ALIASES.items():
        for name in names:
            if name in where:
                found[role] = where[name]
                break
    if "datetime" not in found or not ({"ci_lca", "ci_direct"} & found.keys()):
        raise InvalidInputError(
            f"{path}: header {header!r} has no recognised time and carbon-intensity columns; "
            "expected 'datetime_utc,carbon_intensity_gco2_per_kwh,...' or an Electricity Maps "
            "export with 'Datetime (UTC)' and 'Carbon Intensity gCO₂eq/kWh (LCA)'"
        )
    return found


def _parse_time(text: str, path: Path, line: int) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{path} line {line}: time {text!r} is not ISO-8601 (e.g. 2021-01-01T00:00:00Z)"
        ) from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value.minute or value.second or value.microsecond:
        raise InvalidInputError(f"{path} line {line}: time {text!r} is not on the hour")
    return value


def _parse_number(text: str, path: Path, line: int, column: str, low: float, high: float) -> float:
    text = text.strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(
            f"{path} line {line}: {column} {text!r} is not a number (leave it empty if unknown)"
        ) from None
    if not (low <= value <= high):
        raise InvalidInputError(
            f"{path} line {line}: {column} {value!r} is outside {low:g}..{high:g}"
        )
    return value


def load_zone_series(directory: Path | str, zone: str, *, allow_gaps: bool = False) -> ZoneSeries:
    """Read `<directory>/<zone>.csv` into a validated `ZoneSeries`.

    Args:
        directory: Folder holding one `<ZONE>.csv` per zone.
        zone: Zone code; also checked against an export's `Zone Id` column.
        allow_gaps: Accept missing hours (forward jumps) as NaN hours flagged in `missing`;
            repeated or backward times are still refused.

    Raises:
        UnknownZoneError: The zone is not supported.
        NoGridDataError: There is no file for the zone.
        InvalidInputError: The file is malformed: unknown header, unparsable value, a value out
            of range (0 <= CI <= 2000, 0 <= renewable % <= 100), or rows that are not
            contiguous hours (not increasing, with `allow_gaps`). The message names the file,
            the line and the value.
    """
    code = get_zone(zone).code
    path = Path(directory) / f"{code}.csv"
    if not path.is_file():
        raise NoGridDataError(f"no recorded grid file for zone {code!r}: {str(path)!r} is missing")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InvalidInputError(f"{path}: the file is empty; expected a header and rows")
        cols = _columns(header, path)
        ci_col = cols["ci_lca"] if "ci_lca" in cols else cols["ci_direct"]  # one is present
        basis: Literal["lca", "direct"] = "lca" if "ci_lca" in cols else "direct"
        rows = [(line, row) for line, row in enumerate(reader, start=2) if row]
    if not rows:
        raise InvalidInputError(f"{path}: no data rows after the header")

    count = len(rows)
    ci = np.empty(count)
    renewable = np.full(count, np.nan)
    price = np.full(count, np.nan)
    estimated = np.zeros(count, dtype=bool) if "estimated" in cols else None
    width = len(header)
    start: datetime | None = None
    previous: datetime | None = None
    offsets: list[int] = []
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise InvalidInputError(
                f"{path} line {line}: {len(row)} fields, the header has {width}: {row!r}"
            )
        ts = _parse_time(row[cols["datetime"]], path, line)
        if previous is None:
            start = ts
        elif ts - previous != HOUR and not (allow_gaps and ts > previous):
            gap = (ts - previous) / HOUR
            raise InvalidInputError(
                f"{path} line {line}: rows must be contiguous hours; expected "
                f"{(previous + HOUR).isoformat()} after {previous.isoformat()}, got "
                f"{ts.isoformat()} ({gap:g} h step)"
            )
        previous = ts
        offsets.append(0 if start is None else int((ts - start) // HOUR))
        if "zone_id" in cols and row[cols["zone_id"]].strip() not in ("", code):
            raise InvalidInputError(
                f"{path} line {line}: zone id {row[cols['zone_id']]!r} does not match the "
                f"file's zone {code!r}"
            )
        ci[i] = _parse_number(row[ci_col], path, line, "carbon intensity", 0, MAX_CARBON_INTENSITY)
        if "renewable" in cols:
            renewable[i] = _parse_number(row[cols["renewable"]], path, line, "renewable %", 0, 100)
        if "price" in cols:
            price[i] = _parse_number(row[cols["price"]], path, line, "price", *PRICE_RANGE)
        if estimated is not None:
            estimated[i] = row[cols["estimated"]].strip().lower() in ("true", "1", "yes")
    assert start is not None  # rows is non-empty
    missing = None
    if allow_gaps:
        hour = np.asarray(offsets, dtype=np.int64)
        missing = np.ones(int(hour[-1]) + 1, dtype=bool)
        missing[hour] = False
        ci, renewable, price = (_spread(a, hour, missing.size) for a in (ci, renewable, price))
        if estimated is not None:
            estimated = np.nan_to_num(_spread(estimated, hour, missing.size)).astype(bool)
    for array in (ci, renewable, price, estimated, missing):
        if array is not None:
            array.flags.writeable = False  # the series is cached and shared: keep it intact
    logger.debug("loaded %s: %d hours from %s (%s intensity)", path, count, start, basis)
    return ZoneSeries(
        zone=code,
        start=start,
        carbon_intensity=ci,
        renewable_pct=renewable,
        price_eur_per_mwh=price,
        path=path,
        ci_basis=basis,
        estimated=estimated,
        missing=missing,
    )


def _spread(values: np.ndarray, hour: np.ndarray, length: int) -> np.ndarray:
    """Place `values` at positions `hour` of a NaN array of `length`."""
    out = np.full(length, np.nan)
    out[hour] = values
    return out
