"""Repository functions for grid states and curtailment events.

Keyword-only, session first. They write and flush; the caller owns the transaction. Readings and
windows are accepted by shape (any object with the listed attributes), so this layer does not
import the grid package above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from store.models import CurtailmentEvent, GridState

GRID_FIELDS = (
    "carbon_intensity",
    "renewable_pct",
    "price_eur_per_mwh",
    "demand_mw",
    "renewable_mw",
    "surplus",
    "curtailment",
    "note",
)
"""GridState columns copied from a reading (besides zone, ts and source)."""


class GridRow(Protocol):
    """What `upsert_grid_states` reads from each reading (tools.grid.GridReading fits)."""

    @property
    def zone(self) -> str: ...  # noqa: D102
    @property
    def ts(self) -> datetime: ...  # noqa: D102
    @property
    def source(self) -> str: ...  # noqa: D102
    @property
    def carbon_intensity(self) -> float | None: ...  # noqa: D102
    @property
    def renewable_pct(self) -> float | None: ...  # noqa: D102
    @property
    def price_eur_per_mwh(self) -> float | None: ...  # noqa: D102
    @property
    def demand_mw(self) -> float | None: ...  # noqa: D102
    @property
    def renewable_mw(self) -> float | None: ...  # noqa: D102
    @property
    def surplus(self) -> bool | None: ...  # noqa: D102
    @property
    def curtailment(self) -> bool | None: ...  # noqa: D102
    @property
    def note(self) -> str | None: ...  # noqa: D102


class WindowRow(Protocol):
    """What `upsert_curtailment_events` reads (tools.grid.CurtailmentWindow fits)."""

    @property
    def zone(self) -> str: ...  # noqa: D102
    @property
    def start(self) -> datetime: ...  # noqa: D102
    @property
    def end(self) -> datetime: ...  # noqa: D102
    @property
    def peak_surplus_mw(self) -> float | None: ...  # noqa: D102
    @property
    def peak_renewable_pct(self) -> float | None: ...  # noqa: D102


@dataclass(frozen=True)
class UpsertCounts:
    """How many rows an upsert inserted, changed, or found already identical."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def upsert_grid_states(
    *, session: Session, readings: Iterable[GridRow], now: datetime
) -> UpsertCounts:
    """Insert or update grid states keyed by (zone, ts, source); identical rows are left alone.

    Args:
        session: Open session; the caller commits.
        readings: Hourly readings; a later duplicate of the same key wins.
        now: Aware time stored as `recorded_at` on inserted and changed rows.
    """
    latest: dict[tuple[str, datetime, str], GridRow] = {}
    for reading in readings:
        latest[(reading.zone, reading.ts, reading.source)] = reading
    groups: dict[tuple[str, str], list[GridRow]] = {}
    for (zone, _, source), reading in latest.items():
        groups.setdefault((zone, source), []).append(reading)

    inserts: list[dict[str, object]] = []
    updates: list[dict[str, object]] = []
    stale: list[GridState] = []
    unchanged = 0
    for (zone, source), rows in groups.items():
        times = [r.ts for r in rows]
        existing = {
            state.ts: state
            for state in session.scalars(
                select(GridState).where(
                    GridState.zone == zone,
                    GridState.source == source,
                    GridState.ts >= min(times),
                    GridState.ts <= max(times),
                )
            )
        }
        for reading in rows:
            values = {name: getattr(reading, name) for name in GRID_FIELDS}
            state = existing.get(reading.ts)
            if state is None:
                inserts.append(
                    {"zone": zone, "ts": reading.ts, "source": source, "recorded_at": now, **values}
                )
            elif all(getattr(state, name) == value for name, value in values.items()):
                unchanged += 1
            else:
                updates.append({"id": state.id, "recorded_at": now, **values})
                stale.append(state)
    if inserts:
        session.execute(insert(GridState), inserts)
    if updates:
        session.execute(update(GridState), updates)
    session.flush()
    for state in stale:  # bulk UPDATE bypasses the identity map; reload these on next access
        session.expire(state)
    return UpsertCounts(len(inserts), len(updates), unchanged)


def _max(a: float | None, b: float | None) -> float | None:
    known = [v for v in (a, b) if v is not None]
    return max(known) if known else None


