"""Day-ahead prices: when they are public, who may read them, and the forecast built on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from evals.forecast_eval import evaluate_forecasts
from evals.gridwindow import GridWindow
from evals.replay import forecast_history_days, forecast_model
from evals.temporal import Bin
from evals.view import FutureDataError, GridFeed
from tests.unit.test_forecasts import START, daily, write_zone
from tools.grid.dayahead import published_leads, published_until
from tools.grid.dayahead_model import DayAheadForecaster, persistence_paths
from tools.grid.forecast import SeasonalPersistenceForecaster
from tools.grid.outlook import (
    DEFAULT_HISTORY_DAYS,
    FutureReadError,
    HistoryForecaster,
    PastGrid,
    history_days_for,
)
from tools.grid.recorded import RecordedGrid

HOUR = timedelta(hours=1)
UNPUBLISHED = 4321.0
DAYS = 400
"""Recorded days of the synthetic zones: the fit uses a year, as on the recorded grid."""


@pytest.mark.parametrize(
    ("zone", "at", "until"),
    [
        # SDAC: tomorrow (Paris day) is public from 14:00 Paris: 13:00Z in winter, 12:00Z in summer.
        ("FR", "2023-01-10T12:00Z", "2023-01-10T23:00Z"),
        ("FR", "2023-01-10T13:00Z", "2023-01-11T23:00Z"),
        ("DE", "2023-07-10T11:00Z", "2023-07-10T22:00Z"),
        ("DE", "2023-07-10T12:00Z", "2023-07-11T22:00Z"),
        # ERCOT: from 14:30 Central, so the 20:00Z hour (14:00 CST) does not see tomorrow.
        ("US-TEX-ERCO", "2023-01-10T20:00Z", "2023-01-11T06:00Z"),
        ("US-TEX-ERCO", "2023-01-10T21:00Z", "2023-01-12T06:00Z"),
        # NYISO from 12:00 Eastern; CAISO from 14:00 Pacific (daylight time in July).
        ("US-NY-NYIS", "2023-01-10T17:00Z", "2023-01-12T05:00Z"),
        ("US-CAL-CISO", "2023-07-10T20:00Z", "2023-07-11T07:00Z"),
        ("US-CAL-CISO", "2023-07-10T21:00Z", "2023-07-12T07:00Z"),
    ],
)
def test_prices_are_public_from_the_day_before_delivery(zone: str, at: str, until: str) -> None:
    assert published_until(zone, datetime.fromisoformat(at)) == datetime.fromisoformat(until)


@pytest.mark.parametrize("zone", ["FR", "GB", "US-TEX-ERCO", "US-NY-NYIS"])
def test_published_leads_follow_the_rule_across_clock_changes(zone: str) -> None:
    first = datetime(2023, 3, 20, tzinfo=UTC)  # covers the US and EU spring changes
    leads = published_leads(zone, first, 24 * 20)
    for i, lead in enumerate(leads):
        hour = first + i * HOUR
        assert hour + (int(lead) + 1) * HOUR == published_until(zone, hour)
    assert 9 <= leads.min() and leads.max() <= 36


def _feed(zones: tuple[str, ...] = ("FR", "US-TEX-ERCO")) -> GridFeed:
    hours, history = 72, 24
    ci = np.full((len(zones), history + hours), 100.0)
    price = np.tile(np.arange(history + hours, dtype=float), (len(zones), 1))
    window = GridWindow(
        zones=zones,
        start=datetime(2023, 1, 10, tzinfo=UTC),
        history=history,
        horizon=hours,
        ci=ci,
        price=price,
        price_cost=price.copy(),
    )
    return GridFeed(window, "dayahead")


def test_a_view_reads_published_prices_and_refuses_later_ones() -> None:
    view = _feed().advance_to(12)  # 12:00Z: FR has published up to 22:00Z, ERCOT up to 05:00Z+1
    assert view.published(22).tolist() == [24.0 + 22, 24.0 + 22]
    with pytest.raises(FutureDataError, match="hour 23 at hour 12"):
        view.published(23)  # 23:00Z is the next Paris day: not published before 14:00 Paris
    ahead = view.dayahead(2, 40)  # hours 11 .. 52
    assert ahead.shape == (2, 42)
    assert np.isnan(ahead[0, 12:]).all() and not np.isnan(ahead[0, :12]).any()
    assert np.isnan(ahead[1, 19:]).all() and not np.isnan(ahead[1, :19]).any()
    view = _feed().advance_to(13)  # 13:00Z = 14:00 CET: tomorrow's SDAC prices are public
    assert not np.isnan(view.dayahead(1, 33)[0]).any()  # up to 22:00Z tomorrow (hour 46)
    assert np.isnan(view.dayahead(1, 34)[0, -1])


def test_no_unpublished_price_is_in_the_view() -> None:
    feed = _feed()
    # Until hour 35 (11:00Z on the 11th) FR has published up to hour 46, ERCOT up to hour 54.
    feed._window.price[0, 24 + 47 :] = UNPUBLISHED
    feed._window.price[1, 24 + 55 :] = UNPUBLISHED
    for hour in range(36):
        view = feed.advance_to(hour)
        assert not (view._dayahead == UNPUBLISHED).any()
        assert not (view.forecast("price", 40) == UNPUBLISHED).any()
        assert np.isfinite(view.forecast("ci", 40)).all()
    assert (feed.advance_to(37)._dayahead == UNPUBLISHED).any()  # 13:00Z: FR's next day


def test_persistence_paths_are_the_planners_persistence_forecasts() -> None:
    x = np.vstack([daily(24 * 12, seed=1), daily(24 * 12, seed=2)])
    x[1, 50:60] = np.nan
    issues = np.array([167, 200, 24 * 12 - 1])
    paths = persistence_paths(x, issues, 30)
    model = SeasonalPersistenceForecaster()
    for i, col in enumerate(issues):
        expected = model.predict(x[:, col - 167 : col + 1], col, 30)
        np.testing.assert_allclose(paths[:, i], expected)


def test_price_forecast_is_the_published_price_where_known() -> None:
    history = daily(24 * 10, seed=3)[None, :]
    published = np.full((1, 30), np.nan)
    published[0, :12] = np.arange(12.0)
    pred = DayAheadForecaster().predict_price(np.hstack([history, published]), 239, 30)
    assert pred[0, :12].tolist() == list(np.arange(12.0))
    guess = SeasonalPersistenceForecaster().predict(history, 239, 30)
    np.testing.assert_allclose(pred[0, 12:], guess[0, 12:])


def _weather(hours: int, seed: int) -> np.ndarray:
    """A daily cycle plus a slow random regime (wind): what a day-ahead price reveals."""
    rng = np.random.default_rng(seed)
    regime = np.zeros(hours)
    for i in range(1, hours):
        regime[i] = 0.97 * regime[i - 1] + rng.normal(0, 6)
    return 60 + 20 * np.sin(2 * np.pi * (np.arange(hours) % 24) / 24) + regime


def _capture(tmp_path: Path, price_of: dict[str, np.ndarray], ci_of: dict[str, np.ndarray]):
    for zone in price_of:
        write_zone(tmp_path, zone, ci_of[zone], price_of[zone])
    return evaluate_forecasts(
        tmp_path,
        start=START + timedelta(days=DAYS - 25),
        days=20,
        zones=tuple(price_of),
        modes=("dayahead", "persistence"),
        bins=(Bin(4, 24),),
    )["per_zone"]


def test_a_price_that_tracks_carbon_captures_most_of_the_oracle(tmp_path: Path) -> None:
    # CI is a linear function of the price: every published hour is known, the rest (up to 17 h
    # of a 27 h look-ahead before the auction) is persistence plus the last published anomaly.
    fr, ercot = _weather(24 * DAYS, 3), _weather(24 * DAYS, 4)
    zones = _capture(
        tmp_path, {"FR": fr, "US-TEX-ERCO": ercot}, {"FR": 200 + 2 * fr, "US-TEX-ERCO": 300 + ercot}
    )
    for row in zones.values():
        assert row["capture_pct"] >= 85.0
        assert row["capture_pct"] >= row["persistence_capture_pct"] + 8.0
        assert row["mae"] < 0.8 * row["persistence_mae"]


def test_an_unrelated_price_changes_little(tmp_path: Path) -> None:
    # The fitted CI terms may beat persistence on their own; a price that says nothing about
    # CI must neither hurt nor matter: two different unrelated prices give about the same.
    ci = _weather(24 * DAYS, 5) * 2 + 150
    rows = [
        _capture(tmp_path / str(seed), {"FR": _weather(24 * DAYS, seed)}, {"FR": ci})["FR"]
        for seed in (6, 8)
    ]
    assert abs(rows[0]["capture_pct"] - rows[1]["capture_pct"]) <= 3.0
    assert abs(rows[0]["mae"] - rows[1]["mae"]) <= 0.03 * rows[0]["mae"]
    for row in rows:
        assert row["capture_pct"] >= row["persistence_capture_pct"] - 1.0
        assert row["mae"] <= 1.02 * row["persistence_mae"]


def test_the_fitted_ci_terms_keep_yesterdays_shape(tmp_path: Path) -> None:
    # The daily swing changes from day to day and persists (a sunny spell): yesterday's shape
    # says more about tomorrow than the week's mean profile, which persistence plans on.
    rng = np.random.default_rng(9)
    swing = np.zeros(DAYS)
    for d in range(1, DAYS):
        swing[d] = 0.9 * swing[d - 1] + rng.normal(0, 25)
    hod = np.arange(24 * DAYS) % 24
    ci = 300 + np.repeat(swing, 24) * np.sin(2 * np.pi * hod / 24) + rng.normal(0, 3, 24 * DAYS)
    row = _capture(tmp_path, {"FR": _weather(24 * DAYS, 10)}, {"FR": ci})["FR"]
    assert row["capture_pct"] >= row["persistence_capture_pct"] + 10.0
    assert row["mae"] < 0.8 * row["persistence_mae"]


def _recorded(tmp_path: Path) -> RecordedGrid:
    hours = 24 * 120
    price = _weather(hours, 7)
    write_zone(tmp_path, "FR", 200 + 2 * price, price)
    return RecordedGrid(tmp_path)


def test_past_grid_reads_published_prices_and_refuses_the_rest(tmp_path: Path) -> None:
    grid = _recorded(tmp_path)
    issued = START + timedelta(days=75, hours=12)  # 12:00Z in winter: 13:00 CET, before 14:00
    past = PastGrid(grid, issued)
    prices = past.published_prices("FR", 30)
    recorded = grid.history_arrays("FR", issued + HOUR, 30)[1]
    assert np.array_equal(prices[:10], recorded[:10])  # 13:00Z .. 22:00Z: today's Paris day
    assert np.isnan(prices[10:]).all()
    with pytest.raises(FutureReadError, match="only prices published by the issue hour"):
        past.read_published("FR", issued + HOUR, 11)  # 23:00Z is tomorrow's Paris day
    later = PastGrid(grid, issued + HOUR).published_prices("FR", 30)  # 14:00 CET: published
    assert np.array_equal(later, grid.history_arrays("FR", issued + 2 * HOUR, 30)[1])


def test_history_forecaster_plans_on_published_prices(tmp_path: Path) -> None:
    grid = _recorded(tmp_path)
    issued = START + timedelta(days=75, hours=13)  # 14:00 CET
    f = HistoryForecaster(grid, "dayahead", history_days=history_days_for(grid, "dayahead"))
    forecast = f.forecast("FR", issued, 48)
    actual_ci, actual_price = grid.history_arrays("FR", issued + HOUR, 48)
    assert forecast.source == "history:dayahead"
    assert forecast.price_eur_per_mwh[:33] == tuple(float(p) for p in actual_price[:33])
    persistence = HistoryForecaster(grid, "persistence").forecast("FR", issued, 48)
    err = np.abs(np.array(forecast.carbon_intensity[:33]) - actual_ci[:33]).mean()
    base = np.abs(np.array(persistence.carbon_intensity[:33]) - actual_ci[:33]).mean()
    assert err < 0.5 * base


def test_a_dayahead_replay_loads_a_year_of_history_to_fit_on() -> None:
    assert forecast_history_days("dayahead") == DEFAULT_HISTORY_DAYS
    assert "day-ahead prices published" in forecast_model("dayahead", 365 * 24, 7)
