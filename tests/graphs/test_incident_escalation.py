"""Work that cannot move: one ESCALATED incident per anomaly episode, re-examined each pass."""

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from sqlalchemy import func, select

from agents.offline import OfflineChatModel
from graphs.checkpoint import open_checkpointer
from graphs.context import Context
from graphs.incident_watch import run_once
from store.db import make_engine, make_session_factory
from store.incident_models import INCIDENT_TRANSITIONS, AlertEvent, Incident, IncidentTransition
from store.migrate import upgrade
from store.models import ComputeNode, RoutingDecision, Workload
from store.seed import seed_fleet
from tests.fakes import ScriptedChatModel
from tests.graphs.conftest import T0
from tests.graphs.test_incident_graph import FlakyAlerts
from tools.broker.fleet import set_node_status
from tools.broker.routing import JobSpec, route_workload, submit_workload
from tools.broker.workloads import set_workload_status
from tools.clock import FixedClock
from tools.grid import SimulatedGrid
from tools.incidents.detection import add_spike
from tools.integrations.incidentio import DemoAlerts

FIVE = ["MONITORING", "ANOMALY_DETECTED", "EVALUATING", "ADAPTING"]


def _at(ctx, hours):
    return replace(ctx, clock=FixedClock(T0 + timedelta(hours=hours)))


def _set_node(sessions, node_id, status, hours=0):
    with sessions.begin() as s:
        set_node_status(session=s, node_id=node_id, status=status, now=T0 + timedelta(hours=hours))


def _route(sessions, grid, zones, name="nl-batch") -> str:
    with sessions.begin() as s:
        spec = JobSpec(gpu_count=2, gpu_model="H100", duration_hours=4, allowed_zones=zones)
        wl = submit_workload(session=s, org_id="acme-ai", name=name, spec=spec, now=T0)
        decision = route_workload(session=s, grid=grid, workload_id=wl.id, now=T0)
    assert decision.node_id == "nl-ams-h100"
    return wl.id


def _alerts(sessions):
    with sessions() as s:
        rows = s.scalars(select(AlertEvent).order_by(AlertEvent.id)).all()
        return [(a.deduplication_key, a.status, a.revision) for a in rows]


def _count(sessions, model):
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.fixture
def saver(sqlite_engine):
    with open_checkpointer(sqlite_engine) as cp:
        yield cp


def test_work_only_allowed_on_an_offline_node_gets_one_escalated_incident(ctx, sessions, saver):
    wid = _route(sessions, ctx.grid, ["NL"])
    _set_node(sessions, "nl-ams-h100", "offline")
    (r,) = run_once(ctx, saver)
    assert r["trigger"] == "node_offline" and r["states"] == [*FIVE, "ESCALATED"]
    reason = r["transitions"][-1]["reason"]
    assert f"nl-batch ({wid}) stays on nl-ams-h100 (offline)" in reason
    assert "no eligible node: nl-ams-h100 cannot run it" in reason
    assert "allowed zones: NL" in reason
    assert "nl-batch" in r["summary"] and "Escalated: 1 workload(s) cannot move" in r["summary"]
    # The alert fired at ANOMALY_DETECTED and was updated, still firing, with the stuck work.
    firing = [(r["id"], "firing", 0), (r["id"], "firing", 1)]
    assert _alerts(sessions) == firing
    with sessions() as s:
        update = s.scalars(select(AlertEvent).where(AlertEvent.revision == 1)).one()
        assert update.payload["status"] == "firing" and "escalated" in update.title
        assert f"nl-batch ({wid}) stays on nl-ams-h100" in update.payload["description"]
    transitions = _count(sessions, IncidentTransition)
    # Later passes: the node is still down; nothing new is opened, written or reported.
    for hour in (1, 2, 3):
        assert run_once(_at(ctx, hour), saver) == []
    assert _count(sessions, Incident) == 1
    assert _count(sessions, IncidentTransition) == transitions
    assert _alerts(sessions) == firing
    with sessions() as s:
        wl = s.get(Workload, wid)
        assert (wl.status, wl.node_id, wl.reroute_count) == ("routed", "nl-ams-h100", 0)
    # The node comes back: the same incident resolves and its alert is resolved.
    _set_node(sessions, "nl-ams-h100", "online", hours=4)
    (back,) = run_once(_at(ctx, 4), saver)
    assert back["id"] == r["id"]
    assert back["states"] == [*FIVE, "ESCALATED", "MONITORING", "RESOLVED"]
    assert "nl-ams-h100 is online again" in back["transitions"][-2]["reason"]
    assert "nl-ams-h100 is online again" in back["transitions"][-1]["reason"]
    assert _alerts(sessions) == [*firing, (r["id"], "resolved", 0)]
    assert run_once(_at(ctx, 5), saver) == []
    assert _count(sessions, Incident) == 1


