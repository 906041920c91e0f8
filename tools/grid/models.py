"""Define what every grid source returns: `GridReading`, the `GridSource` protocol, `ZoneSeries`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.errors import InvalidInputError

SourceName = Literal["sim", "recorded", "live"]
HOUR = timedelta(hours=1)
SURPLUS_SHARE = 0.7
"""Renewable generation above this share of demand is a surplus (and above 70 % of consumption
for recorded renewable percentages)."""
MAX_CARBON_INTENSITY = 2000.0
"""Largest plausible gCO2eq/kWh; anything above is treated as bad data."""


class GridReading(BaseModel):
    """One hour of one zone's grid: carbon, renewables, price, and whether renewables are spare.

    Missing values are None: a source never invents a number it does not have.
    """

    model_config = ConfigDict(frozen=True)

    zone: str
    ts: datetime
    """Start of the hour, timezone-aware UTC."""
    source: SourceName
    carbon_intensity: float | None = Field(default=None, ge=0, le=MAX_CARBON_INTENSITY)
    """Life-cycle carbon intensity of consumed electricity, gCO2eq/kWh."""
    renewable_pct: float | None = Field(default=None, ge=0, le=100)
    """Renewable share of consumption, 0-100 (nuclear is not renewable)."""
    price_eur_per_mwh: float | None = None
    """Day-ahead price; may be negative."""
    demand_mw: float | None = Field(default=None, ge=0)
    renewable_mw: float | None = Field(default=None, ge=0)
    surplus: bool | None = None
    """Renewable generation above 70 % of demand; None when the source cannot tell."""
    curtailment: bool | None = None
    """Surplus beyond what the zone can absorb; None when the source cannot tell."""
    note: str | None = None
    """Why a value is missing or how it was derived."""

    @field_validator("ts")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        return ensure_utc(value, "ts")


class GridSource(Protocol):
    """Anything that answers "what is the grid like in this zone at this hour"."""

    @property
    def name(self) -> SourceName:
        """Return the source name stored with each reading."""
        ...

    def reading(self, zone: str, at: datetime) -> GridReading:
        """Return the reading for the hour containing `at` (aware)."""
        ...

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        """Return `hours` consecutive hourly readings from the hour containing `start`."""
        ...


@dataclass(frozen=True, eq=False)
class ZoneSeries:
    """A zone's recorded hours as float64 arrays (NaN = missing), one element per hour."""

    zone: str
    start: datetime
    """Aware UTC start of the first hour."""
    carbon_intensity: np.ndarray
    renewable_pct: np.ndarray
    price_eur_per_mwh: np.ndarray
    path: Path | None = None
    ci_basis: Literal["lca", "direct"] = "lca"
    """Which Electricity Maps intensity the carbon column holds (life-cycle unless only direct
    was in the file)."""
    estimated: np.ndarray | None = None
    """Bool per hour: Electricity Maps flagged the hour as estimated (None: file had no flag)."""
    missing: np.ndarray | None = None
    """Bool per hour: the file has no row for the hour (only when loaded with `allow_gaps`)."""

    def __len__(self) -> int:
        return int(self.carbon_intensity.shape[0])

    @property
    def end(self) -> datetime:
        """Return the exclusive end of coverage (start of the hour after the last row)."""
        return self.start + len(self) * HOUR

    def index_of(self, at: datetime) -> int | None:
        """Return the row of the hour containing `at`, or None when outside the coverage."""
        offset = (ensure_utc(at, "at") - self.start) / HOUR
        index = math.floor(offset)
        return index if 0 <= index < len(self) else None


def surplus_flags(renewable_mw: float, demand_mw: float, threshold_mw: float) -> tuple[bool, bool]:
    """Return (surplus, curtailment) for a renewable generation and demand.

    Surplus: renewable > 0.7 x demand. Curtailment: the spare renewables
    (renewable - 0.7 x demand) exceed the zone's threshold. Equality is neither.

    Args:
        renewable_mw: Renewable generation, MW.
        demand_mw: Demand, MW.
        threshold_mw: The zone's `curtailment_threshold_mw`.
    """
    spare = renewable_mw - SURPLUS_SHARE * demand_mw
    return spare > 0, spare > threshold_mw


def ensure_utc(value: datetime, what: str = "time") -> datetime:
    """Return `value` in UTC; refuse naive datetimes.

    Args:
        value: A timezone-aware datetime.
        what: Name of the argument, for the error message.

    Raises:
        InvalidInputError: `value` has no time zone.
    """
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{what} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"{what} {value!r} has no time zone: pass an aware UTC datetime (e.g. tzinfo=UTC)"
        )
    return value.astimezone(UTC)


def floor_hour(value: datetime) -> datetime:
    """Return the start of the UTC hour containing `value` (aware)."""
    return ensure_utc(value).replace(minute=0, second=0, microsecond=0)


def check_hours(hours: int) -> int:
    """Return `hours` if it is a positive integer, else raise InvalidInputError."""
    if isinstance(hours, bool) or not isinstance(hours, int) or hours < 1:
        raise InvalidInputError(f"hours must be a positive whole number, got {hours!r}")
    return hours
