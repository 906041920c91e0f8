from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from store import grid_repo
from store.models import CurtailmentEvent, GridState
from tools.errors import NoGridDataError, UnknownZoneError
from tools.grid import (
    CurtailmentWindow,
    GridReading,
    RecordedGrid,
    SimulatedGrid,
    find_curtailment_events,
)
from tools.grid.ingest import ingest, readings_from_states

H = timedelta(hours=1)
T0 = datetime(2023, 5, 1, tzinfo=UTC)


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def reading(hour, *, zone="DE", curtailment=True, renewable=None, demand=None, pct=None):
    return GridReading(
        zone=zone,
        ts=T0 + hour * H,
        source="sim",
        carbon_intensity=100.0,
        renewable_mw=renewable,
        demand_mw=demand,
        renewable_pct=pct,
        surplus=curtailment,
        curtailment=curtailment,
    )


def test_windows_merge_consecutive_hours_per_zone():
    readings = [
        reading(0, renewable=900.0, demand=1000.0, pct=90.0),
        reading(1, renewable=1000.0, demand=1000.0, pct=95.0),
        reading(2, curtailment=False),
        reading(3, renewable=800.0, demand=1000.0),
        reading(5, curtailment=None),
        reading(6, zone="ES"),
        reading(1, zone="ES"),
    ]
    windows = find_curtailment_events(reversed(readings))
    assert [(w.zone, w.start, w.end, w.hours) for w in windows] == [
        ("DE", T0, T0 + 2 * H, 2),
        ("DE", T0 + 3 * H, T0 + 4 * H, 1),
        ("ES", T0 + H, T0 + 2 * H, 1),
        ("ES", T0 + 6 * H, T0 + 7 * H, 1),
    ]
    assert windows[0].peak_surplus_mw == 300.0
    assert windows[0].peak_renewable_pct == 95.0
    assert windows[1].peak_surplus_mw == 100.0 and windows[1].peak_renewable_pct is None
    assert windows[2].peak_surplus_mw is None
    assert find_curtailment_events([]) == []


def test_ingest_sim_is_idempotent(session, now):
    grid = SimulatedGrid(7)
    zones = ["DE", "NL", "ES", "FR"]
    first = ingest(session=session, source=grid, zones=zones, start=T0, hours=24 * 7, now=now)
    session.commit()
    assert first.readings == 4 * 24 * 7
    assert first.grid_states_added == first.readings
    assert first.curtailment_windows > 0
    assert first.curtailment_events_added == first.curtailment_windows
    states, events = count(session, GridState), count(session, CurtailmentEvent)
    assert states == first.readings and events == first.curtailment_windows

    again = ingest(session=session, source=grid, zones=zones, start=T0, hours=24 * 7, now=now)
    session.commit()
    assert again.grid_states_added == 0 and again.grid_states_updated == 0
    assert again.grid_states_unchanged == first.readings
    assert again.curtailment_events_added == 0 and again.curtailment_events_updated == 0
    assert count(session, GridState) == states
    assert count(session, CurtailmentEvent) == events

    stored = grid_repo.list_curtailment_events(session=session, source="sim")
    expected = find_curtailment_events(grid.series("DE", T0, 24 * 7))
    assert [(e.start_ts, e.end_ts, e.hours) for e in stored if e.zone == "DE"] == [
        (w.start, w.end, w.hours) for w in expected
    ]


def test_ingest_recorded_and_read_back(session, grid_dir, now):
    grid = RecordedGrid(grid_dir)
    start = datetime(2022, 6, 1, tzinfo=UTC)
    report = ingest(
        session=session, source=grid, zones=["PT", "GB"], start=start, hours=48, now=now
    )
    session.commit()
    assert report.grid_states_added == 96
    history = grid_repo.grid_history(
        session=session, zone="PT", start=start, end=start + 48 * H, source="recorded"
    )
    assert len(history) == 48
    assert history[0].ts == start and history[0].ts.tzinfo is not None
    back = readings_from_states(history)
    assert back == grid.series("PT", start, 48)
    assert all(r.renewable_pct is None and r.surplus is None for r in back)
    latest = grid_repo.latest_grid_states(session=session)
    assert [(s.zone, s.ts) for s in latest] == [("GB", start + 47 * H), ("PT", start + 47 * H)]
    assert grid_repo.latest_grid_states(session=session, zones=["PT"])[0].zone == "PT"
    again = ingest(session=session, source=grid, zones=["PT", "GB"], start=start, hours=48, now=now)
    assert again.grid_states_added == 0 and again.grid_states_updated == 0


def test_changed_reading_is_updated_not_duplicated(session, now):
    old = reading(0, renewable=500.0, demand=1000.0, curtailment=False)
    assert grid_repo.upsert_grid_states(session=session, readings=[old], now=now).inserted == 1
    new = old.model_copy(update={"carbon_intensity": 250.0, "note": "revised"})
    later = now + H
    counts = grid_repo.upsert_grid_states(session=session, readings=[new], now=later)
    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 1, 0)
    session.commit()
    (state,) = grid_repo.grid_history(session=session, zone="DE", start=T0, end=T0 + H)
    assert state.carbon_intensity == 250.0 and state.note == "revised"
    assert state.recorded_at == later


def test_overlapping_windows_merge_into_one_event(session, now):
    def window(start, end, peak):
        return CurtailmentWindow(
            zone="DE",
            source="sim",
            start=T0 + start * H,
            end=T0 + end * H,
            hours=end - start,
            peak_surplus_mw=peak,
            peak_renewable_pct=None,
        )

    up = grid_repo.upsert_curtailment_events
    assert up(session=session, windows=[window(2, 4, 10.0)], source="sim", now=now).inserted == 1
    assert up(session=session, windows=[window(6, 8, 30.0)], source="sim", now=now).inserted == 1
    merged = up(session=session, windows=[window(3, 6, 20.0)], source="sim", now=now)
    assert merged.updated == 1
    session.commit()
    (event,) = grid_repo.list_curtailment_events(session=session, zone="DE")
    assert (event.start_ts, event.end_ts, event.hours) == (T0 + 2 * H, T0 + 8 * H, 6)
    assert event.peak_surplus_mw == 30.0
    again = up(session=session, windows=[window(2, 8, 5.0)], source="sim", now=now)
    assert again.unchanged == 1


def test_ingest_errors(session, grid_dir, now):
    with pytest.raises(UnknownZoneError):
        ingest(session=session, source=SimulatedGrid(1), zones=["XX"], start=T0, hours=1, now=now)
    with pytest.raises(NoGridDataError, match="'FR'"):
        ingest(
            session=session,
            source=RecordedGrid(grid_dir),
            zones=["FR"],
            start=datetime(2030, 1, 1, tzinfo=UTC),
            hours=2,
            now=now,
        )


@given(
    hours=st.dictionaries(
        st.tuples(st.sampled_from(["DE", "ES"]), st.integers(0, 60)),
        st.sampled_from([True, False, None]),
        max_size=80,
    )
)
def test_windows_cover_exactly_the_curtailed_hours(hours):
    readings = [reading(h, zone=z, curtailment=flag) for (z, h), flag in hours.items()]
    windows = find_curtailment_events(readings)
    covered = {(w.zone, w.start + i * H) for w in windows for i in range(w.hours)}
    curtailed = {(z, T0 + h * H) for (z, h), flag in hours.items() if flag is True}
    assert covered == curtailed
    assert sum(w.hours for w in windows) == len(curtailed)
    for a, b in zip(windows, windows[1:], strict=False):
        if a.zone == b.zone:
            assert a.end < b.start  # separate windows never touch
