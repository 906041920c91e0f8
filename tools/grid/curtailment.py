"""Merge curtailed hours into curtailment windows, one per run of consecutive hours."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from tools.grid.models import HOUR, SURPLUS_SHARE, GridReading, SourceName


class CurtailmentWindow(BaseModel):
    """Consecutive hours in which a zone curtails renewables."""

    model_config = ConfigDict(frozen=True)

    zone: str
    source: SourceName
    start: datetime
    """First curtailed hour (aware UTC)."""
    end: datetime
    """End of the last curtailed hour (exclusive)."""
    hours: int
    peak_surplus_mw: float | None
    """Largest renewable - 0.7 x demand in the window; None when no hour had MW figures."""
    peak_renewable_pct: float | None


def _surplus_mw(reading: GridReading) -> float | None:
    if reading.renewable_mw is None or reading.demand_mw is None:
        return None
    return round(reading.renewable_mw - SURPLUS_SHARE * reading.demand_mw, 1)


def _peak(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def find_curtailment_events(readings: Iterable[GridReading]) -> list[CurtailmentWindow]:
    """Return the curtailment windows in `readings`, per zone and source, in time order.

    Hours with `curtailment` True that follow each other (one hour apart) form one window;
    False, None and missing hours all end a window.

    Args:
        readings: Hourly readings of any zones, in any order.
    """
    curtailed = sorted(
        (r for r in readings if r.curtailment is True),
        key=lambda r: (r.zone, r.source, r.ts),
    )
    runs: list[list[GridReading]] = []
    for reading in curtailed:
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and (last.zone, last.source) == (reading.zone, reading.source)
            and reading.ts - last.ts <= HOUR
        ):
            if reading.ts != last.ts:
                runs[-1].append(reading)
        else:
            runs.append([reading])
    return [
        CurtailmentWindow(
            zone=run[0].zone,
            source=run[0].source,
            start=run[0].ts,
            end=run[-1].ts + HOUR,
            hours=len(run),
            peak_surplus_mw=_peak(_surplus_mw(r) for r in run),
            peak_renewable_pct=_peak(r.renewable_pct for r in run),
        )
        for run in runs
    ]