def test_capacity_elsewhere_moves_the_stuck_work_within_the_same_incident(ctx, sessions, saver):
    _set_node(sessions, "gb-lon-h100", "maintenance")
    wid = _route(sessions, ctx.grid, ["NL", "GB"])
    _set_node(sessions, "nl-ams-h100", "offline")
    (r,) = run_once(ctx, saver)
    assert r["states"][-1] == "ESCALATED"
    assert run_once(_at(ctx, 1), saver) == []
    _set_node(sessions, "gb-lon-h100", "online", hours=2)
    (moved,) = run_once(_at(ctx, 2), saver)
    assert moved["id"] == r["id"]
    assert moved["states"] == [*FIVE, "ESCALATED", *FIVE, "RESOLVED"]
    assert "capacity appeared" in moved["transitions"][5]["reason"]
    assert [(m["attempt"], m["outcome"], m["to_node_id"]) for m in moved["reroutes"]] == [
        (0, "kept", None),
        (1, "rerouted", "gb-lon-h100"),
    ]
    with sessions() as s:
        wl = s.get(Workload, wid)
        assert (wl.node_id, wl.reroute_count, wl.status) == ("gb-lon-h100", 1, "routed")
    assert _alerts(sessions) == [
        (r["id"], "firing", 0),
        (r["id"], "firing", 1),
        (r["id"], "resolved", 0),
    ]
    assert _count(sessions, Incident) == 1


def _fr_only_in_a_carbon_spike(ctx, sessions, *, movable: bool) -> str:
    """Route an FR-only job (no other node may take it), then spike FR's carbon for 2 h."""
    with sessions.begin() as s:
        spec = JobSpec(
            gpu_count=2, gpu_model="H100", duration_hours=8, allowed_zones=["FR"], movable=movable
        )
        wl = submit_workload(session=s, org_id="acme-ai", name="fr-only", spec=spec, now=T0)
        route_workload(session=s, grid=ctx.grid, workload_id=wl.id, now=T0)
        add_spike(
            session=s, zone="FR", carbon_factor=20, price_factor=1, hours=2, reason="t", now=T0
        )
    return wl.id


def test_a_pinned_workload_in_a_carbon_spike_escalates_until_the_spike_ends(ctx, sessions, saver):
    _fr_only_in_a_carbon_spike(ctx, sessions, movable=True)
    (r,) = run_once(ctx, saver)
    assert r["trigger"] == "carbon_spike" and r["states"][-1] == "ESCALATED"
    assert "fr-only" in r["transitions"][-1]["reason"]
    assert run_once(_at(ctx, 1), saver) == []
    (over,) = run_once(_at(ctx, 3), saver)
    assert over["id"] == r["id"] and over["states"][-2:] == ["MONITORING", "RESOLVED"]
    assert "carbon spike in FR is over" in over["transitions"][-1]["reason"]


def test_work_that_cannot_checkpoint_stays_through_a_carbon_spike_without_escalating(
    ctx, sessions, saver
):
    with sessions.begin() as s:
        spec = JobSpec(gpu_count=2, gpu_model="H100", duration_hours=8, allowed_zones=["FR", "DE"])
        movable = submit_workload(session=s, org_id="acme-ai", name="free", spec=spec, now=T0)
        pinned = submit_workload(
            session=s,
            org_id="acme-ai",
            name="pinned",
            spec=spec.model_copy(update={"movable": False}),
            now=T0,
        )
        for wl in (movable, pinned):
            d = route_workload(session=s, grid=ctx.grid, workload_id=wl.id, now=T0)
            assert d.zone == "FR"
        add_spike(
            session=s, zone="FR", carbon_factor=20, price_factor=20, hours=2, reason="t", now=T0
        )
    (r,) = run_once(ctx, saver)
    assert r["trigger"] == "carbon_spike" and r["states"][-1] == "RESOLVED"
    with sessions() as s:
        assert s.get(Workload, movable.id).node_id == "de-fra-h100"
        kept = s.get(Workload, pinned.id)
        assert (kept.node_id, kept.reroute_count) == ("fr-par-h100", 0)


def test_work_that_cannot_checkpoint_and_has_nowhere_else_resolves_a_carbon_spike(
    ctx, sessions, saver
):
    wid = _fr_only_in_a_carbon_spike(ctx, sessions, movable=False)
    (r,) = run_once(ctx, saver)
    # Keeping it is the decision (it cannot checkpoint), not stuck work: the same job movable
    # escalates (above), since it has no other node to go to.
    assert r["trigger"] == "carbon_spike" and r["states"][-1] == "RESOLVED"
    with sessions() as s:
        kept = s.get(Workload, wid)
        assert (kept.node_id, kept.reroute_count) == ("fr-par-h100", 0)
        reroutes = s.scalars(
            select(RoutingDecision).where(
                RoutingDecision.workload_id == wid, RoutingDecision.kind == "reroute"
            )
        ).all()
        (decision,) = reroutes
        assert decision.outcome == "kept" and "cannot checkpoint" in decision.reason


