"""Forecasts in the domain: the typed forecast, causality by construction, the fitted blend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tools.errors import InvalidInputError, NoGridDataError
from tools.grid.blend import MIN_FIT_DAYS, BlendForecaster
from tools.grid.forecast import SeasonalPersistenceForecaster, make_forecaster
from tools.grid.models import GridReading
from tools.grid.outlook import FutureReadError, GridForecast, HistoryForecaster, PastGrid
from tools.grid.recorded import RecordedGrid
from tools.grid.simulated import SimulatedGrid

START = datetime(2023, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def write_zone(folder: Path, zone: str, ci: np.ndarray, price: np.ndarray | None = None) -> None:
    lines = ["datetime_utc,carbon_intensity_gco2_per_kwh,renewable_pct,price_eur_per_mwh"]
    for i, value in enumerate(ci):
        ts = (START + i * HOUR).isoformat().replace("+00:00", "Z")
        p = "" if price is None or np.isnan(price[i]) else f"{price[i]:.2f}"
        lines.append(f"{ts},{value:.2f},,{p}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{zone}.csv").write_text("\n".join(lines) + "\n")


def daily(hours: int, seed: int = 0) -> np.ndarray:
    """A daily cycle with a weekday effect and persistent weather anomalies."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    weekend = np.isin((t // 24 + 6) % 7, (5, 6))  # 2023-01-01 is a Sunday
    noise = np.zeros(hours)
    for i in range(1, hours):
        noise[i] = 0.9 * noise[i - 1] + rng.normal(0, 8)
    return 200 + 60 * np.sin(2 * np.pi * (t % 24) / 24) - 50 * weekend + noise


class SpyGrid:
    """A grid source that records every hour it is asked for."""

    name = "sim"

    def __init__(self) -> None:
        self.inner = SimulatedGrid(5)
        self.asked: list[datetime] = []

    def reading(self, zone: str, at: datetime) -> GridReading:
        self.asked.append(at)
        return self.inner.reading(zone, at)

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        self.asked.extend(start + i * HOUR for i in range(hours))
        return self.inner.series(zone, start, hours)


def test_forecast_object_checks_its_hours_and_values() -> None:
    issued = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    times = tuple(datetime(2024, 5, 1, 11 + i, tzinfo=UTC) for i in range(3))
    f = GridForecast(
        zone="FR",
        issued_at=issued,
        source="x",
        times=times,
        carbon_intensity=(1.0, 2.0, 3.0),
        price_eur_per_mwh=(None, 5.0, -1.0),
    )
    assert f.hours == 3
    with pytest.raises(ValueError, match="hour 0 is 2024-05-01T10:00"):
        GridForecast(
            zone="FR",
            issued_at=issued,
            source="x",
            times=(datetime(2024, 5, 1, 10, tzinfo=UTC),),
            carbon_intensity=(1.0,),
            price_eur_per_mwh=(None,),
        )
    with pytest.raises(ValueError, match="equally many"):
        GridForecast(
            zone="FR",
            issued_at=issued,
            source="x",
            times=times,
            carbon_intensity=(1.0,),
            price_eur_per_mwh=(None, None, None),
        )
    with pytest.raises(ValueError, match="carbon intensity -1.0"):
        GridForecast(
            zone="FR",
            issued_at=issued,
            source="x",
            times=times[:1],
            carbon_intensity=(-1.0,),
            price_eur_per_mwh=(None,),
        )
    with pytest.raises(ValueError, match="no time zone"):
        GridForecast(
            zone="FR",
            issued_at=datetime(2024, 5, 1, 10),
            source="x",
            times=times,
            carbon_intensity=(1.0, 2.0, 3.0),
            price_eur_per_mwh=(None, None, None),
        )


def test_past_grid_refuses_any_hour_after_the_issue_hour() -> None:
    past = PastGrid(SimulatedGrid(1), datetime(2024, 5, 1, 10, 45, tzinfo=UTC))
    ci, price = past.history("DE", 3)
    assert ci.shape == price.shape == (3,)
    with pytest.raises(FutureReadError, match="only hours up to the issue hour"):
        past._read("DE", datetime(2024, 5, 1, 9, tzinfo=UTC), 3)


def test_history_forecast_reads_nothing_after_the_issue_hour() -> None:
    spy = SpyGrid()
    issued = datetime(2024, 5, 1, 10, 45, tzinfo=UTC)
    f = HistoryForecaster(spy, "naive", history_days=3).forecast("DE", issued, 48)
    assert f.issued_at == issued and f.source == "history:naive" and f.hours == 48
    assert f.times[0] == datetime(2024, 5, 1, 11, tzinfo=UTC)
    assert max(spy.asked) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert all(ci >= 0 for ci in f.carbon_intensity)


