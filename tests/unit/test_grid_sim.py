from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from tools.errors import InvalidInputError, UnknownZoneError
from tools.grid import ZONE_CODES, ZONES, SimulatedGrid, get_zone, surplus_flags
from tools.grid.simulated import local_day

SUMMER_DAY = date(2023, 6, 21)
START = datetime(2023, 1, 1, tzinfo=UTC)


def test_eleven_zones_with_coordinates_and_time_zones():
    assert ZONE_CODES == (
        "FR",
        "DE",
        "ES",
        "PT",
        "NL",
        "BE",
        "IT",
        "GB",
        "US-CAL-CISO",
        "US-NY-NYIS",
        "US-TEX-ERCO",
    )
    for code, zone in ZONES.items():
        assert zone.code == code
        assert -90 < zone.lat < 90 and -180 < zone.lon < 180
        assert zone.name
        assert zone.curtailment_renewable_pct >= 70
        assert zone.curtailment_threshold_mw > 0
    assert get_zone("US-TEX-ERCO").tz == "America/Chicago"


def test_unknown_zone_lists_valid_codes():
    with pytest.raises(UnknownZoneError) as err:
        get_zone("XX")
    assert "'XX'" in str(err.value)
    assert "US-NY-NYIS" in str(err.value)
    with pytest.raises(UnknownZoneError):
        SimulatedGrid(1).reading("fr", START)


@pytest.mark.parametrize("zone", ZONE_CODES)
def test_solar_peaks_around_local_noon(zone):
    grid = SimulatedGrid(7)
    for day in (SUMMER_DAY, date(2023, 12, 21), date(2023, 3, 29)):
        hours = local_day(zone, day)
        solar = [grid.components(zone, h).solar_mw for h in hours]
        peak = grid.components(zone, hours[int(np.argmax(solar))])
        assert 10 <= peak.local_hour <= 16
        assert max(solar) > 0
        night = grid.components(zone, hours[2])
        assert night.solar_mw == 0.0


def test_solar_is_stronger_in_summer_and_further_south():
    grid = SimulatedGrid(7)

    # Compare clear-sky potential: per MW installed, summed over a year of midday hours.
    def yield_per_mw(zone, months):
        total = 0.0
        for m in months:
            for d in range(1, 29):
                for h in local_day(zone, date(2023, m, d)):
                    total += grid.components(zone, h).solar_mw
        return total / ZONES[zone].solar_capacity_mw

    assert yield_per_mw("DE", [6, 7]) > 2 * yield_per_mw("DE", [12, 1])
    assert yield_per_mw("ES", range(1, 13)) > 1.2 * yield_per_mw("GB", range(1, 13))


@pytest.mark.parametrize("zone", ZONE_CODES)
def test_demand_peaks_in_the_evening(zone):
    grid = SimulatedGrid(3)
    for day in (date(2023, 2, 7), SUMMER_DAY, date(2023, 10, 11)):
        hours = local_day(zone, day)
        demand = [grid.components(zone, h) for h in hours]
        peak = max(demand, key=lambda c: c.demand_mw)
        assert 18 <= peak.local_hour <= 20


@pytest.mark.parametrize("zone", ZONE_CODES)
def test_wind_is_anti_correlated_with_solar(zone):
    grid = SimulatedGrid(7)
    comps = [grid.components(zone, START + timedelta(hours=h)) for h in range(0, 8760, 3)]
    solar = np.array([c.solar_mw for c in comps])
    wind = np.array([c.wind_mw for c in comps])
    assert np.corrcoef(solar, wind)[0, 1] < -0.05
    assert wind.max() <= ZONES[zone].wind_capacity_mw


def test_surplus_and_curtailment_rule_at_the_boundary():
    assert surplus_flags(700.0, 1000.0, 100.0) == (False, False)
    assert surplus_flags(700.1, 1000.0, 100.0) == (True, False)
    assert surplus_flags(800.0, 1000.0, 100.0) == (True, False)
    assert surplus_flags(800.1, 1000.0, 100.0) == (True, True)


@pytest.mark.parametrize("zone", ["DE", "ES", "NL", "GB", "US-TEX-ERCO"])
def test_readings_follow_the_surplus_and_curtailment_rules(zone):
    readings = SimulatedGrid(7).series(zone, datetime(2023, 4, 1, tzinfo=UTC), 24 * 120)
    threshold = ZONES[zone].curtailment_threshold_mw
    for r in readings:
        spare = r.renewable_mw - 0.7 * r.demand_mw
        assert r.surplus is (spare > 0)
        assert r.curtailment is (spare > threshold)
        assert r.note is None
    assert any(r.surplus for r in readings)
    assert any(not r.surplus for r in readings)
    assert any(r.curtailment for r in readings)