def test_a_later_attempt_resolves_through_an_alert_outage(ctx, sessions, saver):
    wid = _route(sessions, ctx.grid, ["NL"])
    _set_node(sessions, "nl-ams-h100", "offline")
    (r,) = run_once(ctx, saver)
    _set_node(sessions, "nl-ams-h100", "online", hours=1)
    flaky = replace(_at(ctx, 1), alerts=FlakyAlerts())
    (done,) = run_once(flaky, saver)  # incident.io is down: the incident still resolves
    assert done["id"] == r["id"] and done["states"][-3:] == ["ESCALATED", "MONITORING", "RESOLVED"]
    firing = [(r["id"], "firing", 0), (r["id"], "firing", 1)]
    assert _alerts(sessions) == firing  # the resolved alert waits in the outbox
    assert run_once(replace(_at(ctx, 2), alerts=flaky.alerts), saver) == []
    assert _alerts(sessions) == [*firing, (r["id"], "resolved", 0)]
    with sessions() as s:
        assert s.get(Workload, wid).reroute_count == 0


def test_a_configured_model_summarises_the_escalation(ctx, sessions, saver):
    model = ScriptedChatModel(
        [
            lambda msgs: AIMessage(
                "NL node down; nl-batch is stuck there."
                if "ADAPTING -> ESCALATED" in msgs[0].content and "nl-batch" in msgs[0].content
                else "bad"
            )
        ]
    )
    _route(sessions, ctx.grid, ["NL"])
    _set_node(sessions, "nl-ams-h100", "offline")
    (r,) = run_once(replace(ctx, model=model, model_summaries=True), saver)
    model.assert_complete()
    assert r["state"] == "ESCALATED" and r["summary"] == "NL node down; nl-batch is stuck there."
    assert run_once(replace(_at(ctx, 1), model=model, model_summaries=True), saver) == []


EVENTS = st.lists(
    st.sampled_from(["nl_down", "nl_up", "gb_down", "gb_up", "cancel", "nothing"]),
    min_size=1,
    max_size=6,
)


@pytest.mark.slow
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=EVENTS)
def test_random_fleet_events_keep_incidents_legal_and_one_per_episode(tmp_path_factory, events):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('esc') / 'store.db'}")
    try:
        upgrade(engine)
        sessions = make_session_factory(engine)
        with sessions.begin() as s:
            seed_fleet(session=s, now=T0)
        ctx = Context(
            model=OfflineChatModel(),
            sessions=sessions,
            grid=SimulatedGrid(seed=7),
            clock=FixedClock(T0),
            alerts=DemoAlerts(),
        )
        _set_node(sessions, "gb-lon-h100", "maintenance")
        wid = _route(sessions, ctx.grid, ["NL", "GB"])
        seen: set[str] = set()
        with open_checkpointer(engine) as saver:
            for hour, event in enumerate(["nl_down", *events], start=0):
                now = T0 + timedelta(hours=hour)
                with sessions.begin() as s:
                    if event.endswith(("_down", "_up")):
                        node = {"nl": "nl-ams-h100", "gb": "gb-lon-h100"}[event[:2]]
                        status = "offline" if event.endswith("down") else "online"
                        set_node_status(session=s, node_id=node, status=status, now=now)
                    elif event == "cancel" and s.get(Workload, wid).status == "routed":
                        set_workload_status(session=s, workload_id=wid, status="cancelled", now=now)
                reports = run_once(_at(ctx, hour), saver)
                for rep in reports:  # reported only when this pass changed it
                    assert rep["transitions"][-1]["at"] == now.isoformat()
                    if event == "nothing" and rep["trigger"] == "node_offline":
                        # Nothing changed in the fleet: an existing incident stays quiet.
                        assert rep["id"] not in seen, rep["states"]
                seen.update(r["id"] for r in reports)
                _check_invariants(sessions, wid)
                downs = {
                    n: ["nl_down", *events][: hour + 1].count(f"{n}_down") for n in ("nl", "gb")
                }
                _check_one_incident_per_episode(sessions, downs)
    finally:
        engine.dispose()


def _check_invariants(sessions, wid):
    with sessions() as s:
        rows = s.scalars(select(IncidentTransition).order_by(IncidentTransition.id)).all()
        for row in rows:
            assert row.from_state is None or row.to_state in INCIDENT_TRANSITIONS[row.from_state]
        incidents = s.scalars(select(Incident)).all()
        open_keys = [i.open_key for i in incidents if i.state != "RESOLVED"]
        assert len(open_keys) == len(set(open_keys)) and None not in open_keys
        wl = s.get(Workload, wid)
        for inc in incidents:
            if inc.state == "ESCALATED":  # only while the work really sits on a down node
                node = s.get(ComputeNode, inc.details["node_id"])
                assert node.status != "online" and wl.node_id == node.id
                assert wl.status in ("routed", "running")


def _check_one_incident_per_episode(sessions, downs):
    """A node-offline episode starts with a down event: never more incidents than those."""
    with sessions() as s:
        for prefix, node in (("nl", "nl-ams-h100"), ("gb", "gb-lon-h100")):
            n = s.scalar(
                select(func.count())
                .select_from(Incident)
                .where(Incident.trigger == "node_offline", Incident.zone == prefix.upper())
            )
            assert n <= downs[prefix], (node, n, downs)
