import pytest
from fastapi.testclient import TestClient

from ui.api import create_app
from ui.api_access import ApiRateLimiter

AUTH = {"X-API-Key": "console-test-key"}


@pytest.fixture
def client(console_svc):
    with TestClient(create_app(console_svc)) as c:
        yield c


def test_dashboard_and_carbon_report(client):
    d = client.get("/api/v1/analytics/dashboard").json()
    assert d["nodes_total"] == 14 and d["gpus_total"] > 0
    assert d["greenest_zone"] in {"FR", "ES", "BE"} and d["workloads_by_status"]["routed"] == 0
    report = client.get("/api/v1/analytics/carbon_report").json()
    assert report["workloads"] == 0 and report["by_zone"] == []


def test_series_validates_zones_and_window(client):
    ok = client.get("/api/v1/analytics/series", params={"zone": ["FR", "DE"], "hours_back": 6})
    assert ok.status_code == 200
    rows = ok.json()
    assert len(rows) == 12 and {r["zone"] for r in rows} == {"FR", "DE"}
    bad = client.get("/api/v1/analytics/series", params={"zone": "XX"})
    assert bad.status_code == 422 and "XX" in bad.text
    assert (
        client.get("/api/v1/analytics/series", params={"zone": "FR", "hours_back": 999}).status_code
        == 422
    )


def test_demo_writes_need_the_key_and_validate(client):
    assert client.post("/api/v1/demo/simulate/grid_cycle").status_code == 401
    bad = client.post("/api/v1/demo/simulate/curtailment", json={"zone": "Mars"}, headers=AUTH)
    assert bad.status_code == 422 and "Mars" in bad.text
    extra = client.post("/api/v1/demo/simulate/grid_cycle", json={"hours": 2, "x": 1}, headers=AUTH)
    assert extra.status_code == 422 and "x" in extra.text
    assert client.post("/api/v1/demo/flow/8", headers=AUTH).status_code == 422


def test_the_seven_step_flow_over_the_api(client):
    steps = [client.post(f"/api/v1/demo/flow/{i}", headers=AUTH) for i in range(1, 8)]
    assert [s.status_code for s in steps] == [200] * 7, [s.text for s in steps]
    body = [s.json() for s in steps]
    assert body[1]["details"]["readings"] == 24 * 11
    created = body[2]["details"]["workload"]
    assert created["name"] == "Mistral fine-tune" and created["status"] == "routed"
    assert body[2]["details"]["decision"]["node_id"] == created["node_id"]
    deferred = body[2]["details"]["deferred"]
    assert deferred["workload"]["name"] == "Nightly eval"
    assert deferred["workload"]["status"] == "scheduled" and "scheduled on" in body[2]["summary"]
    assert deferred["decision"]["start_at"] > deferred["decision"]["decided_at"]
    assert body[3]["audio_alert_id"] is not None and "France" in body[3]["summary"]
    surplus = body[3]["details"]
    assert surplus["carbon_after"] < surplus["carbon_before"]
    assert surplus["price_after"] < surplus["price_before"]
    fr = next(z for z in client.get("/api/v1/analytics/zones").json() if z["zone"] == "FR")
    assert fr["reading"]["surplus"] is True and fr["reading"]["curtailment"] is True
    assert fr["reading"]["carbon_intensity"] == pytest.approx(surplus["carbon_after"])
    assert "FR" in client.get("/api/v1/analytics/dashboard").json()["curtailing_zones"]
    incidents = body[4]["details"]["incidents"]
    moves = [r for i in incidents for r in i["reroutes"] if r["workload_id"] == created["id"]]
    assert moves and moves[0]["outcome"] == "rerouted"
    assert moves[0]["from_node_id"] == created["node_id"]
    to = moves[0]["to_node_id"]
    assert f"{created['id']} moved {created['node_id']} → **{to}**" in body[4]["summary"]
    gamer_job = body[5]["details"]["gamer_job"]["workload"]
    assert gamer_job["gpu_model"] == "RTX4090" and gamer_job["status"] == "routed"
    settled = {s["workload_id"]: s for s in body[5]["details"]["settled"]}
    assert set(settled) == {created["id"], gamer_job["id"]}
    assert all(s["settlement"]["receipt"]["workload_id"] == w for w, s in settled.items())
    payout = settled[gamer_job["id"]]["payout"]
    assert payout["org_id"].startswith("gamer-") and payout["status"] == "posted"
    assert "1 gamer payout(s) on Solana: €" in body[5]["summary"]
    lines = body[6]["details"]["lines"]
    assert {line["key"] for line in lines} == set(settled)
    assert all(line["fee_minor"] > 0 for line in lines)
    table = body[6]["summary"].split("\n\n", 1)[1]
    assert table.splitlines()[0].startswith("| workload | gross | fee |")
    assert all(f"| {key} | €" in table for key in settled) and "| **total** |" in table

    audio = client.get(f"/api/v1/alerts/{body[3]['audio_alert_id']}/audio")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content[:4] == b"RIFF"
    kinds = {a["kind"] for a in client.get("/api/v1/alerts").json()}
    assert kinds == {"curtailment", "incident"}
    timeline = client.get("/api/v1/incidents").json()[0]
    assert [t["to_state"] for t in timeline["transitions"]] == [
        "MONITORING",
        "ANOMALY_DETECTED",
        "EVALUATING",
        "ADAPTING",
        "RESOLVED",
    ]
    assert (
        client.get("/api/v1/analytics/profitability", params={"group_by": "org"}).json()[0]["key"]
        == "acme-ai"
    )
    assert client.get("/api/v1/alerts/999999/audio").status_code == 404


def test_reroute_without_placed_work_is_a_clear_404(client):
    r = client.post("/api/v1/demo/simulate/reroute", headers=AUTH)
    assert r.status_code == 404 and "create one first" in r.json()["detail"]


def test_rate_limit_answers_429_with_retry_after(client):
    client.app.state.rate_limiter = ApiRateLimiter(per_minute=60, burst=3)
    codes = [client.get("/api/v1/health").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/api/v1/health")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert client.get("/api/v1/health", headers=AUTH).status_code == 200
