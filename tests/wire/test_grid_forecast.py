"""The Electricity Maps forecast client against a local fake API on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer

import httpx
import pytest

from graphs.wiring import make_forecast_provider
from tests.unit.test_joint_replan import FlatGrid, seed
from tests.wire.test_grid_live import FakeElectricityMaps
from tools.broker.routing import route_workload, submit_workload
from tools.broker.workloads import JobSpec
from tools.errors import NoGridDataError
from tools.grid.fallback import FallbackForecaster
from tools.grid.outlook import HistoryForecaster, history_provider
from tools.grid.recorded import RecordedGrid
from tools.grid.simulated import SimulatedGrid
from tools.integrations.electricitymaps_forecast import ElectricityMapsForecaster

NOW = datetime(2026, 3, 10, 12, 20, tzinfo=UTC)
HOUR_AFTER = datetime(2026, 3, 10, 13, tzinfo=UTC)
KEY = "forecast-key-9"
CI_PATH = "/v3/carbon-intensity/forecast"
PRICE_PATH = "/v3/price-day-ahead/forecast"


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def ci_body(hours: int = 48, first: datetime = HOUR_AFTER, updated: datetime = NOW) -> dict:
    return {
        "zone": "DE",
        "forecast": [
            {"datetime": _iso(first + timedelta(hours=i)), "carbonIntensity": 300 + i}
            for i in range(hours)
        ],
        "updatedAt": _iso(updated),
    }


def price_body(hours: int = 48, unit: str = "EUR/MWh") -> dict:
    return {
        "zone": "DE",
        "data": [
            {"datetime": _iso(HOUR_AFTER + timedelta(hours=i)), "value": 80.5 - i, "unit": unit}
            for i in range(hours)
        ],
    }


@pytest.fixture
def fake() -> Iterator[tuple[FakeElectricityMaps, str]]:
    api = FakeElectricityMaps()
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield api, f"http://127.0.0.1:{server.server_address[1]}/v3"
    finally:
        api.hold.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def test_forecast_reads_both_endpoints_with_the_key(fake, client) -> None:
    api, base = fake
    api.answer(CI_PATH, body=ci_body())
    api.answer(PRICE_PATH, body=price_body())
    f = ElectricityMapsForecaster(KEY, base, client).forecast("DE", NOW, 48)
    assert f.zone == "DE" and f.source == "electricitymaps" and f.issued_at == NOW
    assert f.times[0] == HOUR_AFTER and f.times[-1] == HOUR_AFTER + timedelta(hours=47)
    assert f.carbon_intensity[:3] == (300.0, 301.0, 302.0)
    assert f.price_eur_per_mwh[:2] == (80.5, 79.5)
    ci_req, price_req = api.requests
    assert ci_req["path"] == CI_PATH and ci_req["auth"] == KEY
    assert ci_req["query"] == {"zone": ["DE"], "horizonHours": ["48"]}
    assert price_req["auth"] == KEY
    assert price_req["query"] == {
        "zone": ["DE"],
        "start": ["2026-03-10T13:00:00Z"],
        "end": ["2026-03-12T13:00:00Z"],
    }


def test_answer_longer_than_asked_is_cut_and_the_data_key_is_accepted(fake, client) -> None:
    api, base = fake
    body = ci_body(72)
    body["data"] = body.pop("forecast")
    api.answer(CI_PATH, body=body)
    api.answer(PRICE_PATH, body=price_body(72))
    f = ElectricityMapsForecaster(KEY, base, client).forecast("DE", NOW, 6)
    assert f.hours == 6 and f.carbon_intensity[-1] == 305.0


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (401, {}, "refused the API key (HTTP 401)"),
        (403, {}, "refused the API key (HTTP 403)"),
        (429, {"Retry-After": "30"}, "rate limit hit (HTTP 429) for zone 'DE'; retry after 30 s"),
        (500, {}, "HTTP 500"),
    ],
)
def test_http_errors_name_the_zone(fake, client, status, headers, message) -> None:
    api, base = fake
    api.answer(CI_PATH, status=status, body={"error": "no"}, headers=headers)
    with pytest.raises(NoGridDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ElectricityMapsForecaster(KEY, base, client).forecast("DE", NOW, 24)


@pytest.mark.parametrize(
    ("body", "raw", "message"),
    [
        (None, b"<html>oops</html>", "expected a JSON object"),
        ({"zone": "DE", "forecast": []}, None, "non-empty 'forecast' list"),
        ({"zone": "FR", "forecast": [{}]}, None, "asked for zone 'DE', got 'FR'"),
        (
            {"zone": "DE", "forecast": [{"datetime": "tomorrow", "carbonIntensity": 1}]},
            None,
            "datetime 'tomorrow' is not an ISO-8601",
        ),
        (
            {"zone": "DE", "forecast": [{"datetime": "2026-03-10T13:00Z", "carbonIntensity": "x"}]},
            None,
            "carbonIntensity at 2026-03-10T13:00Z is 'x'",
        ),
        (
            {"zone": "DE", "forecast": [{"datetime": "2026-03-10T13:00Z", "carbonIntensity": -5}]},
            None,
            "implausible",
        ),
    ],
)
def test_malformed_answers_are_refused(fake, client, body, raw, message) -> None:
    api, base = fake
    api.answer(CI_PATH, body=body, raw=raw)
    with pytest.raises(NoGridDataError, match=message):
        ElectricityMapsForecaster(KEY, base, client).forecast("DE", NOW, 1)


def test_stale_forecast_is_refused(fake, client) -> None:
    api, base = fake
    api.answer(CI_PATH, body=ci_body(updated=NOW - timedelta(hours=7)))
    with pytest.raises(NoGridDataError, match="stale Electricity Maps forecast for zone 'DE'"):
        ElectricityMapsForecaster(KEY, base, client).forecast("DE", NOW, 24)


def test_forecast_that_does_not_cover_the_hours_is_refused(fake, client) -> None:
    api, base = fake
    api.answer(CI_PATH, body=ci_body(hours=24))
    with pytest.raises(NoGridDataError, match="lacks 24 of the 48 hours"):
        ElectricityMapsForecaster(KEY, base, client).forecast("DE", NOW, 48)
    api.answer(CI_PATH, body=ci_body(first=HOUR_AFTER + timedelta(hours=1)))
    with pytest.raises(NoGridDataError, match="first missing 2026-03-10T13:00:00"):
        ElectricityMapsForecaster(KEY, base, client).forecast("DE", NOW, 4)


def test_price_failure_or_other_currency_leaves_prices_unknown(fake, client) -> None:
    api, base = fake
    api.answer(CI_PATH, body=ci_body())
    api.answer(PRICE_PATH, status=404, body={"error": "zone has no price"})
    f = ElectricityMapsForecaster(KEY, base, client).forecast("DE", NOW, 3)
    assert f.price_eur_per_mwh == (None, None, None)
    assert f.note is not None and "no day-ahead price" in f.note and "HTTP 404" in f.note
    api.answer(PRICE_PATH, body=price_body(unit="USD/MWh"))
    f = ElectricityMapsForecaster(KEY, base, client).forecast("DE", NOW, 3)
    assert f.price_eur_per_mwh == (None, None, None)
    assert f.note is not None and "USD/MWh" in f.note


def test_unreachable_api_is_an_error() -> None:
    with httpx.Client() as c:
        forecaster = ElectricityMapsForecaster(KEY, "http://127.0.0.1:9/v3", c, timeout=2)
        with pytest.raises(NoGridDataError, match="cannot reach Electricity Maps"):
            forecaster.forecast("DE", NOW, 2)


def test_wiring_uses_electricity_maps_with_a_key_and_history_without(fake, client) -> None:
    api, base = fake
    api.answer(CI_PATH, body=ci_body())
    api.answer(PRICE_PATH, body=price_body())
    grid = SimulatedGrid(3)
    provider = make_forecast_provider(grid, api_key=KEY, base_url=base, client=client)
    assert provider.name == "electricitymaps (else history:persistence)"
    assert provider.forecast("DE", NOW, 2).carbon_intensity == (300.0, 301.0)
    fallback = make_forecast_provider(grid, api_key=None)
    assert isinstance(fallback, HistoryForecaster) and fallback.name == "history:persistence"
    assert make_forecast_provider(grid, api_key="").name == "history:persistence"


def test_a_recorded_source_forecasts_from_its_own_records_even_with_a_key(
    fake, client, grid_dir
) -> None:
    """Recorded days replay on a past clock: Electricity Maps' forecast of today is not theirs."""
    api, base = fake
    recorded = RecordedGrid(grid_dir)
    provider = make_forecast_provider(recorded, api_key=KEY, base_url=base, client=client)
    assert isinstance(provider, HistoryForecaster) and provider.name == "history:persistence"
    f = provider.forecast("DE", datetime(2023, 6, 1, 12, tzinfo=UTC), 3)
    assert f.source == "history:persistence" and len(f.carbon_intensity) == 3
    assert api.requests == []


