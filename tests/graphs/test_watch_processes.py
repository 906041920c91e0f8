"""Watchers as real processes: kill -9 and restart, and two watchers sharing PostgreSQL.

Every process runs on a replay clock started at a fixed time (TGTG_CLOCK_START), as the setup
does, so what the grid shows (and so which incidents open) never depends on the hour tests run.
"""

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store.db import make_session_factory
from store.incident_models import AlertEvent, Incident, IncidentOutbox, IncidentReroute
from store.models import RoutingDecision, Workload
from store.seed import seed_fleet
from tests.fakes import FakeHTTPServer, Reply
from tools.broker.fleet import set_node_status
from tools.broker.routing import JobSpec, route_workload, submit_workload
from tools.grid import SimulatedGrid
from tools.incidents.detection import add_spike

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
ESCAPE = ("US-CAL-CISO", "US-TEX-ERCO")
"""Zones a spiked job may move to; never spiked here, so no incident chases another."""
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
"""Start of every clock here; the simulator has no spike or surplus of its own in these zones."""


def _cli(url: str, tmp: Path, *args: str, alert_url: str | None = None) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from ui.cli import app; app()",
        "--database-url",
        url,
        "--data-dir",
        str(tmp),
        *args,
    ]


def _env(alert_url: str | None, at: datetime = T0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGTG_")}
    env |= {"TGTG_CLOCK_START": at.isoformat(), "TGTG_CLOCK_SPEED": "0.000001"}
    if alert_url:
        env |= {
            "TGTG_INCIDENTIO_API_KEY": "k",
            "TGTG_INCIDENTIO_ALERT_SOURCE_ID": "src",
            "TGTG_INCIDENTIO_BASE_URL": alert_url,
        }
    return env


def _setup(engine, zones: list[str], now: datetime) -> list[str]:
    sessions = make_session_factory(engine)
    grid = SimulatedGrid(seed=7)
    ids = []
    with sessions.begin() as s:
        seed_fleet(session=s, now=now)
        for zone in zones:
            spec = JobSpec(gpu_count=1, duration_hours=6, gpu_model="H100", allowed_zones=[zone])
            wl = submit_workload(
                session=s, org_id="acme-ai", name=f"job-{zone}", spec=spec, now=now
            )
            ids.append(wl.id)
        s.flush()
    for zone, wid in zip(zones, ids, strict=True):
        with sessions.begin() as s:
            s.get(Workload, wid).allowed_zones = [zone]  # route it into the zone first
        with sessions.begin() as s:
            route_workload(session=s, grid=grid, workload_id=wid, now=now)
            w = s.get(Workload, wid)
            w.allowed_zones = sorted({zone, *ESCAPE})
        with sessions.begin() as s:
            add_spike(
                session=s,
                zone=zone,
                carbon_factor=20,
                price_factor=1,
                hours=6,
                reason="test",
                now=now,
            )
    return ids


def test_kill_dash_nine_while_alerting_then_restart_alerts_once_and_reroutes_once(
    sqlite_engine, tmp_path
):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    (wid,) = _setup(sqlite_engine, ["FR"], T0)
    release = threading.Event()
    resolving = threading.Event()

    def handler(req):
        if req.body and req.body.get("status") == "resolved" and not release.is_set():
            resolving.set()
            release.wait(60)
        return Reply(202, {"status": "success"})

    with FakeHTTPServer(handler) as alerts:
        watcher = subprocess.Popen(
            _cli(url, tmp_path, "incidents", "watch", "--interval", "0.2", "--worker-id", "w1"),
            cwd=REPO,
            env=_env(alerts.url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(240):  # wait until the resolved alert is in flight (at most 2 minutes)
            if resolving.wait(0.5):
                break
            assert watcher.poll() is None, watcher.stderr.read().decode()[-2000:]
        assert resolving.is_set(), "the watcher never sent the resolved alert"
        os.kill(watcher.pid, signal.SIGKILL)
        watcher.wait(10)
        watcher.stderr.close()
        sessions = make_session_factory(sqlite_engine)
        with sessions() as s:
            (inc,) = s.scalars(select(Incident)).all()
            # Killed while the alert was in flight: the incident had committed RESOLVED first.
            assert inc.state == "RESOLVED" and s.get(Workload, wid).reroute_count == 1
            assert [a.status for a in s.scalars(select(AlertEvent))] == ["firing"]
        release.set()
        # Another watcher, once the dead one's delivery lease ran out.
        done = subprocess.run(
            _cli(url, tmp_path, "incidents", "run-once", "--json", "--worker-id", "w2"),
            cwd=REPO,
            env=_env(alerts.url, at=T0 + timedelta(minutes=10)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []  # no incident moved: only the alert was owed
    with sessions() as s:
        assert s.get(Workload, wid).reroute_count == 1
        reroutes = s.scalar(
            select(func.count())
            .select_from(RoutingDecision)
            .where(RoutingDecision.kind == "reroute")
        )
        assert reroutes == 1
        recorded = s.scalars(select(AlertEvent).order_by(AlertEvent.id)).all()
        assert [(a.status, a.delivery) for a in recorded] == [
            ("firing", "sent"),
            ("resolved", "sent"),
        ]
        assert {o.status for o in s.scalars(select(IncidentOutbox))} == {"done"}
    firing = [r for r in alerts.requests if r.body.get("status") == "firing"]
    assert len(firing) == 1


@pytest.mark.postgres
def test_two_watchers_on_postgres_share_incidents(pg_engine, tmp_path):
    zones = ["FR", "NL", "GB"]
    ids = _setup(pg_engine, zones, T0)
    with pg_engine.connect() as conn:
        schema = conn.exec_driver_sql("select current_schema()").scalar_one()
    url = pg_engine.url.update_query_dict({"options": f"-csearch_path={schema}"})
    url = url.render_as_string(hide_password=False)
    procs = [
        subprocess.Popen(
            _cli(url, tmp_path / w, "incidents", "run-once", "--json", "--worker-id", w),
            cwd=REPO,
            env=_env(None),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in ("w1", "w2")
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    handled = [[r["id"] for r in json.loads(out)] for out, _ in outs]
    assert not set(handled[0]) & set(handled[1]), handled
    sessions = make_session_factory(pg_engine)
    with sessions() as s:
        incidents = s.scalars(select(Incident)).all()
        assert len(incidents) == len(zones) and all(i.state == "RESOLVED" for i in incidents)
        assert sorted(handled[0] + handled[1]) == sorted(i.id for i in incidents)
        per_workload = s.execute(
            select(IncidentReroute.workload_id, func.count()).group_by(IncidentReroute.workload_id)
        ).all()
        assert sorted(per_workload) == sorted((wid, 1) for wid in ids)


def _run_both(url: str, tmp: Path) -> list[list[dict]]:
    procs = [
        subprocess.Popen(
            _cli(url, tmp / w, "incidents", "run-once", "--json", "--worker-id", w),
            cwd=REPO,
            env=_env(None),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in ("w1", "w2")
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    return [json.loads(out) for out, _ in outs]


@pytest.mark.postgres
def test_two_watchers_keep_one_escalated_incident_and_resolve_it_once(pg_engine, tmp_path):
    now = T0
    (spiked,) = _setup(pg_engine, ["FR"], now)
    sessions = make_session_factory(pg_engine)
    with sessions.begin() as s:  # Brussels-only work on the only Brussels node, which goes down
        spec = JobSpec(gpu_count=2, gpu_model="L40S", duration_hours=4, allowed_zones=["BE"])
        stuck = submit_workload(session=s, org_id="acme-ai", name="be-only", spec=spec, now=now)
        route_workload(session=s, grid=SimulatedGrid(seed=7), workload_id=stuck.id, now=now)
        set_node_status(session=s, node_id="be-bru-l40s", status="offline", now=now)
    with pg_engine.connect() as conn:
        schema = conn.exec_driver_sql("select current_schema()").scalar_one()
    url = pg_engine.url.update_query_dict({"options": f"-csearch_path={schema}"})
    url = url.render_as_string(hide_password=False)
    first = _run_both(url, tmp_path)
    ids = [r["id"] for out in first for r in out]
    assert len(ids) == len(set(ids)) == 2
    states = sorted((r["trigger"], r["state"]) for out in first for r in out)
    assert states == [("carbon_spike", "RESOLVED"), ("node_offline", "ESCALATED")]
    # Nothing changed: both watchers re-examine it, neither writes nor reports anything.
    assert _run_both(url, tmp_path) == [[], []]
    with sessions.begin() as s:
        set_node_status(session=s, node_id="be-bru-l40s", status="online", now=now)
    third = [r for out in _run_both(url, tmp_path) for r in out]
    (escalated,) = [r for out in first for r in out if r["state"] == "ESCALATED"]
    assert [(r["id"], r["state"]) for r in third] == [(escalated["id"], "RESOLVED")]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 2
        alerts = s.execute(
            select(AlertEvent.status, AlertEvent.revision).where(
                AlertEvent.deduplication_key == escalated["id"]
            )
        ).all()
        assert sorted(alerts) == [("firing", 0), ("firing", 1), ("resolved", 0)]
        assert s.get(Workload, spiked).reroute_count == 1
