from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from graphs.settings import Settings
from ui.api import create_app
from ui.services import Services

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
KEY = "test-key"


@pytest.fixture
def client(tmp_path):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'api.db'}", data_dir=tmp_path, api_key=KEY
    )
    with TestClient(create_app(Services.from_settings(settings, at=NOW))) as c:
        yield c


AUTH = {"X-API-Key": KEY}
JOB = {"org_id": "acme-ai", "name": "fine-tune", "gpu_count": 4, "duration_hours": 6}


def test_health_reports_demo_modes(client):
    body = client.get("/api/v1/health").json()
    assert body["status"] == "ok" and body["database"] == "sqlite"
    assert body["demo_mode"]["stripe"] is True


def test_first_start_seeds_the_fleet(client):
    nodes = client.get("/api/v1/nodes").json()
    assert len(nodes) == 14
    assert {n["zone"] for n in nodes} >= {"FR", "IT", "US-TEX-ERCO"}


def test_writes_need_the_api_key(client):
    assert client.post("/api/v1/workloads", json=JOB).status_code == 401
    assert (
        client.post("/api/v1/workloads", json=JOB, headers={"X-API-Key": "nope"}).status_code == 401
    )


def test_submit_route_and_list(client):
    created = client.post("/api/v1/workloads", json=JOB, headers=AUTH)
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    assert created.json()["status"] == "pending"
    decision = client.put(f"/api/v1/workloads/{wid}/route", headers=AUTH)
    assert decision.status_code == 200, decision.text
    d = decision.json()
    assert d["outcome"] == "routed"
    assert d["node_id"] == min(d["candidates"], key=lambda c: c["score"])["node_id"]
    twice = client.put(f"/api/v1/workloads/{wid}/route", headers=AUTH)
    assert twice.status_code == 409 and "'routed'" in twice.json()["detail"]
    again = client.put(f"/api/v1/workloads/{wid}/reroute", headers=AUTH).json()
    assert again["kind"] == "reroute"
    listed = client.get("/api/v1/workloads", params={"status": "routed"}).json()
    assert [w["id"] for w in listed] == [wid]
    assert client.get(f"/api/v1/workloads/{wid}").json()["node_id"] == d["node_id"]


def test_a_workload_submitted_as_not_movable_says_so(client):
    pinned = client.post("/api/v1/workloads", json={**JOB, "movable": False}, headers=AUTH)
    assert pinned.status_code == 201, pinned.text
    assert pinned.json()["movable"] is False
    wid = pinned.json()["id"]
    assert client.get(f"/api/v1/workloads/{wid}").json()["movable"] is False
    free = client.post("/api/v1/workloads", json=JOB, headers=AUTH).json()
    assert free["movable"] is True
    bad = client.post("/api/v1/workloads", json={**JOB, "movable": "maybe"}, headers=AUTH)
    assert bad.status_code == 422 and "movable" in bad.text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({**JOB, "gpu_count": 0}, "gpu_count"),
        ({**JOB, "allowed_zones": ["Atlantis"]}, "unknown zone"),
        ({**JOB, "surprise": 1}, "surprise"),
        ({**JOB, "org_id": "nobody"}, "organization 'nobody' does not exist"),
    ],
)
def test_bad_submissions_get_clear_4xx(client, body, fragment):
    r = client.post("/api/v1/workloads", json=body, headers=AUTH)
    assert 400 <= r.status_code < 500
    assert fragment in r.text


def test_unknown_workload_is_404(client):
    r = client.put("/api/v1/workloads/wl_missing/route", headers=AUTH)
    assert r.status_code == 404 and "wl_missing" in r.json()["detail"]


def test_zone_analytics_cover_all_zones(client):
    zones = client.get("/api/v1/analytics/zones").json()
    assert len(zones) == 11
    fr = next(z for z in zones if z["zone"] == "FR")
    assert fr["reading"]["carbon_intensity"] > 0 and fr["nodes"] == 1


def test_openapi_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/health",
        "/api/v1/workloads",
        "/api/v1/workloads/{workload_id}/route",
        "/api/v1/workloads/{workload_id}/reroute",
        "/api/v1/analytics/zones",
    } <= set(paths)