def _route(session, provider) -> object:
    view = submit_workload(
        session=session,
        org_id="acme",
        name="job",
        spec=JobSpec(gpu_count=4, duration_hours=2, deadline=NOW + timedelta(hours=24)),
        now=NOW,
    )
    return route_workload(
        session=session, grid=FlatGrid(), workload_id=view.id, now=NOW, forecasts=provider
    )


def test_a_route_plans_on_electricity_maps_forecasts_when_a_key_is_set(fake, client, session):
    """FR reads a flat 50 g/kWh and DE 400; Electricity Maps forecasts DE at 5 for 13-15:00.

    Its answer is for DE only, so FR (asked, answered for another zone) falls back to the
    history model: the plan mixes both, and says so.
    """
    api, base = fake
    body = ci_body()
    body["forecast"] = [
        dict(p, carbonIntensity=5 if i < 2 else 400) for i, p in enumerate(body["forecast"])
    ]
    api.answer(CI_PATH, body=body)
    api.answer(PRICE_PATH, body=price_body())
    seed(session)
    history = _route(session, make_forecast_provider(FlatGrid(), api_key=None))
    assert (history.outcome, history.node_id) == ("routed", "fr-1")
    provider = make_forecast_provider(FlatGrid(), api_key=KEY, base_url=base, client=client)
    d = _route(session, provider)
    assert (d.outcome, d.node_id, d.start_at) == ("scheduled", "de-1", HOUR_AFTER)
    assert d.co2_kg == pytest.approx(4 * 0.7 * 2 * 5 / 1000)
    assert d.forecast_source is not None
    assert "electricitymaps" in d.forecast_source.split(", ")
    assert "history:persistence (electricitymaps unavailable)" in d.forecast_source
    zones = {r["query"]["zone"][0] for r in api.requests if r["path"] == CI_PATH}
    assert zones == {"DE", "FR"} and all(r["auth"] == KEY for r in api.requests)


