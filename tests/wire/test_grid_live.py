"""The live Electricity Maps source against a local fake API on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from graphs.wiring import make_grid_source
from tools.errors import NoGridDataError
from tools.integrations.electricitymaps import LiveGrid

NOW = datetime(2026, 3, 10, 12, 20, tzinfo=UTC)
KEY = "test-key-123"


class FakeElectricityMaps:
    """A tiny Electricity Maps v3: scripted answers per path, every request recorded."""

    def __init__(self) -> None:
        self.requests: list[dict[str, object]] = []
        self.answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hold = threading.Event()
        self.hold.set()
        """Cleared to make the server stall until it is set again."""
        self.on_request = None
        """Called with each request's path before it is answered (e.g. to probe the store)."""

    def answer(self, path, status=200, body=None, headers=None, raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        self.answers[path] = (status, headers or {}, data)

    def handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                fake.hold.wait(5)
                url = urlparse(self.path)
                if fake.on_request is not None:
                    fake.on_request(url.path)
                fake.requests.append(
                    {
                        "path": url.path,
                        "query": parse_qs(url.query),
                        "auth": self.headers.get("auth-token"),
                    }
                )
                status, headers, data = fake.answers.get(
                    url.path, (404, {}, b'{"error": "not found"}')
                )
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        return Handler


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
        thread.join(5)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


def latest(zone="DE", ci=312.5, dt="2026-03-10T12:00:00.000Z", **extra):
    return {
        "zone": zone,
        "carbonIntensity": ci,
        "datetime": dt,
        "updatedAt": "2026-03-10T12:05:11.000Z",
        "emissionFactorType": "lifecycle",
        "isEstimated": False,
        **extra,
    }


def test_latest_reading_maps_to_grid_reading(fake, client):
    api, base = fake
    api.answer("/v3/carbon-intensity/latest", body=latest())
    grid = LiveGrid(KEY, base, client)
    r = grid.reading("DE", NOW)
    assert r.source == "live"
    assert r.zone == "DE"
    assert r.carbon_intensity == 312.5
    assert r.ts == datetime(2026, 3, 10, 12, tzinfo=UTC)
    assert r.price_eur_per_mwh is None and r.renewable_pct is None
    assert r.surplus is None and r.curtailment is None
    assert "renewable share not requested" in r.note
    assert api.requests == [
        {"path": "/v3/carbon-intensity/latest", "query": {"zone": ["DE"]}, "auth": KEY}
    ]


def test_power_breakdown_adds_renewable_share(fake, client):
    api, base = fake
    api.answer(
        "/v3/carbon-intensity/latest",
        body=latest("ES", 80.0, isEstimated=True, estimationMethod="TIME_SLICER_AVERAGE"),
    )
    api.answer(
        "/v3/power-breakdown/latest",
        body={"zone": "ES", "renewablePercentage": 82, "powerConsumptionTotal": 27650},
    )
    r = LiveGrid(KEY, base, client, with_power_breakdown=True).reading("ES", NOW)
    assert r.renewable_pct == 82.0 and r.demand_mw == 27650.0
    assert r.surplus is True and r.curtailment is True  # ES curtails above 78 %
    assert "TIME_SLICER_AVERAGE" in r.note
    assert [q["path"] for q in api.requests] == [
        "/v3/carbon-intensity/latest",
        "/v3/power-breakdown/latest",
    ]


@pytest.mark.parametrize(
    ("status", "headers", "match"),
    [
        (401, {}, r"refused the API key \(HTTP 401\) for zone 'DE'.*TGTG_ELECTRICITYMAPS_API_KEY"),
        (429, {"Retry-After": "30"}, r"rate limit hit \(HTTP 429\) for zone 'DE'; retry after 30"),
        (500, {}, r"HTTP 500 for zone 'DE'"),
    ],
)
def test_http_errors_raise_with_status_and_zone(fake, client, status, headers, match):
    api, base = fake
    api.answer("/v3/carbon-intensity/latest", status, {"message": "nope"}, headers)
    with pytest.raises(NoGridDataError, match=match):
        LiveGrid(KEY, base, client).reading("DE", NOW)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"<html>oops</html>", "expected a JSON object"),
        (b"[1, 2]", "expected a JSON object"),
        (json.dumps(latest(ci="high")).encode(), "carbonIntensity is 'high'"),
        (json.dumps(latest(ci=None)).encode(), "carbonIntensity is None"),
        (json.dumps(latest(ci=True)).encode(), "carbonIntensity is True"),
        (json.dumps(latest(ci=5000)).encode(), r"carbonIntensity 5000 is outside 0..2000"),
        (json.dumps(latest(ci=-3)).encode(), "outside"),
        (json.dumps(latest(zone="FR")).encode(), "asked for zone 'DE', got 'FR'"),
        (json.dumps(latest(dt="yesterday")).encode(), "datetime 'yesterday'"),
        (json.dumps(latest(dt="2026-03-10T12:00:00")).encode(), "datetime"),
    ],
)
def test_malformed_payloads_are_refused(fake, client, raw, match):
    api, base = fake
    api.answer("/v3/carbon-intensity/latest", raw=raw)
    with pytest.raises(NoGridDataError, match=match):
        LiveGrid(KEY, base, client).reading("DE", NOW)


def test_stale_and_historical_requests_are_refused(fake, client):
    api, base = fake
    api.answer("/v3/carbon-intensity/latest", body=latest(dt="2026-03-10T06:00:00Z"))
    grid = LiveGrid(KEY, base, client)
    with pytest.raises(NoGridDataError, match="stale"):
        grid.reading("DE", NOW)
    api.answer("/v3/carbon-intensity/latest", body=latest())
    with pytest.raises(NoGridDataError, match="recorded source"):
        grid.reading("DE", datetime(2026, 3, 9, tzinfo=UTC))
    with pytest.raises(NoGridDataError, match="recorded source"):
        grid.series("DE", NOW, 24)
    assert grid.series("DE", NOW, 1)[0].carbon_intensity == 312.5


def test_unreachable_server_and_timeout(client):
    grid = LiveGrid(KEY, "http://127.0.0.1:9/v3", client)
    with pytest.raises(NoGridDataError, match="cannot reach Electricity Maps"):
        grid.reading("DE", NOW)


def test_slow_server_times_out(fake):
    api, base = fake
    api.answer("/v3/carbon-intensity/latest", body=latest())
    api.hold.clear()
    grid = LiveGrid(KEY, base, timeout=0.2)
    try:
        with pytest.raises(NoGridDataError, match="did not answer within 0.2 s"):
            grid.reading("DE", NOW)
    finally:
        api.hold.set()
        grid.close()


def test_factory_builds_live_source_with_key(fake, client):
    api, base = fake
    api.answer("/v3/carbon-intensity/latest", body=latest("FR", 45.0))
    grid = make_grid_source("live", api_key=KEY, base_url=base, client=client)
    assert grid.reading("FR", NOW).carbon_intensity == 45.0
    assert api.requests[0]["auth"] == KEY
