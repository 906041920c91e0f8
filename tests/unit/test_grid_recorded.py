from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from graphs.wiring import make_grid_source
from tools.errors import InvalidInputError, NoGridDataError, UnknownZoneError
from tools.grid import ZONE_CODES, ZONES, RecordedGrid, load_zone_series

FIRST = datetime(2021, 1, 1, tzinfo=UTC)
END = datetime(2024, 3, 14, tzinfo=UTC)

EM_HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method"
)
EM_ROWS = [
    "2022-01-01 00:00:00,Germany,Germany,DE,390.1,430.5,40.2,35.5,entsoe.eu,false,",
    "2022-01-01 01:00:00,Germany,Germany,DE,380.0,420.0,41.0,,entsoe.eu,true,TIME_SLICER_AVERAGE",
    "2022-01-01 02:00:00,Germany,Germany,DE,150.0,170.0,80.0,81.5,entsoe.eu,false,",
]


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_shared_zone_file_loads_contiguous_utc(grid_dir):
    for zone in ZONE_CODES:
        series = load_zone_series(grid_dir, zone)
        assert series.start == FIRST
        assert series.start.tzinfo is UTC
        assert series.end == END
        assert len(series) == 28032
        assert series.carbon_intensity.dtype == np.float64
        assert not np.isnan(series.carbon_intensity).any()
        assert series.ci_basis == "lca"