@pytest.mark.parametrize(
    ("status", "raw"), [(503, None), (200, b"<html>maintenance</html>")], ids=["http", "payload"]
)
def test_a_route_still_plans_from_history_when_electricity_maps_fails(
    fake, client, session, status, raw, caplog
) -> None:
    api, base = fake
    api.answer(CI_PATH, status=status, body={"error": "down"}, raw=raw)
    seed(session)
    provider = make_forecast_provider(FlatGrid(), api_key=KEY, base_url=base, client=client)
    d = _route(session, provider)
    assert (d.outcome, d.node_id) == ("routed", "fr-1")  # as the history model plans it
    assert d.forecast_source == "history:persistence (electricitymaps unavailable)"
    asked = len(api.requests)
    _route(session, provider)  # the same hour: Electricity Maps is not asked again
    assert len(api.requests) == asked == 2
    warned = [r for r in caplog.records if "electricitymaps forecast unavailable" in r.message]
    assert sorted(r.getMessage().split()[4].rstrip(",") for r in warned) == ["DE", "FR"]


def test_a_route_survives_an_electricity_maps_timeout(fake, session) -> None:
    api, base = fake
    api.answer(CI_PATH, body=ci_body())
    api.hold.clear()  # the server stalls past the client's timeout
    seed(session)
    with httpx.Client() as slow:
        em = ElectricityMapsForecaster(KEY, base, slow, timeout=0.2)
        d = _route(session, FallbackForecaster(em, history_provider(FlatGrid())))
    api.hold.set()
    assert (d.outcome, d.node_id) == ("routed", "fr-1")
    assert d.forecast_source == "history:persistence (electricitymaps unavailable)"


def test_tgtg_route_dry_run_plans_on_electricity_maps_with_a_key(fake, tmp_path) -> None:
    """The CLI builds its planner's forecasts from settings: with a key, Electricity Maps'."""
    from typer.testing import CliRunner

    from ui.cli import app

    api, base = fake
    body = ci_body()
    body["forecast"] = [
        dict(p, carbonIntensity=1 if i < 2 else 1500) for i, p in enumerate(body["forecast"])
    ]
    api.answer(CI_PATH, body=body)
    runner = CliRunner()
    db = ["--database-url", f"sqlite:///{tmp_path / 'cli.db'}", "--data-dir", str(tmp_path)]
    at = NOW.isoformat()
    job = ["route", "--gpus", "4", "--hours", "2", "--deadline", "2026-03-11T12:00Z", "--at", at]
    assert runner.invoke(app, [*db, "seed", "--at", at]).exit_code == 0

    def route(env: dict[str, str]) -> dict:
        result = runner.invoke(app, [*db, *job, "--dry-run", "--json"], env=env)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    history = route({"TGTG_ELECTRICITYMAPS_API_KEY": ""})
    assert "electricitymaps" not in history["forecast_source"]
    em = route({"TGTG_ELECTRICITYMAPS_API_KEY": KEY, "TGTG_ELECTRICITYMAPS_BASE_URL": base})
    # DE at 1 g/kWh for 13:00-15:00 by Electricity Maps: the job waits for it on the DE node.
    assert (em["node"]["zone"], em["start_at"]) == ("DE", HOUR_AFTER.isoformat())
    assert em["co2_kg"] == pytest.approx(4 * 0.7 * 2 * 1 / 1000)
    assert "electricitymaps" in em["forecast_source"].split(", ")
    assert "history:persistence (electricitymaps unavailable)" in em["forecast_source"]
    assert (em["node"], em["start_at"]) != (history["node"], history["start_at"])
    assert {r["auth"] for r in api.requests} == {KEY}
