"""Read a grid source for some zones and hours and store the states and curtailment events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.orm import Session

from store import grid_repo
from store.models import GridState
from tools.grid.curtailment import find_curtailment_events
from tools.grid.models import HOUR, GridReading, GridSource, check_hours, ensure_utc, floor_hour
from tools.grid.zones import get_zone


class IngestReport(BaseModel):
    """What one ingest read and wrote."""

    source: str
    zones: list[str]
    start: datetime
    """First hour read (aware UTC)."""
    end: datetime
    """End of the last hour read (exclusive)."""
    readings: int
    grid_states_added: int
    grid_states_updated: int
    grid_states_unchanged: int
    curtailment_windows: int
    curtailment_events_added: int
    curtailment_events_updated: int

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.readings} readings for {len(self.zones)} zone(s) "
            f"{self.start.isoformat()} to {self.end.isoformat()}; grid states "
            f"+{self.grid_states_added} added, {self.grid_states_updated} updated, "
            f"{self.grid_states_unchanged} unchanged; curtailment events "
            f"+{self.curtailment_events_added} added, {self.curtailment_events_updated} updated"
        )


def ingest(
    *,
    session: Session,
    source: GridSource,
    zones: Sequence[str],
    start: datetime,
    hours: int,
    now: datetime,
) -> IngestReport:
    """Read `hours` hours of each zone from `source` and upsert grid states and curtailment events.

    Running it again over the same span adds nothing. Flushes; the caller commits.

    Args:
        session: Open session.
        source: Grid source to read (simulated, recorded or live).
        zones: Zone codes to read.
        start: Aware time of the first hour (the hour containing it is used).
        hours: Number of hours per zone (at least 1; the live source serves only 1).
        now: Aware current time, stored as recorded/detected time.

    Raises:
        UnknownZoneError: A zone is not supported.
        NoGridDataError: The source has no data for part of the span.
    """
    codes = [get_zone(z).code for z in dict.fromkeys(zones)]
    count = check_hours(hours)
    first = floor_hour(start)
    now = ensure_utc(now, "now")
    readings: list[GridReading] = []
    for code in codes:
        readings.extend(source.series(code, first, count))
    states = grid_repo.upsert_grid_states(session=session, readings=readings, now=now)
    windows = find_curtailment_events(readings)
    events = grid_repo.upsert_curtailment_events(
        session=session, windows=windows, source=source.name, now=now
    )
    return IngestReport(
        source=source.name,
        zones=codes,
        start=first,
        end=first + count * HOUR,
        readings=len(readings),
        grid_states_added=states.inserted,
        grid_states_updated=states.updated,
        grid_states_unchanged=states.unchanged,
        curtailment_windows=len(windows),
        curtailment_events_added=events.inserted,
        curtailment_events_updated=events.updated,
    )


def readings_from_states(states: Iterable[GridState]) -> list[GridReading]:
    """Return stored grid states as `GridReading`s (for code that reads the store).

    Args:
        states: Rows from `store.grid_repo.latest_grid_states` or `grid_history`.
    """
    return [GridReading.model_validate(state, from_attributes=True) for state in states]
