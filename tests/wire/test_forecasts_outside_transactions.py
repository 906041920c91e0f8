"""Every route asks Electricity Maps for its forecasts before it opens a database transaction.

The fake Electricity Maps on 127.0.0.1 probes the SQLite store at every request: it tries to
take the write lock itself (`BEGIN IMMEDIATE`, no waiting). Our engine begins every transaction
IMMEDIATE, so the lock is taken exactly while one of ours is open; a request that finds the
store locked came from inside a transaction, holding the lock over the network.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import text

from graphs.chat import chat_turn, decide_turn
from graphs.context import Context
from graphs.settings import Settings
from graphs.wiring import make_forecast_provider
from store.db import make_session_factory
from store.seed import seed_fleet
from tests.fakes import ScriptedChatModel, tool_call
from tests.wire.test_grid_live import FakeElectricityMaps
from tools.clock import FixedClock
from tools.grid import SimulatedGrid
from tools.grid.models import HOUR, floor_hour
from tools.integrations.incidentio import DemoAlerts

KEY = "forecast-key-9"
CI_PATH = "/v3/carbon-intensity/forecast"
NOW = datetime(2026, 3, 10, 12, 20, tzinfo=UTC)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _ci_body(now: datetime) -> dict:
    first = floor_hour(now) + HOUR
    return {
        "zone": "DE",
        "forecast": [
            {"datetime": _iso(first + i * HOUR), "carbonIntensity": 300 + i} for i in range(48)
        ],
        "updatedAt": _iso(now),
    }


def store_locked(db: Path) -> bool:
    """Return True when another connection holds the store's write lock (a transaction)."""
    con = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    else:
        con.execute("ROLLBACK")
        return False
    finally:
        con.close()


class Probe:
    """The fake Electricity Maps, recording per request whether the store was locked."""

    def __init__(self, api: FakeElectricityMaps, base: str) -> None:
        self.api, self.base = api, base
        self.db: Path | None = None
        self.seen: list[tuple[str, bool]] = []
        api.on_request = self._probe

    def _probe(self, path: str) -> None:
        assert self.db is not None
        self.seen.append((path, store_locked(self.db)))

    def settings(self, db: Path, **extra: object) -> Settings:
        """Return settings for a store at `db` whose forecasts come from this fake, at NOW."""
        self.api.answer(CI_PATH, body=_ci_body(NOW))
        self.db = db
        return Settings(
            database_url=f"sqlite:///{db}",
            data_dir=db.parent,
            api_key="k",
            electricitymaps_api_key=KEY,
            electricitymaps_base_url=self.base,
            **extra,
        )

    def assert_asked_outside_transactions(self) -> None:
        assert self.seen, "Electricity Maps was never asked: the route did not plan ahead"
        inside = [path for path, locked in self.seen if locked]
        assert inside == [], f"{len(inside)} of {len(self.seen)} requests inside a transaction"


@pytest.fixture
def probe() -> Iterator[Probe]:
    api = FakeElectricityMaps()
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield Probe(api, f"http://127.0.0.1:{server.server_address[1]}/v3")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_probe_sees_a_transaction_of_ours(sqlite_engine, tmp_path) -> None:
    db = tmp_path / "test.db"
    assert store_locked(db) is False
    with make_session_factory(sqlite_engine).begin() as session:
        session.execute(text("SELECT 1"))
        assert store_locked(db) is True
    assert store_locked(db) is False


