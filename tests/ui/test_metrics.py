"""/metrics: Prometheus text read from the store at scrape time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ui import console_actions as actions
from ui.api import create_app
from ui.demo import NewWorkload
from ui.metrics import PREFIX

ROOT = Path(__file__).resolve().parents[2]


def _scrape(client: TestClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


@pytest.fixture
def client(console_svc):
    with TestClient(create_app(console_svc)) as c:
        yield c


def test_a_routed_workload_shows_in_the_metrics(client):
    before = _scrape(client)
    assert before[f"{PREFIX}_store_up"][()] == 1
    assert before[f"{PREFIX}_workloads"][(("status", "routed"),)] == 0
    routed = (("kind", "route"), ("outcome", "routed"))
    assert before[f"{PREFIX}_routing_decisions_total"][routed] == 0

    rt = client.app.state.console
    step = actions.submit(rt, NewWorkload(name="metered", gpu_count=1), route=True)
    assert step.details["decision"]["outcome"] == "routed"
    pending = actions.submit(rt, NewWorkload(name="waiting", gpu_count=1), route=False)
    assert pending.details["status"] == "pending"

    after = _scrape(client)
    assert after[f"{PREFIX}_workloads"][(("status", "routed"),)] == 1
    assert after[f"{PREFIX}_workloads"][(("status", "pending"),)] == 1
    assert after[f"{PREFIX}_routing_decisions_total"][routed] == 1
    assert after[f"{PREFIX}_incidents_open"][()] == 0
    assert after[f"{PREFIX}_payouts"][(("status", "posted"),)] == 0
    assert after[f"{PREFIX}_co2_avoided_kg"][()] == 0


def test_the_loop_pass_duration_appears_after_a_pass(client):
    assert f"{PREFIX}_loop_pass_duration_seconds" not in _scrape(client)
    client.app.state.console.tick()
    samples = _scrape(client)
    assert samples[f"{PREFIX}_loop_passes_total"][()] == 1
    assert samples[f"{PREFIX}_loop_pass_duration_seconds"][()] > 0


def test_the_grafana_dashboard_uses_the_served_metric_names(client):
    client.app.state.console.tick()
    served = set(_scrape(client))
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "too-green-to-go.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    for expr in exprs:
        names = {w for w in _words(expr) if w.startswith(f"{PREFIX}_")}
        assert names and names <= served, (expr, names - served)


def _words(expr: str) -> list[str]:
    word, out = "", []
    for ch in expr + " ":
        if ch.isalnum() or ch == "_":
            word += ch
        else:
            if word:
                out.append(word)
            word = ""
    return out