def test_known_value_and_utc_timestamps(grid_dir):
    grid = RecordedGrid(grid_dir)
    r = grid.reading("FR", datetime(2021, 1, 1, 0, tzinfo=UTC))
    assert r.source == "recorded"
    assert r.ts == FIRST and r.ts.utcoffset() == timedelta(0)
    assert r.carbon_intensity == 60.97
    assert r.price_eur_per_mwh == 48.19
    assert r.renewable_pct is None
    assert r.demand_mw is None and r.renewable_mw is None
    # A time inside the hour and a non-UTC offset both land on the same UTC hour.
    paris = datetime(2021, 1, 1, 1, 59, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert grid.reading("FR", paris).ts == datetime(2021, 1, 1, 1, tzinfo=UTC)
    assert grid.reading("FR", datetime(2021, 1, 1, 0, 30, tzinfo=UTC)) == r


def test_missing_values_stay_missing(grid_dir):
    grid = RecordedGrid(grid_dir)
    pt = grid.zone_series("PT")
    assert np.isnan(pt.renewable_pct).all()
    it = grid.zone_series("IT")
    assert np.isnan(it.price_eur_per_mwh).all()
    assert grid.reading("IT", datetime(2023, 7, 1, 12, tzinfo=UTC)).price_eur_per_mwh is None
    gb = grid.zone_series("GB")
    in_2021 = gb.price_eur_per_mwh[: 365 * 24]
    assert np.isnan(in_2021).all()
    assert not np.isnan(gb.price_eur_per_mwh[-24:]).all()
    reading = grid.reading("GB", datetime(2021, 6, 1, 12, tzinfo=UTC))
    assert reading.price_eur_per_mwh is None
    assert reading.renewable_pct is not None


def test_surplus_from_renewable_share_or_unknown(grid_dir):
    grid = RecordedGrid(grid_dir)
    pt = grid.reading("PT", datetime(2022, 5, 1, 12, tzinfo=UTC))
    assert pt.surplus is None and pt.curtailment is None
    assert "renewable share not recorded" in pt.note
    de = grid.zone_series("DE")
    readings = grid.series("DE", de.start, len(de))
    threshold = ZONES["DE"].curtailment_renewable_pct
    for r in readings[::7]:
        assert r.surplus is (r.renewable_pct > 70)
        assert r.curtailment is (r.renewable_pct > threshold)
    assert any(r.surplus for r in readings) and any(r.curtailment for r in readings)


def test_outside_coverage_names_zone_time_and_span(grid_dir):
    grid = RecordedGrid(grid_dir)
    with pytest.raises(NoGridDataError) as err:
        grid.reading("DE", datetime(2024, 6, 1, 12, tzinfo=UTC))
    message = str(err.value)
    assert "'DE'" in message and "2024-06-01T12:00:00+00:00" in message
    assert "2021-01-01T00:00:00+00:00" in message and "2024-03-14T00:00:00+00:00" in message
    with pytest.raises(NoGridDataError):
        grid.reading("DE", FIRST - timedelta(minutes=1))
    with pytest.raises(NoGridDataError):
        grid.series("DE", END - timedelta(hours=2), 3)
    assert len(grid.series("DE", END - timedelta(hours=2), 2)) == 2


def test_zone_file_is_loaded_once(grid_dir):
    grid = RecordedGrid(grid_dir)
    series = grid.zone_series("ES")
    assert grid.zone_series("ES") is series
    with pytest.raises(ValueError, match="read-only"):
        series.carbon_intensity[0] = 1.0


def test_electricity_maps_export_prefers_lca(tmp_path):
    write(tmp_path / "DE.csv", [EM_HEADER, *EM_ROWS])
    series = load_zone_series(tmp_path, "DE")
    assert series.ci_basis == "lca"
    assert series.start == datetime(2022, 1, 1, tzinfo=UTC)
    assert series.carbon_intensity.tolist() == [430.5, 420.0, 170.0]
    assert np.isnan(series.renewable_pct[1])
    assert np.isnan(series.price_eur_per_mwh).all()
    assert series.estimated.tolist() == [False, True, False]
    grid = RecordedGrid(tmp_path)
    estimated = grid.reading("DE", datetime(2022, 1, 1, 1, tzinfo=UTC))
    assert estimated.renewable_pct is None and estimated.surplus is None
    assert "estimated by Electricity Maps" in estimated.note
    green = grid.reading("DE", datetime(2022, 1, 1, 2, tzinfo=UTC))
    assert green.surplus is True and green.curtailment is True
    assert green.price_eur_per_mwh is None


def test_newer_export_headers_and_direct_only(tmp_path):
    write(
        tmp_path / "FR.csv",
        [
            "Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),"
            "Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),"
            "Renewable energy percentage (RE%),Data source,Data estimated,Data estimation method",
            "2024-01-01T00:00:00Z,France,France,FR,20.1,45.2,95.0,30.5,rte,false,",
        ],
    )
    series = load_zone_series(tmp_path, "FR")
    assert series.carbon_intensity.tolist() == [45.2]
    assert series.renewable_pct.tolist() == [30.5]
    write(
        tmp_path / "BE.csv",
        [
            "Datetime (UTC),Zone Id,Carbon Intensity gCO2eq/kWh (direct)",
            "2022-01-01 00:00:00,BE,120.5",
        ],
    )
    series = load_zone_series(tmp_path, "BE")
    assert series.ci_basis == "direct"
    reading = RecordedGrid(tmp_path).reading("BE", series.start)
    assert reading.carbon_intensity == 120.5
    assert "direct" in reading.note


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (["2021-01-01T00:00:00Z,10,,", "2021-01-01T02:00:00Z,10,,"], r"line 3.*contiguous.*2 h"),
        (["2021-01-01T00:00:00Z,10,,", "2021-01-01T00:00:00Z,10,,"], r"line 3.*contiguous"),
        (["2021-01-01T00:00:00Z,2500,,"], r"line 2: carbon intensity 2500.0 is outside 0..2000"),
        (["2021-01-01T00:00:00Z,-1,,"], r"line 2: carbon intensity"),
        (["2021-01-01T00:00:00Z,10,101,"], r"line 2: renewable %"),
        (["2021-01-01T00:00:00Z,abc,,"], r"line 2: carbon intensity 'abc' is not a number"),
        (["yesterday,10,,"], r"line 2: time 'yesterday'"),
        (["2021-01-01T00:30:00Z,10,,"], r"not on the hour"),
        (["2021-01-01T00:00:00Z,10,"], r"line 2: 3 fields"),
        ([], r"no data rows"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, rows, match):
    header = "datetime_utc,carbon_intensity_gco2_per_kwh,renewable_pct,price_eur_per_mwh"
    write(tmp_path / "NL.csv", [header, *rows])
    with pytest.raises(InvalidInputError, match=match) as err:
        load_zone_series(tmp_path, "NL")
    assert "NL.csv" in str(err.value)


def test_unknown_header_and_wrong_zone_id(tmp_path):
    write(tmp_path / "IT.csv", ["time,value", "2021-01-01T00:00:00Z,1"])
    with pytest.raises(InvalidInputError, match="no recognised"):
        load_zone_series(tmp_path, "IT")
    write(tmp_path / "DE.csv", [EM_HEADER, EM_ROWS[0].replace(",DE,", ",FR,")])
    with pytest.raises(InvalidInputError, match="zone id 'FR'"):
        load_zone_series(tmp_path, "DE")


def test_missing_file_directory_and_zone(tmp_path):
    with pytest.raises(NoGridDataError, match="'ES'"):
        RecordedGrid(tmp_path).reading("ES", FIRST)
    with pytest.raises(UnknownZoneError):
        RecordedGrid(tmp_path).reading("XX", FIRST)
    with pytest.raises(InvalidInputError, match="TGTG_GRID_DIR"):
        RecordedGrid(tmp_path / "nope")


def test_factory_requires_directory_and_key(grid_dir):
    with pytest.raises(InvalidInputError, match="TGTG_GRID_DIR") as err:
        make_grid_source("recorded")
    assert "--grid-dir" in str(err.value)
    with pytest.raises(InvalidInputError, match="TGTG_ELECTRICITYMAPS_API_KEY"):
        make_grid_source("live")
    with pytest.raises(InvalidInputError, match="'solar'"):
        make_grid_source("solar")
    assert make_grid_source("recorded", directory=grid_dir).name == "recorded"
    assert make_grid_source("sim", seed=3).name == "sim"