def test_same_seed_same_readings_other_seed_differs():
    a = SimulatedGrid(11).series("DE", START, 48)
    b = SimulatedGrid(11).series("DE", START, 48)
    c = SimulatedGrid(12).series("DE", START, 48)
    assert a == b
    assert [r.carbon_intensity for r in a] != [r.carbon_intensity for r in c]
    # A fresh instance queried out of order still agrees: no hidden state.
    late = SimulatedGrid(11).reading("DE", START + timedelta(hours=47))
    assert late == a[47]


def test_time_within_an_hour_uses_that_hour():
    grid = SimulatedGrid(5)
    r = grid.reading("FR", datetime(2023, 5, 1, 13, 42, 10, tzinfo=UTC))
    assert r.ts == datetime(2023, 5, 1, 13, tzinfo=UTC)
    assert r == grid.reading("FR", datetime(2023, 5, 1, 13, tzinfo=UTC))


def test_zones_differ_and_carbon_ordering_is_plausible():
    grid = SimulatedGrid(7)
    mean_ci = {
        zone: np.mean([r.carbon_intensity for r in grid.series(zone, START, 24 * 60)])
        for zone in ZONE_CODES
    }
    assert len({round(v, 3) for v in mean_ci.values()}) == len(ZONE_CODES)
    assert mean_ci["FR"] < 100
    assert mean_ci["FR"] == min(mean_ci.values())
    assert mean_ci["DE"] > 2 * mean_ci["ES"]
    assert mean_ci["DE"] > mean_ci["GB"]


def test_values_are_in_range_and_price_follows_residual_demand():
    readings = SimulatedGrid(7).series("DE", START, 24 * 90)
    for r in readings:
        assert r.source == "sim"
        assert 0 <= r.carbon_intensity <= 2000
        assert 0 <= r.renewable_pct <= 100
        assert r.demand_mw > 0 and r.renewable_mw >= 0
    residual = np.array([1 - r.renewable_mw / r.demand_mw for r in readings])
    price = np.array([r.price_eur_per_mwh for r in readings])
    assert np.corrcoef(residual, price)[0, 1] > 0.9
    ci = np.array([r.carbon_intensity for r in readings])
    ren = np.array([r.renewable_pct for r in readings])
    assert np.corrcoef(ren, ci)[0, 1] < -0.9


def test_naive_time_and_bad_hours_are_refused():
    grid = SimulatedGrid(7)
    with pytest.raises(InvalidInputError, match="no time zone"):
        grid.reading("FR", datetime(2023, 1, 1))
    with pytest.raises(InvalidInputError, match="hours"):
        grid.series("FR", START, 0)


def _largest_jumps(readings, field):
    """Return the largest hour-to-hour change into 00:00 UTC and into any other hour."""
    at_midnight = at_other_hours = 0.0
    for before, after in zip(readings, readings[1:], strict=False):
        jump = abs(getattr(after, field) - getattr(before, field))
        if after.ts.hour == 0:
            at_midnight = max(at_midnight, jump)
        else:
            at_other_hours = max(at_other_hours, jump)
    return at_midnight, at_other_hours


@pytest.mark.parametrize("zone", ZONE_CODES)
def test_series_do_not_step_at_midnight_utc(zone):
    readings = SimulatedGrid(7).series(zone, START, 8760)
    for field in ("carbon_intensity", "renewable_pct"):
        at_midnight, at_other_hours = _largest_jumps(readings, field)
        assert at_midnight <= at_other_hours, (zone, field, at_midnight, at_other_hours)


@pytest.mark.parametrize("zone", ["DE", "GB", "US-TEX-ERCO"])
def test_day_to_day_weather_is_continuous_but_still_varies(zone):
    grid = SimulatedGrid(7)
    late = datetime(2023, 3, 10, 23, tzinfo=UTC)
    before, after = grid.components(zone, late), grid.components(zone, late + timedelta(hours=1))
    assert abs(after.firm_renewable_mw - before.firm_renewable_mw) < 0.01 * before.demand_mw
    # Different days still get different weather.
    days = [grid.components(zone, START + timedelta(days=d, hours=3)) for d in range(30)]
    assert len({round(c.firm_renewable_mw, 1) for c in days}) > 20
    assert max(c.wind_mw for c in days) > 1.5 * min(c.wind_mw for c in days)
