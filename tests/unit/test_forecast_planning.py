"""The planner's forecasts: an injected provider, stored overrides over the hours they cover, and
the fallback when the primary provider fails. Runs on SQLite and PostgreSQL where it routes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from store.incident_models import GridOverride
from tests.unit.test_joint_replan import FlatGrid, seed
from tools.broker.routing import route_workload, submit_workload
from tools.broker.windows import forecast_grid
from tools.broker.workloads import JobSpec
from tools.errors import NoGridDataError
from tools.grid.fallback import FallbackForecaster
from tools.grid.outlook import GridForecast, HistoryForecaster
from tools.incidents.detection import (
    SURPLUS_CARBON_FACTOR,
    OverriddenGrid,
    add_spike,
    add_surplus,
    grid_with_overrides,
)

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _forecast(zone: str, issued: datetime, values: list[float], source: str) -> GridForecast:
    first = issued.replace(minute=0, second=0, microsecond=0) + HOUR
    return GridForecast(
        zone=zone,
        issued_at=issued,
        source=source,
        times=tuple(first + i * HOUR for i in range(len(values))),
        carbon_intensity=tuple(values),
        price_eur_per_mwh=tuple(80.0 for _ in values),
        note="stub",
    )


class Scripted:
    """A provider answering a fixed value per zone, or failing for zones in `fail`."""

    def __init__(self, values: dict[str, float], fail: set[str] = frozenset()) -> None:
        self.values = values
        self.fail = set(fail)
        self.calls: list[tuple[str, datetime]] = []

    @property
    def name(self) -> str:
        return "scripted"

    def forecast(self, zone: str, issued_at: datetime, hours: int = 48) -> GridForecast:
        self.calls.append((zone, issued_at))
        if zone in self.fail:
            raise NoGridDataError(f"scripted outage for {zone}")
        return _forecast(zone, issued_at, [self.values[zone]] * hours, self.name)


def _override(zone, start, end, carbon, price=1.0, surplus=False, reason="drill"):
    return GridOverride(
        zone=zone,
        carbon_factor=carbon,
        price_factor=price,
        surplus=surplus,
        starts_at=start,
        ends_at=end,
        reason=reason,
        created_at=NOW,
    )


def test_forecast_grid_takes_hours_after_the_first_from_the_injected_provider():
    provider = Scripted({"FR": 7.0, "DE": 9.0})
    fc = forecast_grid(
        grid=FlatGrid(), zones=["FR", "DE"], now=NOW + timedelta(minutes=20), forecasts=provider
    )
    assert fc.ci.shape == (2, 48) and fc.issued_at == NOW
    assert fc.ci[:, 0].tolist() == [50.0, 400.0]  # hour 0: the grid's reading now
    assert np.all(fc.ci[0, 1:] == 7.0) and np.all(fc.ci[1, 1:] == 9.0)
    assert fc.sources == ("scripted", "scripted") and fc.source == "scripted"
    assert provider.calls == [("FR", NOW), ("DE", NOW)]  # issued at the hour, as the plan


def test_a_zone_without_a_forecast_is_unknown_after_its_reading():
    fc = forecast_grid(
        grid=FlatGrid(), zones=["FR", "DE"], now=NOW, forecasts=Scripted({"FR": 7.0}, {"DE"})
    )
    assert fc.ci[1, 0] == 400.0 and np.all(fc.ci[1, 1:] == 2000.0)
    assert fc.sources == ("scripted", "none")


def test_the_default_is_the_history_model_over_the_grid_without_its_overrides():
    grid = FlatGrid()
    spiked = OverriddenGrid(grid, [_override("FR", NOW - 48 * HOUR, NOW + 3 * HOUR, 10.0)])
    default = forecast_grid(grid=spiked, zones=["FR"], now=NOW)
    explicit = forecast_grid(
        grid=spiked, zones=["FR"], now=NOW, forecasts=HistoryForecaster(grid, history_days=100)
    )
    assert np.array_equal(default.ci, explicit.ci) and default.source == "history:persistence"
    # The past spike is not history the model persists; the known spike hours are multiplied.
    assert default.ci[0, 0] == 500.0
    assert default.ci[0, 1:3] == pytest.approx(500.0, rel=1e-2)
    assert default.ci[0, 3:] == pytest.approx(50.0, rel=1e-2)


def test_overrides_multiply_the_forecast_hours_they_cover_and_no_others():
    grid = OverriddenGrid(
        FlatGrid(),
        [
            _override("FR", NOW, NOW + 5 * HOUR + timedelta(minutes=30), 2.0, price=3.0),
            _override("FR", NOW + 3 * HOUR, NOW + 4 * HOUR, 1.5, reason="second"),
            _override("DE", NOW, NOW + 48 * HOUR, 4.0),
        ],
    )
    f = grid.adjust_forecast(_forecast("FR", NOW, [100.0] * 8, "stub"))
    # hours 13..17 covered by the first (the 17:00 hour starts before its end at 17:30), 15:00
    # also by the second; factors multiply.
    assert f.carbon_intensity == (200.0, 200.0, 300.0, 200.0, 200.0, 100.0, 100.0, 100.0)
    assert f.price_eur_per_mwh[:5] == (240.0,) * 5 and f.price_eur_per_mwh[5:] == (80.0,) * 3
    assert f.note is not None and f.note.startswith("stub; overrides applied (drill; second)")
    capped = grid.adjust_forecast(_forecast("DE", NOW, [900.0], "stub"))
    assert capped.carbon_intensity == (2000.0,)
    untouched = _forecast("ES", NOW, [100.0] * 3, "stub")
    assert grid.adjust_forecast(untouched) is untouched


def _job(session, hours: float = 2, within: float = 24) -> str:
    view = submit_workload(
        session=session,
        org_id="acme",
        name="job",
        spec=JobSpec(gpu_count=4, duration_hours=hours, deadline=NOW + within * HOUR),
        now=NOW,
    )
    return view.id


def test_work_with_slack_is_not_planned_into_a_spiked_zone_during_the_spike(session):
    seed(session)
    calm = route_workload(session=session, grid=FlatGrid(), workload_id=_job(session), now=NOW)
    assert (calm.outcome, calm.node_id) == ("routed", "fr-1")  # FR is clean: starts now
    add_spike(
        session=session,
        zone="FR",
        carbon_factor=20.0,
        price_factor=1.0,
        hours=6,
        reason="drill",
        now=NOW,
    )
    grid = grid_with_overrides(session=session, grid=FlatGrid(), now=NOW)
    d = route_workload(session=session, grid=grid, workload_id=_job(session), now=NOW)
    # FR reads 1000 for six hours (DE 400): the job waits for FR's spike to end.
    assert (d.outcome, d.node_id) == ("scheduled", "fr-1")
    assert d.start_at >= NOW + 6 * HOUR
    assert d.co2_kg == pytest.approx(4 * 0.7 * 2 * 50 / 1000, rel=1e-2)
    assert d.forecast_source == "history:persistence"


def test_a_known_surplus_pulls_deferred_work(session):
    seed(session)
    dirty = FlatGrid()
    dirty.reading = _dearer_fr(dirty.reading)  # type: ignore[method-assign]
    before = route_workload(session=session, grid=dirty, workload_id=_job(session), now=NOW)
    assert (before.outcome, before.node_id) == ("routed", "de-1")  # DE 400 < FR 600 now
    add_surplus(session=session, zone="FR", hours=8, now=NOW + 3 * HOUR)
    grid = grid_with_overrides(session=session, grid=dirty, now=NOW)
    d = route_workload(session=session, grid=grid, workload_id=_job(session), now=NOW)
    # FR x0.4 = 240 from 15:00 to 23:00: cleaner than DE, so the job waits for it.
    assert (d.outcome, d.node_id) == ("scheduled", "fr-1")
    assert NOW + 3 * HOUR <= d.start_at <= NOW + 9 * HOUR
    assert d.co2_kg == pytest.approx(4 * 0.7 * 2 * 600 * SURPLUS_CARBON_FACTOR / 1000, rel=1e-2)


def _dearer_fr(reading):
    def read(zone, at):
        r = reading(zone, at)
        return r.model_copy(update={"carbon_intensity": 600.0}) if zone == "FR" else r

    return read


def test_fallback_answers_where_the_primary_fails_labelled_and_logged_once(caplog):
    primary = Scripted({"FR": 7.0}, {"DE"})
    backup = Scripted({"FR": 70.0, "DE": 90.0})
    provider = FallbackForecaster(primary, backup)
    assert provider.forecast("FR", NOW, 3).carbon_intensity == (7.0,) * 3
    with caplog.at_level(logging.WARNING, logger="tools.grid.fallback"):
        first = provider.forecast("DE", NOW, 3)
        again = provider.forecast("DE", NOW + timedelta(minutes=30), 3)
        next_hour = provider.forecast("DE", NOW + HOUR, 3)
    assert first.carbon_intensity == again.carbon_intensity == (90.0,) * 3
    assert first.source == "scripted (scripted unavailable)"
    assert first.note == "scripted unavailable: scripted outage for DE; stub"
    assert next_hour.source == first.source
    # The primary is asked once per zone and issue hour; the outage is logged once.
    assert [c for c in primary.calls if c[0] == "DE"] == [("DE", NOW), ("DE", NOW + HOUR)]
    assert len([r for r in caplog.records if "DE" in r.getMessage()]) == 1
    primary.fail.clear()
    primary.values["DE"] = 9.0
    assert provider.forecast("DE", NOW + HOUR, 3).carbon_intensity == (90.0,) * 3  # same hour
    assert provider.forecast("DE", NOW + HOUR, 2).carbon_intensity == (9.0,) * 2  # fewer hours
    assert provider.forecast("DE", NOW + 2 * HOUR, 3).carbon_intensity == (9.0,) * 3


def test_fallback_also_covers_an_invalid_forecast():
    class Broken(Scripted):
        @property
        def name(self) -> str:
            return "broken"

        def forecast(self, zone: str, issued_at: datetime, hours: int = 48) -> GridForecast:
            return _forecast(zone, issued_at, [-1.0] * hours, "broken")

    provider = FallbackForecaster(Broken({}), Scripted({"FR": 70.0}))
    f = provider.forecast("FR", NOW, 2)
    assert f.carbon_intensity == (70.0, 70.0) and f.source == "scripted (broken unavailable)"
    assert f.note is not None and "carbon intensity -1.0 must be a number >= 0" in f.note


def test_a_primary_answer_serves_its_issue_hour_for_as_many_hours_or_fewer():
    primary = Scripted({"FR": 7.0})
    provider = FallbackForecaster(primary, Scripted({"FR": 70.0}))
    first = provider.forecast("FR", NOW, 47)
    later = provider.forecast("FR", NOW + timedelta(minutes=40), 5)
    assert later.carbon_intensity == (7.0,) * 5 and later.times == first.times[:5]
    assert primary.calls == [("FR", NOW)]  # one request for the hour
    provider.forecast("FR", NOW, 48)  # more hours than it has: asked again
    provider.forecast("FR", NOW + HOUR, 5)  # a new issue hour: asked again
    assert primary.calls == [("FR", NOW), ("FR", NOW), ("FR", NOW + HOUR)]


def test_warming_asks_the_forecasts_of_every_zone_before_planning():
    from tools.broker.windows import HORIZON_HOURS, warm_forecasts
    from tools.grid import ZONE_CODES

    primary = Scripted(dict.fromkeys(ZONE_CODES, 7.0), {"PT"})
    provider = FallbackForecaster(primary, Scripted(dict.fromkeys(ZONE_CODES, 70.0)))
    warm_forecasts(provider, now=NOW)
    assert sorted(z for z, _ in primary.calls) == sorted(ZONE_CODES)
    # The plans then read them without asking again (the outage included).
    for zone in ZONE_CODES:
        provider.forecast(zone, NOW, HORIZON_HOURS - 1)
    assert len(primary.calls) == len(ZONE_CODES)


def test_warming_for_long_work_asks_the_usual_hours_first():
    """A longer horizon is asked after the usual one: plans of either length then ask nobody."""
    from tools.broker.windows import HORIZON_HOURS, warm_forecasts

    class Short(Scripted):
        def forecast(self, zone, issued_at, hours=48):
            if hours > HORIZON_HOURS - 1:
                self.calls.append((zone, issued_at))
                raise NoGridDataError(f"only {HORIZON_HOURS - 1} hours for {zone}")
            return super().forecast(zone, issued_at, hours)

    primary = Short({"FR": 7.0})
    provider = FallbackForecaster(primary, Scripted({"FR": 70.0}))
    warm_forecasts(provider, now=NOW, zones=["FR"], horizon=60)
    assert len(primary.calls) == 2
    assert provider.forecast("FR", NOW, HORIZON_HOURS - 1).carbon_intensity[0] == 7.0
    assert provider.forecast("FR", NOW, 59).carbon_intensity[0] == 70.0
    assert len(primary.calls) == 2


def test_the_settings_name_the_history_model_every_plan_of_the_process_uses(tmp_path):
    from pydantic import ValidationError

    from graphs.settings import Settings
    from ui.services import Services

    def services(**kw):
        cfg = Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}", data_dir=tmp_path, **kw)
        return Services.from_settings(cfg)

    assert services().forecasts().name == "history:persistence"
    chosen = services(forecast_model="dayahead")
    assert chosen.forecasts().name == "history:dayahead"
    assert chosen.forecasts() is chosen.forecasts()
    with pytest.raises(ValidationError, match="forecast_model"):
        Settings(forecast_model="crystal-ball")
