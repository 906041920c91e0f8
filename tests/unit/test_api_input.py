"""Hostile input to /api/v1 answers 4xx naming the field, on SQLite and PostgreSQL alike."""

import asyncio
import json
from datetime import UTC, datetime

import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import ValidationError

from graphs.settings import Settings
from ui.api import WorkloadIn, create_app
from ui.api_access import ApiRateLimiter
from ui.api_console import NewWorkloadIn
from ui.api_input import MAX_BODY_BYTES, unprocessable, validation_error
from ui.services import Services

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
KEY = "input-test-key"
AUTH = {"X-API-Key": KEY}
JSON_AUTH = {**AUTH, "content-type": "application/json"}
JOB = '{"org_id": "acme-ai", "name": "fine-tune", "gpu_count": 4, "duration_hours": %s}'


@pytest.fixture
def client(engine, tmp_path):
    settings = Settings(data_dir=tmp_path, api_key=KEY, loop_interval_s=0)
    svc = Services.from_settings(settings, at=NOW)
    svc.engine = engine  # the fixture's migrated SQLite file or PostgreSQL schema
    app = create_app(svc)
    app.state.rate_limiter = ApiRateLimiter(per_minute=10**6, burst=10**6)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _workloads(client) -> list[dict]:
    return client.get("/api/v1/workloads").json()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e309", "-1e309"])
