"""Replay recorded hourly grid data (Electricity Maps carbon intensity, day-ahead prices).

Each zone's file is read once, on first use, and kept on the instance as numpy arrays. Readings
never invent values: an empty cell is None. Recorded files have no MW figures, so surplus and
curtailment come from the renewable share (surplus above 70 %, curtailment above the zone's
`curtailment_renewable_pct`); without a renewable share both are None and the note says why.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np

from tools.errors import InvalidInputError, NoGridDataError
from tools.grid.models import (
    HOUR,
    SURPLUS_SHARE,
    GridReading,
    SourceName,
    ZoneSeries,
    check_hours,
    floor_hour,
)
from tools.grid.zonefile import load_zone_series
from tools.grid.zones import get_zone


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


class RecordedGrid:
    """Read `<ZONE>.csv` hourly files from a directory (see `tools.grid.zonefile`)."""

    def __init__(self, directory: Path | str) -> None:
        """Open a directory of recorded zone files; nothing is read until a zone is asked for.

        Args:
            directory: Folder with one `<ZONE>.csv` per zone.

        Raises:
            InvalidInputError: The directory does not exist.
        """
        path = Path(directory)
        if not path.is_dir():
            raise InvalidInputError(
                f"recorded grid directory {str(path)!r} does not exist: set TGTG_GRID_DIR or "
                "pass --grid-dir with a folder of <ZONE>.csv files"
            )
        self.directory = path
        self._series: dict[str, ZoneSeries] = {}

    @property
    def name(self) -> SourceName:
        """Return "recorded"."""
        return "recorded"

    def zone_series(self, zone: str) -> ZoneSeries:
        """Return the zone's whole recorded series as numpy arrays (loaded once, then cached).

        Args:
            zone: Zone code.
        """
        code = get_zone(zone).code
        series = self._series.get(code)
        if series is None:
            series = self._series[code] = load_zone_series(self.directory, code)
        return series

    def _index(self, series: ZoneSeries, at: datetime) -> int:
        index = series.index_of(at)
        if index is None:
            raise NoGridDataError(
                f"no recorded grid data for zone {series.zone!r} at {floor_hour(at).isoformat()}: "
                f"the file covers {series.start.isoformat()} to {series.end.isoformat()} "
                "(end exclusive)"
            )
        return index

    def _reading(self, series: ZoneSeries, index: int) -> GridReading:
        zone = get_zone(series.zone)
        renewable = _value(series.renewable_pct[index])
        notes = []
        if renewable is None:
            surplus = curtailment = None
            notes.append(
                "renewable share not recorded for this hour, so surplus and curtailment "
                "cannot be determined"
            )
        else:
            surplus = renewable > 100 * SURPLUS_SHARE
            curtailment = renewable > zone.curtailment_renewable_pct
        if series.ci_basis == "direct":
            notes.append("carbon intensity is direct (operational), not life-cycle")
        if series.estimated is not None and series.estimated[index]:
            notes.append("hour estimated by Electricity Maps")
        return GridReading(
            zone=series.zone,
            ts=series.start + index * HOUR,
            source="recorded",
            carbon_intensity=_value(series.carbon_intensity[index]),
            renewable_pct=renewable,
            price_eur_per_mwh=_value(series.price_eur_per_mwh[index]),
            surplus=surplus,
            curtailment=curtailment,
            note="; ".join(notes) or None,
        )

    def reading(self, zone: str, at: datetime) -> GridReading:
        """Return the recorded reading for the UTC hour containing `at`.

        Args:
            zone: Zone code.
            at: Aware time; minutes and seconds are ignored (the containing hour is used).

        Raises:
            NoGridDataError: `at` is outside the file's coverage (the message gives the span).
        """
        series = self.zone_series(zone)
        return self._reading(series, self._index(series, at))

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        """Return `hours` consecutive recorded readings from the hour containing `start`.

        Args:
            zone: Zone code.
            start: Aware time of the first hour.
            hours: Number of hours (at least 1); the whole span must be recorded.

        Raises:
            NoGridDataError: Part of the span is outside the file's coverage.
        """
        series = self.zone_series(zone)
        count = check_hours(hours)
        first = self._index(series, start)
        self._index(series, floor_hour(start) + (count - 1) * HOUR)
        return [self._reading(series, first + i) for i in range(count)]

    def history_arrays(
        self, zone: str, start: datetime, hours: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (carbon intensity, price) arrays for `hours` hours from `start` (NaN = missing).

        Hours before the first recorded hour are left out (fewer values come back); the last
        hour must be recorded.

        Args:
            zone: Zone code.
            start: Aware time of the first hour wanted.
            hours: Number of hours (at least 1).

        Raises:
            NoGridDataError: The last hour is outside the file's coverage.
        """
        series = self.zone_series(zone)
        count = check_hours(hours)
        last = self._index(series, floor_hour(start) + (count - 1) * HOUR)
        first = max(0, last - count + 1)
        return (
            series.carbon_intensity[first : last + 1].copy(),
            series.price_eur_per_mwh[first : last + 1].copy(),
        )