def upsert_curtailment_events(
    *, session: Session, windows: Iterable[WindowRow], source: str, now: datetime
) -> UpsertCounts:
    """Store curtailment windows for `source`, merging any that touch or overlap stored ones.

    A window that touches or overlaps stored events of the same zone and source is merged into
    one event spanning all of them (peaks are the larger of each); so reading overlapping spans
    twice never duplicates or splits an event.

    Args:
        session: Open session; the caller commits.
        windows: Curtailment windows (zone, start, end exclusive, peaks).
        source: Grid source name stored with the events.
        now: Aware time stored as `detected_at` on new and changed events.
    """
    inserted = updated = unchanged = 0
    for window in sorted(windows, key=lambda w: (w.zone, w.start)):
        touching = session.scalars(
            select(CurtailmentEvent)
            .where(
                CurtailmentEvent.zone == window.zone,
                CurtailmentEvent.source == source,
                CurtailmentEvent.start_ts <= window.end,
                CurtailmentEvent.end_ts >= window.start,
            )
            .order_by(CurtailmentEvent.start_ts)
        ).all()
        if not touching:
            session.add(
                CurtailmentEvent(
                    zone=window.zone,
                    start_ts=window.start,
                    end_ts=window.end,
                    source=source,
                    peak_surplus_mw=window.peak_surplus_mw,
                    peak_renewable_pct=window.peak_renewable_pct,
                    hours=round((window.end - window.start).total_seconds() / 3600),
                    detected_at=now,
                )
            )
            session.flush()
            inserted += 1
            continue
        keep, *others = touching
        start = min(window.start, *(e.start_ts for e in touching))
        end = max(window.end, *(e.end_ts for e in touching))
        surplus, renewable = window.peak_surplus_mw, window.peak_renewable_pct
        for event in touching:
            surplus = _max(surplus, event.peak_surplus_mw)
            renewable = _max(renewable, event.peak_renewable_pct)
        merged = {
            "start_ts": start,
            "end_ts": end,
            "hours": round((end - start).total_seconds() / 3600),
            "peak_surplus_mw": surplus,
            "peak_renewable_pct": renewable,
        }
        if not others and all(getattr(keep, k) == v for k, v in merged.items()):
            unchanged += 1
            continue
        if others:
            session.execute(
                delete(CurtailmentEvent).where(CurtailmentEvent.id.in_([e.id for e in others]))
            )
            session.flush()
        for name, value in merged.items():
            setattr(keep, name, value)
        keep.detected_at = now
        session.flush()
        updated += 1
    return UpsertCounts(inserted, updated, unchanged)


def latest_grid_states(
    *, session: Session, zones: Sequence[str] | None = None, source: str | None = None
) -> list[GridState]:
    """Return the most recent grid state of each zone, ordered by zone.

    When several sources share a zone's latest hour, the one whose name sorts first is returned.

    Args:
        session: Open session.
        zones: Only these zones (default all that have states).
        source: Only states from this source (default any).
    """
    latest = select(GridState.zone, func.max(GridState.ts).label("ts")).group_by(GridState.zone)
    if zones is not None:
        latest = latest.where(GridState.zone.in_(list(zones)))
    if source is not None:
        latest = latest.where(GridState.source == source)
    sub = latest.subquery()
    stmt = (
        select(GridState)
        .join(sub, (GridState.zone == sub.c.zone) & (GridState.ts == sub.c.ts))
        .order_by(GridState.zone, GridState.source)
    )
    if source is not None:
        stmt = stmt.where(GridState.source == source)
    picked: dict[str, GridState] = {}
    for state in session.scalars(stmt):
        picked.setdefault(state.zone, state)
    return list(picked.values())


def grid_history(
    *,
    session: Session,
    zone: str,
    start: datetime,
    end: datetime,
    source: str | None = None,
) -> list[GridState]:
    """Return a zone's grid states with start <= ts < end, in time order (then by source).

    Args:
        session: Open session.
        zone: Zone code.
        start: Aware start, inclusive.
        end: Aware end, exclusive.
        source: Only states from this source (default any).
    """
    stmt = (
        select(GridState)
        .where(GridState.zone == zone, GridState.ts >= start, GridState.ts < end)
        .order_by(GridState.ts, GridState.source)
    )
    if source is not None:
        stmt = stmt.where(GridState.source == source)
    return list(session.scalars(stmt))


def list_curtailment_events(
    *, session: Session, zone: str | None = None, source: str | None = None
) -> list[CurtailmentEvent]:
    """Return curtailment events ordered by zone and start, optionally for one zone or source.

    Args:
        session: Open session.
        zone: Only this zone.
        source: Only this source.
    """
    stmt = select(CurtailmentEvent).order_by(CurtailmentEvent.zone, CurtailmentEvent.start_ts)
    if zone is not None:
        stmt = stmt.where(CurtailmentEvent.zone == zone)
    if source is not None:
        stmt = stmt.where(CurtailmentEvent.source == source)
    return list(session.scalars(stmt))