def test_non_finite_numbers_are_422_naming_the_field(client, number):
    r = client.post("/api/v1/workloads", content=JOB % number, headers=JSON_AUTH)
    assert r.status_code == 422, r.text
    assert "duration_hours: must be a finite number" in r.json()["message"]
    assert _workloads(client) == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/workloads", '{"gpu_count": NaN}', "gpu_count"),
        ("/api/v1/workloads", '{"max_carbon_intensity": 1e999}', "max_carbon_intensity"),
        ("/api/v1/workloads", '{"allowed_zones": ["FR", NaN]}', "allowed_zones[1]"),
        ("/api/v1/demo/simulate/workload", '{"duration_hours": Infinity}', "duration_hours"),
        ("/api/v1/demo/simulate/grid_cycle", '{"hours": NaN}', "hours"),
        ("/api/v1/demo/simulate/grid_cycle", '{"unknown": {"deep": [-Infinity]}}', "unknown"),
    ],
)
def test_non_finite_numbers_anywhere_in_a_body_are_422(client, path, body, field):
    r = client.post(path, content=body, headers=JSON_AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith(field), r.json()["message"]
    assert "finite" in r.json()["message"]


def test_nul_bytes_in_body_query_and_path_are_422(client):
    assert client.get("/api/v1/health").json()["database"] in {"sqlite", "postgresql"}
    body = '{"org_id": "acme-ai", "name": "a\\u0000b", "gpu_count": 1, "duration_hours": 1}'
    r = client.post("/api/v1/workloads", content=body, headers=JSON_AUTH)
    assert r.status_code == 422 and r.json()["message"].startswith("name: must not contain NUL")
    q = client.get("/api/v1/workloads", params={"org_id": "acme\x00"})
    assert q.status_code == 422
    assert q.json()["message"].startswith("query parameter org_id: must not contain NUL")
    p = client.get("/api/v1/workloads/wl_%00x")
    assert p.status_code == 422
    assert p.json()["message"].startswith("path parameter workload_id: must not contain NUL")
    put = client.put("/api/v1/workloads/%00/route", headers=AUTH)
    assert put.status_code == 422 and "workload_id" in put.json()["message"]
    payouts = client.get("/api/v1/payouts", params={"status": "\x00"})
    assert payouts.status_code == 422 and "status" in payouts.json()["message"]
    key = client.post(
        "/api/v1/demo/simulate/grid_cycle", content='{"a\\u0000": 1}', headers=JSON_AUTH
    )
    assert key.status_code == 422 and "has a key that must not contain NUL" in key.text
    assert _workloads(client) == []


def test_unpaired_surrogates_and_bad_encodings_are_422(client):
    body = '{"org_id": "acme-ai", "name": "\\ud800", "gpu_count": 1, "duration_hours": 1}'
    r = client.post("/api/v1/workloads", content=body, headers=JSON_AUTH)
    assert r.status_code == 422 and r.json()["message"].startswith("name: must be valid Unicode")
    latin = client.post("/api/v1/workloads", content=b'{"name": "\xe9"}', headers=JSON_AUTH)
    assert latin.status_code == 422 and "UTF-8" in latin.json()["message"]
    text = client.post(
        "/api/v1/workloads", content=b"\xff\xfe", headers={**AUTH, "content-type": "text/plain"}
    )
    assert text.status_code == 422 and text.json()["message"].startswith("body:")
    deep = client.post("/api/v1/workloads", content="[" * 100_000, headers=JSON_AUTH)
    assert deep.status_code == 422 and "nested too deeply" in deep.json()["message"]
    huge = client.post(
        "/api/v1/workloads", content='{"gpu_count": 1%s}' % ("0" * 5000), headers=JSON_AUTH
    )
    assert huge.status_code == 422 and "4300 digits" in huge.json()["message"]
    assert _workloads(client) == []


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"gpu_model": "H" * 33}, "gpu_model"),
        ({"name": "n" * 201}, "name"),
        ({"org_id": "o" * 65}, "org_id"),
        ({"allowed_zones": ["Z" * 65]}, "allowed_zones[0]"),
        ({"denied_zones": ["FR"] * 65}, "denied_zones"),
    ],
)
def test_over_long_strings_are_422_naming_the_field(client, patch, field):
    job = {"org_id": "acme-ai", "name": "fine-tune", "gpu_count": 4, "duration_hours": 6}
    r = client.post("/api/v1/workloads", json={**job, **patch}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith(f"{field}: "), r.json()["message"]
    assert _workloads(client) == []


def test_over_long_ids_and_free_text_are_422(client):
    assert client.get("/api/v1/workloads/" + "w" * 65).status_code == 422
    assert client.get("/api/v1/workloads", params={"org_id": "o" * 65}).status_code == 422
    assert client.get("/api/v1/receipts/" + "r" * 65 + "/verify", headers=AUTH).status_code == 422
    text = {"org_id": "acme-ai", "name": "t", "text": "x" * 2001}
    r = client.post("/api/v1/workloads/describe", json=text, headers=AUTH)
    assert r.status_code == 422 and r.json()["message"].startswith("text: ")
    many = {"workload_ids": ["w"] * 101}
    assert client.post("/api/v1/demo/simulate/complete", json=many, headers=AUTH).status_code == 422


def test_bodies_over_the_limit_are_413_by_length_and_by_count(client):
    big = b" " * (MAX_BODY_BYTES + 1)
    r = client.post("/api/v1/workloads", content=big, headers=JSON_AUTH)
    assert r.status_code == 413 and str(MAX_BODY_BYTES) in r.json()["detail"]

    def chunks():
        for _ in range(12):
            yield b" " * 100_000

    streamed = client.post("/api/v1/workloads", content=chunks(), headers=JSON_AUTH)
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    assert streamed.status_code == 413
    fits = client.post("/api/v1/workloads", content=b" " * MAX_BODY_BYTES, headers=JSON_AUTH)
    assert fits.status_code == 422  # at the limit it is read (and is no JSON)
    bogus = client.post(
        "/api/v1/workloads", content=b"{}", headers={**JSON_AUTH, "content-length": "many"}
    )
    assert bogus.status_code == 400


def test_the_input_models_refuse_non_finite_numbers_themselves():
    with pytest.raises(ValidationError, match="finite"):
        WorkloadIn(org_id="a", name="b", gpu_count=1, duration_hours=float("inf"))
    with pytest.raises(ValidationError, match="finite"):
        NewWorkloadIn(duration_hours=float("nan"))
    with pytest.raises(ValidationError, match="at most 32"):
        NewWorkloadIn(gpu_model="x" * 33)
    assert WorkloadIn(org_id="a", name="b", gpu_count=1, duration_hours=1, gpu_model=" h100 ")
    assert WorkloadIn(org_id="a", name="b", gpu_count=1, duration_hours=1).gpu_model is None


def test_the_422_answer_never_echoes_what_json_cannot_carry():
    exc = RequestValidationError(
        [
            {"type": "float_type", "loc": ("body", "a"), "msg": "bad", "input": float("nan")},
            {"type": "string_type", "loc": ("body", "b"), "msg": "bad", "input": b"\xff"},
            {"type": "string_type", "loc": ("body", "c\x00"), "msg": "bad", "input": "\ud800"},
            {"type": "int_type", "loc": ("query", "d"), "msg": "bad", "input": 10**40},
            {"type": "string_type", "loc": ("body", "e"), "msg": "bad", "input": "x" * 500},
        ]
    )
    response = asyncio.run(validation_error(None, exc))
    assert response.status_code == 422
    detail = json.loads(response.body)["detail"]
    assert ["input" in d for d in detail] == [False, False, True, False, True]
    assert detail[2]["loc"] == ["body", "c\\x00"] and detail[2]["input"] == "\\ud800"
    assert len(detail[4]["input"]) == 100
    assert unprocessable([]).status_code == 422