def test_free_text_submit_reads_the_description_with_the_chat_model(client):
    body = {
        "org_id": "acme-ai",
        "name": "text job",
        "text": "4xH100 fine-tune for 6 hours, EU only",
    }
    assert client.post("/api/v1/workloads/describe", json=body).status_code == 401
    created = client.post("/api/v1/workloads/describe", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    w = created.json()
    assert (w["status"], w["gpu_count"], w["duration_hours"]) == ("pending", 4, 6.0)
    assert w["gpu_model"] == "H100"
    assert "US-CAL-CISO" not in (w["allowed_zones"] or []) and "FR" in w["allowed_zones"]


def test_free_text_submit_reads_work_that_cannot_checkpoint(client):
    body = {"org_id": "acme-ai", "name": "pinned", "text": "2 GPUs for 3 hours, cannot checkpoint"}
    created = client.post("/api/v1/workloads/describe", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["movable"] is False


def test_free_text_submit_names_what_the_description_lacks(client):
    body = {"org_id": "acme-ai", "name": "vague", "text": "please run my training job"}
    r = client.post("/api/v1/workloads/describe", json=body, headers=AUTH)
    assert r.status_code == 422
    assert "does not say" in r.json()["detail"] and "gpu_count" in r.json()["detail"]


@pytest.mark.parametrize(
    ("deadline", "message"),
    [
        ("9999-12-31T23:59:59-14:00", "out of range: give a time from 1970-01-01 up to 3000-01-01"),
        ("9999-12-31T23:59:59Z", "out of range: give a time from 1970-01-01 up to 3000-01-01"),
        ("2023-06-01T11:00:00Z", "has already passed"),
        ("2023-06-01T15:00:00Z", "is too soon for a 6 h job started now"),
    ],
)
def test_a_deadline_the_job_cannot_meet_is_422_naming_it_and_writes_nothing(
    client, deadline, message
):
    r = client.post("/api/v1/workloads", json={**JOB, "deadline": deadline}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert "deadline" in r.text and message in r.text
    assert client.get("/api/v1/workloads").json() == []


WHEN_KEYS = {"start_at", "node", "co2_kg", "co2_kg_if_started_now", "saving_pct", "why"}


def test_route_says_where_and_when_and_operators_start_or_cancel(client):
    flexible = {**JOB, "deadline": "2023-06-02T12:00:00Z"}
    ids = [client.post("/api/v1/workloads", json=flexible, headers=AUTH).json()["id"] for _ in "ab"]
    routed = [client.put(f"/api/v1/workloads/{w}/route", headers=AUTH).json() for w in ids]
    for d in routed:
        assert WHEN_KEYS <= set(d) and d["outcome"] == "scheduled" and d["node"] == d["node_id"]
        start = datetime.fromisoformat(d["start_at"])
        assert NOW < start <= datetime(2023, 6, 2, 6, tzinfo=UTC)
        assert d["co2_kg"] < d["co2_kg_if_started_now"] and d["saving_pct"] > 0 and d["why"]
    got = client.get(f"/api/v1/workloads/{ids[0]}").json()
    assert got["status"] == "scheduled" and got["planned_start_at"] is not None
    started = client.put(f"/api/v1/workloads/{ids[0]}/start", headers=AUTH)
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running"
    cancelled = client.put(f"/api/v1/workloads/{ids[1]}/cancel", headers=AUTH).json()
    assert cancelled["status"] == "cancelled" and cancelled["planned_start_at"] is None
    again = client.put(f"/api/v1/workloads/{ids[1]}/start", headers=AUTH)
    assert again.status_code == 409 and "'cancelled'" in again.json()["detail"]
    assert client.put(f"/api/v1/workloads/{ids[0]}/cancel").status_code == 401


def test_route_without_slack_starts_now(client):
    wid = client.post("/api/v1/workloads", json=JOB, headers=AUTH).json()["id"]
    d = client.put(f"/api/v1/workloads/{wid}/route", headers=AUTH).json()
    assert d["outcome"] == "routed" and datetime.fromisoformat(d["start_at"]) == NOW
    assert d["saving_pct"] == 0 and d["co2_kg"] == d["co2_kg_if_started_now"]


def test_operators_take_a_node_offline_and_back(client):
    url = "/api/v1/nodes/fr-par-h100/status"
    assert client.put(url, json={"status": "offline"}).status_code == 401
    down = client.put(url, json={"status": "offline"}, headers=AUTH)
    assert down.status_code == 200 and down.json()["status"] == "offline"
    listed = {n["id"]: n["status"] for n in client.get("/api/v1/nodes").json()}
    assert listed["fr-par-h100"] == "offline"
    fr_only = {**JOB, "gpu_model": "H100", "allowed_zones": ["FR"]}

    def route_fr_only():
        wid = client.post("/api/v1/workloads", json=fr_only, headers=AUTH).json()["id"]
        return client.put(f"/api/v1/workloads/{wid}/route", headers=AUTH).json()

    refused = route_fr_only()  # the only FR H100 node takes no work while offline
    assert refused["outcome"] == "no_eligible_node"
    assert any(r["reason"] == "node is offline" for r in refused["rejected"])
    up = client.put(url, json={"status": "online"}, headers=AUTH)
    assert up.json()["status"] == "online"
    assert route_fr_only()["node_id"] == "fr-par-h100"


@pytest.mark.parametrize(
    ("node", "body", "code", "named"),
    [
        ("fr-par-h100", {"status": "broken"}, 422, "status"),
        ("fr-par-h100", {"status": "offline", "why": "x"}, 422, "why"),
        ("fr-par-h100", {}, 422, "status"),
        ("nope", {"status": "offline"}, 404, "nope"),
    ],
)
def test_a_bad_node_status_is_refused_and_named(client, node, body, code, named):
    def statuses():
        return {n["id"]: n["status"] for n in client.get("/api/v1/nodes").json()}

    before = statuses()
    r = client.put(f"/api/v1/nodes/{node}/status", json=body, headers=AUTH)
    assert r.status_code == code and named in r.text
    assert statuses() == before