def test_tgtg_route_fetches_forecasts_before_its_transaction(probe, tmp_path) -> None:
    from typer.testing import CliRunner

    from ui.cli import app

    probe.api.answer(CI_PATH, body=_ci_body(NOW))
    probe.db = tmp_path / "cli.db"
    runner = CliRunner()
    db = ["--database-url", f"sqlite:///{probe.db}", "--data-dir", str(tmp_path)]
    at = NOW.isoformat()
    assert runner.invoke(app, [*db, "seed", "--at", at]).exit_code == 0
    job = ["route", "--gpus", "4", "--hours", "2", "--deadline", "2026-03-11T12:00Z"]
    env = {"TGTG_ELECTRICITYMAPS_API_KEY": KEY, "TGTG_ELECTRICITYMAPS_BASE_URL": probe.base}
    result = runner.invoke(app, [*db, *job, "--at", at, "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["workload_id"] and "electricitymaps" in out["forecast_source"]
    probe.assert_asked_outside_transactions()


def test_the_api_route_fetches_forecasts_before_its_transaction(probe, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from ui.api import create_app
    from ui.services import Services

    settings = probe.settings(tmp_path / "api.db")
    job = {
        "org_id": "acme-ai",
        "name": "nightly",
        "gpu_count": 4,
        "duration_hours": 2,
        "deadline": (NOW + timedelta(hours=24)).isoformat(),
    }
    with TestClient(create_app(Services.from_settings(settings, at=NOW))) as client:
        created = client.post("/api/v1/workloads", json=job, headers={"X-API-Key": "k"})
        assert created.status_code == 201, created.text
        wid = created.json()["id"]
        routed = client.put(f"/api/v1/workloads/{wid}/route", headers={"X-API-Key": "k"})
        assert routed.status_code == 200, routed.text
        assert "electricitymaps" in routed.json()["forecast_source"]
        missing = client.put("/api/v1/workloads/wl_nope/route", headers={"X-API-Key": "k"})
        assert missing.status_code == 404 and "wl_nope" in missing.text
    probe.assert_asked_outside_transactions()


def test_the_broker_agent_recommends_and_books_with_forecasts_fetched_first(
    probe, sqlite_engine, tmp_path
) -> None:
    """The chat's recommend_placement, its approval summary and route_workload all plan.

    The booking comes in the next hour (the recommendation is still fresh): its plan's
    forecasts are not in memory yet.
    """
    asked_at = datetime(2026, 11, 26, 10, 50, tzinfo=UTC)
    booked_at = asked_at + timedelta(minutes=15)
    probe.api.answer(CI_PATH, body=_ci_body(asked_at))
    probe.db = tmp_path / "test.db"
    sessions = make_session_factory(sqlite_engine)
    with sessions.begin() as s:
        seed_fleet(session=s, now=asked_at)
    spec = {"gpu_count": 2, "duration_hours": 3, "deadline": _iso(asked_at + timedelta(hours=30))}

    def book(msgs):
        rec_id = json.loads(msgs[-1].content)["recommendation_id"]
        args = {"recommendation_id": rec_id}
        return AIMessage("", tool_calls=[tool_call("route_workload", args, "w1")])

    model = ScriptedChatModel(
        [
            AIMessage("", tool_calls=[tool_call("transfer_to_broker", {"task": "x"}, "h1")]),
            AIMessage("", tool_calls=[tool_call("recommend_placement", spec, "r1")]),
            book,
            AIMessage("booked"),
        ]
    )
    grid = SimulatedGrid(seed=7)
    with httpx.Client() as client:
        ctx = Context(
            model=model,
            sessions=sessions,
            grid=grid,
            clock=FixedClock(asked_at),
            alerts=DemoAlerts(),
            forecasts=make_forecast_provider(grid, api_key=KEY, base_url=probe.base, client=client),
        )
        saver = InMemorySaver()
        first = chat_turn(ctx, saver, "book 2 GPUs for 3 h by tomorrow", thread_id="t")
        assert first["pending_approval"]["tool"] == "route_workload"
        asked = len(probe.seen)
        later = replace(ctx, clock=FixedClock(booked_at))
        approved = decide_turn(later, saver, thread_id="t", approve=True, by="ops")
    model.assert_complete()
    assert approved["written"] is True
    assert approved["workload"]["status"] in ("routed", "scheduled")
    assert 0 < asked < len(probe.seen)
    probe.assert_asked_outside_transactions()


def test_the_console_routes_with_forecasts_fetched_first(probe, tmp_path, monkeypatch) -> None:
    from tools.broker.fleet import seed_demo
    from ui import console_actions as actions
    from ui.console_runtime import ConsoleRuntime
    from ui.demo import NewWorkload
    from ui.services import Services

    monkeypatch.setenv("TGTG_LOOP_INTERVAL_S", "0")
    settings = probe.settings(
        tmp_path / "console.db", console_auth="ops:pw-for-tests", loop_interval_s=0
    )
    svc = Services.from_settings(settings, at=NOW)
    with svc.sessions.begin() as session:
        seed_demo(session=session, grid=svc.grid("sim"), now=NOW)
    rt = ConsoleRuntime(svc, settings)
    rt.start()
    try:
        job = NewWorkload(name="nightly", gpu_count=2, duration_hours=3, finish_within_hours=24)
        made = actions.submit(rt, job, route=True)
        assert made.details["decision"]["forecast_source"] is not None
        asked = len(probe.seen)
        pending = actions.submit(rt, job.model_copy(update={"name": "later"}), route=False)
        svc.clock = FixedClock(NOW + HOUR)  # a new hour: no forecast in memory yet
        routed = actions.route_or_reroute(rt, pending.details["id"])
        assert routed.details["kind"] == "route"
    finally:
        rt.stop()
    assert 0 < asked < len(probe.seen)
    probe.assert_asked_outside_transactions()


def test_a_watcher_pass_planning_long_work_asks_for_its_longer_horizon_first(
    probe, sqlite_engine, tmp_path
) -> None:
    """A joint plan of 60 h work forecasts 60 h: the pass asks for them before it plans."""
    from graphs.checkpoint import open_checkpointer
    from graphs.incident_watch import run_once
    from tools.broker.routing import JobSpec, submit_workload

    at = datetime(2026, 11, 26, 10, 20, tzinfo=UTC)
    probe.api.answer(CI_PATH, body=_ci_body(at))
    probe.db = tmp_path / "test.db"
    sessions = make_session_factory(sqlite_engine)
    spec = JobSpec(gpu_count=2, duration_hours=60, deadline=at + timedelta(hours=90))
    with sessions.begin() as s:
        seed_fleet(session=s, now=at)
        submit_workload(session=s, org_id="acme-ai", name="long", spec=spec, now=at)
    grid = SimulatedGrid(seed=7)
    with httpx.Client() as client, open_checkpointer(sqlite_engine) as saver:
        ctx = Context(
            model=ScriptedChatModel([]),
            sessions=sessions,
            grid=grid,
            clock=FixedClock(at),
            alerts=DemoAlerts(),
            forecasts=make_forecast_provider(grid, api_key=KEY, base_url=probe.base, client=client),
        )
        run_once(ctx, saver)
    horizons = {r["query"].get("horizonHours", [""])[0] for r in probe.api.requests}
    assert {"47", "59"} <= horizons
    probe.assert_asked_outside_transactions()
