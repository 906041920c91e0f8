"""Every routing surface reads the same effective grid, and the console tells the truth."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from store import repo
from tools.broker.placement import recommend
from tools.broker.workloads import JobSpec
from tools.incidents.detection import add_spike
from ui import console_actions as actions
from ui.api import create_app
from ui.cli import app as cli_app
from ui.demo import NewWorkload

NOW = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
"""The clock of the `console_svc` fixture."""
AUTH = {"X-API-Key": "console-test-key"}
JOB = {"gpu_count": 1, "gpu_model": "H100", "duration_hours": 6.0}


def _best_before_spike(svc) -> tuple[str, float]:
    with svc.sessions() as s:
        rec = recommend(
            session=s, grid=svc.grid(), spec=JobSpec(**JOB), now=NOW, weights=svc.weights
        )
    assert rec.best is not None
    return rec.best.zone, rec.best.score


def _spike(svc, zone: str) -> None:
    with svc.sessions.begin() as s:
        add_spike(
            session=s,
            zone=zone,
            carbon_factor=20,
            price_factor=1,
            hours=3,
            reason="test spike",
            now=NOW,
        )


def test_every_surface_routes_around_a_spike(runtime, console_svc, tmp_path):
    zone, score = _best_before_spike(console_svc)
    _spike(console_svc, zone)
    placed: dict[str, tuple[str | None, float | None]] = {}

    # Console: "Submit and route".
    step = actions.submit(runtime, NewWorkload(name="console job", **JOB), route=True)
    d = step.details["decision"]
    placed["console"] = (d["zone"], d["score"])

    # API: submit, then PUT /route.
    with TestClient(create_app(console_svc)) as client:
        made = client.post(
            "/api/v1/workloads", json={"org_id": "acme-ai", "name": "api job", **JOB}, headers=AUTH
        )
        assert made.status_code == 201, made.text
        routed = client.put(f"/api/v1/workloads/{made.json()['id']}/route", headers=AUTH)
        assert routed.status_code == 200, routed.text
        placed["api"] = (routed.json()["zone"], routed.json()["score"])

    # CLI: tgtg route --json on the same database.
    settings = console_svc.settings
    result = CliRunner().invoke(
        cli_app,
        [
            "--database-url",
            settings.resolved_database_url,
            "--data-dir",
            str(tmp_path),
            "route",
            "--gpus",
            "1",
            "--gpu-model",
            "H100",
            "--hours",
            "6",
            "--at",
            NOW.isoformat(),
            "--json",
        ],
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    out = json.loads(result.stdout)
    placed["cli"] = (out["node"]["zone"], out["score"])

    # Chat: the offline model proposes the booking; the operator approves it.
    list(runtime.chat_turn("Where should I run 1 H100 for 6 hours?", "spiked"))
    list(runtime.chat_turn("route it", "spiked"))
    assert runtime.pending("spiked") is not None
    runtime.decide("spiked", approve=True, by="ops")
    chat = runtime.read(
        lambda s: [
            (w.node.zone if w.node else None, w.score)
            for w in repo.list_workloads(session=s)
            if w.name.endswith("(chat)")
        ]
    )
    assert len(chat) == 1
    placed["chat"] = chat[0]

    assert set(placed) == {"console", "api", "cli", "chat"}
    for surface, (where, how) in placed.items():
        assert where is not None, surface
        assert not (where == zone and how == pytest.approx(score)), (surface, where, how)
        assert where != zone, (surface, placed)


def test_a_job_nobody_can_take_says_why_in_the_console(runtime):
    step = actions.submit(
        runtime, NewWorkload(name="too big", gpu_count=64, gpu_model="H100"), route=True
    )
    text = step.summary
    assert "None" not in text
    assert "could not be placed" in text and "pending" in text
    nodes = runtime.read(lambda s: repo.list_nodes(session=s))
    assert len(step.details["decision"]["rejected"]) == len(nodes)
    for r in step.details["decision"]["rejected"]:
        assert f"- {r['node_id']} ({r['zone']}): {r['reason']}" in text


def test_rerouting_an_unknown_workload_gives_no_cli_hint(runtime):
    from tools.errors import NotFoundError

    with pytest.raises(NotFoundError) as err:
        actions.route_or_reroute(runtime, "wl_nope")
    assert "wl_nope" in str(err.value) and "tgtg" not in str(err.value)


ROOT = Path(__file__).resolve().parents[2]
GUI_MODULES = [
    *sorted((ROOT / "ui" / "tabs").glob("*.py")),
    *(ROOT / "ui" / f for f in ("app.py", "dashboard.py", "demo.py", "api_console.py")),
    *sorted((ROOT / "ui").glob("console_*.py")),
    *sorted((ROOT / "tools").rglob("*.py")),
]


@pytest.mark.parametrize("path", GUI_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_console_and_domain_messages_carry_no_cli_hints(path):
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    hints = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and "`tgtg " in node.value
    ]
    assert hints == [], f"{path}: {hints}"


def test_a_console_job_with_slack_is_scheduled_and_on_the_timeline(runtime):
    from datetime import timedelta

    from ui import console_views as views

    spec = NewWorkload(name="nightly", gpu_count=1, duration_hours=3, finish_within_hours=24)
    step = actions.submit(runtime, spec, route=True)
    d, w = step.details["decision"], step.details["workload"]
    assert d["outcome"] == "scheduled" and w["status"] == "scheduled"
    assert "scheduled on" in step.summary and "kg CO2 by forecast" in step.summary
    assert datetime.fromisoformat(d["start_at"]) > NOW
    bars = views.timeline_bars(actions.list_workloads(runtime), NOW)
    (bar,) = [b for b in bars if "nightly" in b["label"]]
    assert bar["status"] == "scheduled" and bar["start"] == datetime.fromisoformat(d["start_at"])
    assert bar["end"] - bar["start"] == timedelta(hours=3)
    assert views.timeline_figure(actions.list_workloads(runtime), NOW).axes


def test_the_console_and_its_api_submit_work_that_cannot_checkpoint(runtime, console_svc):
    pending = actions.submit(runtime, NewWorkload(name="kept", movable=False), route=False)
    routed = actions.submit(runtime, NewWorkload(name="placed", movable=False), route=True)
    assert routed.details["workload"]["movable"] is False
    with TestClient(create_app(console_svc)) as client:
        made = client.post(
            "/api/v1/demo/simulate/workload", json={"name": "demo", "movable": False}, headers=AUTH
        )
        assert made.status_code == 201, made.text
    with console_svc.sessions() as s:
        rows = {w.name: w.movable for w in repo.list_workloads(session=s)}
    assert pending.details["movable"] is False
    assert rows["kept"] is False and rows["placed"] is False and rows["demo"] is False
