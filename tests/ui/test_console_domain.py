import pytest

from tools.broker.fleet import seed_demo
from tools.errors import InvalidInputError, NotFoundError, UnknownZoneError
from tools.grid import SimulatedGrid
from tools.incidents.detection import (
    SURPLUS_CARBON_FACTOR,
    SURPLUS_PRICE_FACTOR,
    SURPLUS_RENEWABLE_PCT,
    add_spike,
    grid_with_overrides,
)
from ui import console_views as views
from ui import dashboard as analytics
from ui import demo, zone_map

GRID = SimulatedGrid(7)


@pytest.fixture
def seeded(session, now):
    seed_demo(session=session, grid=GRID, now=now)
    return session


def test_zone_snapshot_and_series_cover_the_zones(seeded, now):
    points = analytics.zone_snapshot(session=seeded, grid=GRID, now=now)
    assert len(points) == 11 and all(p.carbon_intensity is not None for p in points)
    rows = analytics.zone_series(
        session=seeded, grid=GRID, zones=["FR"], now=now, hours_back=6, hours_ahead=2
    )
    assert len(rows) == 8 and rows[0].ts < rows[-1].ts
    with pytest.raises(InvalidInputError, match="0"):
        analytics.zone_series(session=seeded, grid=GRID, zones=["FR"], now=now, hours_back=0)
    with pytest.raises(UnknownZoneError):
        analytics.zone_series(session=seeded, grid=GRID, zones=["XX"], now=now)


def test_a_spike_shows_on_the_map_and_the_dashboard(seeded, now):
    made = demo.create_workload(session=seeded, grid=GRID, now=now)
    spike = demo.trigger_carbon_spike(session=seeded, grid=GRID, now=now)
    assert spike.zone == made.workload.zone and spike.workload_id == made.workload.id
    fr = next(
        p
        for p in analytics.zone_snapshot(session=seeded, grid=GRID, now=now)
        if p.zone == spike.zone
    )
    assert fr.carbon_intensity == pytest.approx(spike.carbon_after, abs=0.1)
    assert "override" in (fr.note or "")
    board = analytics.dashboard(session=seeded, grid=GRID, now=now)
    assert board.workloads_by_status["routed"] == 1 and board.dirtiest_zone == spike.zone
    report = analytics.carbon_report(session=seeded, now=now)
    assert report.workloads == 1 and report.by_org[0].key == made.workload.org_id


def test_curtailment_is_stored_once_and_listed(seeded, now):
    first = demo.trigger_curtailment(session=seeded, grid=GRID, now=now, zone="fr")
    again = demo.trigger_curtailment(session=seeded, grid=GRID, now=now, zone="FR")
    assert first.event_id == again.event_id and first.zone == "FR"
    listed = analytics.curtailment_events(session=seeded, now=now)
    assert [(e.zone, e.source) for e in listed if e.id == first.event_id] == [("FR", "demo")]
    assert "FR" in analytics.dashboard(session=seeded, grid=GRID, now=now).curtailing_zones
    # The router's grid, the map and the zone table agree: France is surplus, cleaner, cheaper.
    points = analytics.zone_snapshot(session=seeded, grid=GRID, now=now)
    fr = next(p for p in points if p.zone == "FR")
    assert fr.surplus and fr.curtailment and fr.renewable_pct >= SURPLUS_RENEWABLE_PCT
    assert fr.carbon_intensity == pytest.approx(first.carbon_after)
    assert first.carbon_after < first.carbon_before and first.price_after < first.price_before
    assert again.carbon_after == pytest.approx(first.carbon_after)  # one surplus, not two
    table = views.zone_table(points).set_index("zone")
    assert bool(table.loc["FR", "surplus"]) and bool(table.loc["FR", "curtailment"])
    svg = zone_map.zone_map_svg(points)
    assert svg.count('<g class="zone"') == svg.count("</g>") == 11  # one closed group per zone
    fr_mark = svg.split('data-zone="FR"', 1)[1].split("</g>", 1)[0]
    assert 'class="surplus-ring"' in fr_mark and 'class="curtailment-mark"' in fr_mark
    assert "renewable surplus, curtailing" in fr_mark
    with pytest.raises(InvalidInputError, match="25"):
        demo.trigger_curtailment(session=seeded, grid=GRID, now=now, hours=25)


def test_completion_needs_known_work(seeded, now):
    with pytest.raises(NotFoundError, match="create one first"):
        demo.trigger_carbon_spike(session=seeded, grid=GRID, now=now)
    with pytest.raises(NotFoundError, match="wl_nope"):
        demo.complete_workloads(session=seeded, now=now, workload_ids=["wl_nope"])
    made = demo.create_workload(session=seeded, grid=GRID, now=now)
    assert demo.complete_workloads(session=seeded, now=now) == [made.workload.id]
    assert demo.complete_workloads(session=seeded, now=now) == []
    with pytest.raises(InvalidInputError, match="169"):
        demo.grid_cycle(session=seeded, grid=GRID, now=now, hours=169)


def test_a_spike_on_a_surplus_zone_composes_with_it(seeded, now):
    raw = GRID.reading("FR", now)
    demo.trigger_curtailment(session=seeded, grid=GRID, now=now, zone="FR")
    add_spike(
        session=seeded,
        zone="FR",
        carbon_factor=3.0,
        price_factor=2.0,
        hours=1,
        reason="drill",
        now=now,
    )
    seen = grid_with_overrides(session=seeded, grid=GRID, now=now).reading("FR", now)
    carbon, price = raw.carbon_intensity * 3.0, raw.price_eur_per_mwh * 2.0
    assert seen.carbon_intensity == pytest.approx(carbon * SURPLUS_CARBON_FACTOR)
    assert seen.price_eur_per_mwh == pytest.approx(price * SURPLUS_PRICE_FACTOR)
    assert seen.surplus and seen.curtailment and "drill" in (seen.note or "")
