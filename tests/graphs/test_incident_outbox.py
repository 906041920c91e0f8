"""Alerts and model summaries leave through the outbox: no lock held, a slow model never fails."""

import sqlite3
from dataclasses import replace
from datetime import timedelta

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage
from sqlalchemy import select, text

from graphs.checkpoint import open_checkpointer
from graphs.context import Context
from graphs.incident_watch import run_once
from store.db import make_session_factory
from store.incident_models import AlertEvent, Incident, IncidentOutbox
from store.seed import seed_fleet
from tests.fakes import ScriptedChatModel
from tests.graphs.conftest import T0
from tools.broker.fleet import set_node_status
from tools.broker.routing import JobSpec, route_workload, submit_workload
from tools.clock import FixedClock
from tools.grid import SimulatedGrid
from tools.incidents.detection import add_spike
from tools.incidents.outbox import MAX_SUMMARY_ATTEMPTS
from tools.integrations.incidentio import DemoAlerts


def _timeout(_messages):
    raise openai.APITimeoutError(request=httpx.Request("POST", "http://127.0.0.1/v1/chat"))


def _stuck_nl_job(sessions, grid) -> str:
    """NL-only work on the only NL node, which goes down: the incident escalates."""
    with sessions.begin() as s:
        spec = JobSpec(gpu_count=2, gpu_model="H100", duration_hours=4, allowed_zones=["NL"])
        wl = submit_workload(session=s, org_id="acme-ai", name="nl-batch", spec=spec, now=T0)
        route_workload(session=s, grid=grid, workload_id=wl.id, now=T0)
        set_node_status(session=s, node_id="nl-ams-h100", status="offline", now=T0)
    return wl.id


def _at(ctx, seconds: float):
    return replace(ctx, clock=FixedClock(T0 + timedelta(seconds=seconds)))


def _outbox(sessions):
    with sessions() as s:
        rows = s.scalars(select(IncidentOutbox).order_by(IncidentOutbox.id)).all()
        return [(r.key.split(":")[0], r.status, r.attempts) for r in rows]


@pytest.fixture
def saver(sqlite_engine):
    with open_checkpointer(sqlite_engine) as cp:
        yield cp


def test_a_timing_out_model_never_fails_the_pass_and_is_retried_later(ctx, sessions, saver):
    model = ScriptedChatModel(
        [_timeout, lambda msgs: AIMessage("NL node down; nl-batch waits for it.")]
    )
    ctx = replace(ctx, model=model, model_summaries=True)
    _stuck_nl_job(sessions, ctx.grid)
    (r,) = run_once(ctx, saver)  # the model times out while summarising the escalation
    assert r["state"] == "ESCALATED"
    assert r["summary"].startswith("node offline in NL: 1 workload(s) evaluated, 0 rerouted.")
    assert "Escalated: 1 workload(s) cannot move" in r["summary"]  # the template, for now
    with sessions() as s:
        alerts = s.scalars(select(AlertEvent).order_by(AlertEvent.id)).all()
        (summary,) = s.scalars(select(IncidentOutbox).where(IncidentOutbox.kind == "summary"))
        assert "APITimeoutError" in summary.last_error
        assert summary.due_at == T0 + timedelta(seconds=30)
    assert [(a.status, a.revision) for a in alerts] == [("firing", 0), ("firing", 1)]
    assert len(model.calls) == 1
    assert run_once(_at(ctx, 10), saver) == []  # not due yet: no model call
    assert len(model.calls) == 1
    assert run_once(_at(ctx, 30), saver) == []  # due: the model answers this time
    model.assert_complete()
    with sessions() as s:
        assert s.get(Incident, r["id"]).summary == "NL node down; nl-batch waits for it."
    assert _outbox(sessions) == [("alert", "done", 1), ("alert", "done", 1), ("summary", "done", 2)]


def test_a_model_that_stays_down_leaves_the_template_after_bounded_tries(ctx, sessions, saver):
    model = ScriptedChatModel([_timeout] * MAX_SUMMARY_ATTEMPTS)
    ctx = replace(ctx, model=model, model_summaries=True)
    _stuck_nl_job(sessions, ctx.grid)
    (r,) = run_once(ctx, saver)
    for hour in range(1, 12):
        assert run_once(_at(ctx, 3600 * hour), saver) == []
    model.assert_complete()  # 5 tries, then no more calls
    assert _outbox(sessions)[-1] == ("summary", "failed", MAX_SUMMARY_ATTEMPTS)
    with sessions() as s:
        assert "Escalated: 1 workload(s) cannot move" in s.get(Incident, r["id"]).summary


class _Probe:
    """Checks, from another connection, that nobody holds a lock the call could wait on."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.checked: list[str] = []

    def __call__(self, what: str) -> None:
        if self.engine.url.get_backend_name() == "sqlite":
            # Fails at once ("database is locked") while any write transaction is open.
            conn = sqlite3.connect(self.engine.url.database, timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        else:
            with self.engine.connect() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '50ms'"))
                conn.execute(text("SELECT id FROM incidents FOR UPDATE NOWAIT"))
                conn.execute(text("SELECT id FROM incident_outbox FOR UPDATE NOWAIT"))
                conn.rollback()
        self.checked.append(what)


class ProbingAlerts(DemoAlerts):
    def __init__(self, probe: _Probe) -> None:
        self.probe = probe

    def deliver(self, event):
        self.probe(f"alert {event.status}")
        return super().deliver(event)


def test_no_lock_is_held_while_the_model_or_the_alert_service_works(engine):
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        seed_fleet(session=s, now=T0)
    probe = _Probe(engine)

    def summarise(messages):
        probe("model")
        return AIMessage("summary")

    ctx = Context(
        model=ScriptedChatModel([summarise] * 2),
        sessions=sessions,
        grid=SimulatedGrid(seed=7),
        clock=FixedClock(T0),
        alerts=ProbingAlerts(probe),
        model_summaries=True,
    )
    _stuck_nl_job(sessions, ctx.grid)  # escalates (alert update and summary)
    with sessions.begin() as s:  # and a spike that resolves (resolved alert and summary)
        spec = JobSpec(gpu_count=2, gpu_model="H100", duration_hours=6, allowed_zones=["FR", "DE"])
        wl = submit_workload(session=s, org_id="acme-ai", name="ft", spec=spec, now=T0)
        route_workload(session=s, grid=ctx.grid, workload_id=wl.id, now=T0)
        add_spike(
            session=s, zone="FR", carbon_factor=20, price_factor=1, hours=3, reason="t", now=T0
        )
    with open_checkpointer(engine) as saver:
        reports = run_once(ctx, saver)
    assert sorted(r["state"] for r in reports) == ["ESCALATED", "RESOLVED"]
    assert sorted(probe.checked) == sorted(
        ["alert firing", "alert firing", "alert firing", "alert resolved", "model", "model"]
    )
    ctx.model.assert_complete()
    assert {r["summary"] for r in reports} == {"summary"}
    with sessions.begin() as s:  # the probe does notice what a node transaction holds
        for incident in s.scalars(select(Incident).with_for_update()):
            incident.updated_at = T0 + timedelta(seconds=1)
        s.flush()
        with pytest.raises(Exception, match="lock"):
            probe("held")
