"""Every /api/v1 operation under hostile input: each answer is a 4xx, never a 5xx.

For each operation of the OpenAPI document the sweep sends every body field NaN, Infinity,
-Infinity, 1e309, a NUL byte, an unpaired surrogate and an over-long string; every query and
path parameter a NUL byte and an over-long value; every write a non-ASCII key and a body over
the limit. It runs on SQLite and PostgreSQL, then once more through uvicorn on loopback.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from graphs.settings import Settings
from tests.ui.conftest import LiveServer
from ui.api import create_app
from ui.api_access import ApiRateLimiter
from ui.api_input import MAX_BODY_BYTES
from ui.services import Services

NOW = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
KEY = "adversarial-test-key"
NUMBERS = {"nan": "NaN", "infinity": "Infinity", "-infinity": "-Infinity", "1e309": "1e309"}
STRINGS = {"nul": '"a\\u0000b"', "surrogate": '"\\ud800"', "long": '"' + "x" * 5000 + '"'}
PARAMS = {"nul": "a\x00b", "long": "x" * 5000}


def _app(svc: Services) -> FastAPI:
    app = create_app(svc)
    app.state.rate_limiter = ApiRateLimiter(per_minute=10**6, burst=10**6)
    return app


def _services(engine, tmp_path) -> Services:
    settings = Settings(
        data_dir=tmp_path, api_key=KEY, loop_interval_s=0, stripe_webhook_secret="whsec_test"
    )
    svc = Services.from_settings(settings, at=NOW)
    svc.engine = engine  # the fixture's migrated SQLite file or PostgreSQL schema
    return svc


@pytest.fixture
def api(engine, tmp_path) -> Iterator[TestClient]:
    with TestClient(_app(_services(engine, tmp_path)), raise_server_exceptions=False) as client:
        yield client


def _body_fields(spec: dict[str, Any], op: dict[str, Any]) -> list[str]:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    refs = re.findall(r"#/components/schemas/(\w+)", str(schema))
    return [f for ref in refs for f in spec["components"]["schemas"][ref].get("properties", {})]


def _requests(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (kind, httpx request arguments) for every hostile request of the sweep."""
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            params = op.get("parameters", [])
            filled = {p["name"]: "1" for p in params if p["in"] == "path"}
            url = path.format(**filled)
            base = {"method": method.upper(), "url": url, "headers": {"X-API-Key": KEY}}
            json_headers = {"X-API-Key": KEY, "content-type": "application/json"}
            if method in {"post", "put"}:
                fields = _body_fields(spec, op)
                # Operations without a body ignore one, but it must still be clean JSON.
                hostile = {**NUMBERS, **STRINGS} if fields else {**NUMBERS, "nul": STRINGS["nul"]}
                for field in fields or ["anything"]:
                    for kind, raw in hostile.items():
                        content = f'{{"{field}": {raw}}}'
                        yield f"body {kind}", {**base, "headers": json_headers, "content": content}
                oversized = b" " * (MAX_BODY_BYTES + 1)
                yield "body over 1 MiB", {**base, "headers": json_headers, "content": oversized}
            if op.get("security"):
                yield "non-ASCII key", {**base, "headers": {"X-API-Key": "é".encode()}}
            for p in params:
                if p["in"] not in {"query", "path"}:
                    continue
                for kind, value in PARAMS.items():
                    if p["in"] == "query":
                        yield f"query {kind}", {**base, "params": {p["name"]: value}}
                    else:
                        quoted = value.replace("\x00", "%00")
                        at = path.format(**{**filled, p["name"]: quoted})
                        yield f"path {kind}", {**base, "url": at}


def _sweep(send) -> Counter[str]:
    spec = send("GET", "/openapi.json").json()
    counts: Counter[str] = Counter()
    wrong: list[str] = []
    for kind, args in _requests(spec):
        r = send(**args)
        counts[kind] += 1
        if not 400 <= r.status_code < 500:
            wrong.append(f"{kind} {args['method']} {args['url'][:80]} -> {r.status_code}")
    assert not wrong, wrong
    return counts


def test_every_operation_answers_hostile_input_with_4xx(api):
    counts = _sweep(lambda method, url, **kw: api.request(method, url, **kw))
    print(f"\nadversarial requests by kind ({sum(counts.values())}, all 4xx): {dict(counts)}")
    for kind in [f"body {k}" for k in [*NUMBERS, *STRINGS]] + ["body over 1 MiB"]:
        assert counts[kind] >= 10, (kind, counts)
    assert counts["non-ASCII key"] >= 10 and counts["query nul"] >= 5 and counts["path nul"] >= 3
    assert api.get("/api/v1/workloads").json() == []


def test_the_real_server_answers_hostile_input_with_4xx(sqlite_engine, tmp_path):
    app = _app(_services(sqlite_engine, tmp_path))
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as http:
        counts = _sweep(lambda method, url, **kw: http.request(method, url, **kw))
        print(f"\nthrough uvicorn ({sum(counts.values())} requests, all 4xx): {dict(counts)}")

        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b" " * 100_000

        headers = {"X-API-Key": KEY, "content-type": "application/json"}
        streamed = http.post("/api/v1/workloads", content=chunks(), headers=headers)
        assert streamed.request.headers["transfer-encoding"] == "chunked"
        assert streamed.status_code == 413
        big = http.post("/api/v1/workloads", content=b" " * 3_000_000, headers=headers)
        assert big.status_code == 413
        assert http.get("/api/v1/workloads/wl%00").status_code == 422
        assert http.get("/api/v1/workloads").json() == []