def test_a_warm_history_forecaster_reads_only_new_hours_and_forecasts_as_a_fresh_one() -> None:
    spy = SpyGrid()
    warm = HistoryForecaster(spy, "naive", history_days=3)
    issued = datetime(2024, 5, 1, 10, 45, tzinfo=UTC)
    # (hours after the first issue, hours read): the same hour reads nothing, a later hour the
    # hours since the last read and that one again, and a jump past the kept hours all again.
    for later, reads in ((0, None), (0, 0), (1, 2), (5, 5), (200, None)):
        at = issued + later * HOUR
        before = len(spy.asked)
        got = warm.forecast("DE", at, 24)
        read = spy.asked[before:]
        fresh = HistoryForecaster(SimulatedGrid(5), "naive", history_days=3).forecast("DE", at, 24)
        assert got.carbon_intensity == fresh.carbon_intensity
        assert got.price_eur_per_mwh == fresh.price_eur_per_mwh
        assert max(read, default=at) <= at
        assert reads is None or len(read) == reads
        assert reads is not None or len(read) > 3 * 24


def test_recorded_future_cannot_change_a_history_forecast(tmp_path: Path) -> None:
    hours = 24 * 120
    ci = daily(hours)
    price = ci / 4
    write_zone(tmp_path / "a", "FR", ci, price)
    changed = ci.copy()
    cut = 24 * 100 + 10  # issue hour index
    changed[cut + 1 :] = 900.0
    write_zone(tmp_path / "b", "FR", changed, price)
    issued = START + cut * HOUR + timedelta(minutes=20)
    fa = HistoryForecaster(RecordedGrid(tmp_path / "a")).forecast("FR", issued, 48)
    fb = HistoryForecaster(RecordedGrid(tmp_path / "b")).forecast("FR", issued, 48)
    assert fa.carbon_intensity == fb.carbon_intensity
    assert fa.price_eur_per_mwh == fb.price_eur_per_mwh
    actual = ci[cut + 1 : cut + 49]
    assert np.abs(np.array(fa.carbon_intensity) - actual).mean() < 25
    assert all(p is not None for p in fa.price_eur_per_mwh)


def test_history_forecast_refuses_perfect_and_an_issue_time_outside_the_data(
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidInputError, match="reads the future"):
        HistoryForecaster(SimulatedGrid(1), "perfect")
    write_zone(tmp_path, "FR", daily(48))
    grid = RecordedGrid(tmp_path)
    with pytest.raises(NoGridDataError, match="no recorded grid data for zone 'FR'"):
        HistoryForecaster(grid).forecast("FR", START + 100 * HOUR, 4)
    f = HistoryForecaster(grid).forecast("FR", START + 30 * HOUR, 4)
    assert f.hours == 4 and f.price_eur_per_mwh == (None,) * 4


def _mae(forecaster, x: np.ndarray, issues: range, horizon: int = 24) -> float:
    errs = []
    for i in issues:
        pred = forecaster.predict(x[None, : i + 1], i, horizon)[0]
        errs.append(np.abs(pred - x[i + 1 : i + 1 + horizon]).mean())
    return float(np.mean(errs))


def test_blend_learns_the_weekday_effect_the_seasonal_model_misses() -> None:
    x = daily(24 * 200, seed=3)
    issues = range(24 * 170, 24 * 198, 5)
    blend = _mae(BlendForecaster(), x, issues)
    seasonal = _mae(SeasonalPersistenceForecaster(), x, issues)
    assert blend < 0.9 * seasonal


def test_blend_falls_back_with_short_history_and_keeps_missing_rows_missing() -> None:
    x = np.vstack([daily(24 * (MIN_FIT_DAYS - 1)), np.full(24 * (MIN_FIT_DAYS - 1), np.nan)])
    now = x.shape[1] - 1
    short = BlendForecaster().predict(x, now, 6)
    assert np.array_equal(short, SeasonalPersistenceForecaster().predict(x, now, 6), equal_nan=True)
    long = np.vstack([daily(24 * 120), np.full(24 * 120, np.nan)])
    pred = BlendForecaster().predict(long, long.shape[1] - 1, 60)
    assert np.isfinite(pred[0]).all() and np.isnan(pred[1]).all()


def test_model_mode_is_the_blend() -> None:
    assert isinstance(make_forecaster("model", np.empty((1, 0))), BlendForecaster)
