"""Incidents re-plan free work at once through the one planner: scheduled work in a spiking zone
or on an offline node, and pending or scheduled work a surplus may pull in, decided this hour."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

import graphs.incident
from graphs.checkpoint import open_checkpointer
from graphs.incident_watch import run_once
from store import repo
from store.incident_models import IncidentReroute, IncidentTransition
from store.models import ComputeNode, GpuReservation, RoutingDecision, Workload
from tests.graphs.conftest import T0
from tests.unit.test_scheduling import DailyGrid
from tools.broker.routing import JobSpec, route_workload, submit_workload
from tools.clock import FixedClock
from tools.incidents.detection import add_spike

FIVE = ["MONITORING", "ANOMALY_DETECTED", "EVALUATING", "ADAPTING", "RESOLVED"]
HOUR = timedelta(hours=1)


@pytest.fixture
def daily(ctx):
    """FR clean from 00:00 to 06:00 UTC and 400 g/kWh otherwise; DE and the rest a flat 300."""
    return replace(ctx, grid=DailyGrid())


@pytest.fixture
def saver(sqlite_engine):
    with open_checkpointer(sqlite_engine) as cp:
        yield cp


def _schedule_in_fr(ctx, zones=("FR", "DE")) -> tuple[str, object]:
    """Route a flexible job at T0: scheduled on the Paris node for FR's clean night."""
    spec = JobSpec(gpu_count=2, duration_hours=3, deadline=T0 + 24 * HOUR, allowed_zones=["FR"])
    with ctx.sessions.begin() as s:
        w = submit_workload(session=s, org_id="acme-ai", name="nightly", spec=spec, now=T0)
        d = route_workload(session=s, grid=ctx.grid, workload_id=w.id, now=T0)
        s.get(Workload, w.id).allowed_zones = list(zones)
    assert (d.outcome, d.node_id) == ("scheduled", "fr-par-h100")
    assert d.start_at is not None and d.start_at.hour < 6
    return w.id, d


def _fr_spike_since_seven(ctx) -> None:
    """FR readings x20 since 07:00 that arrived late (after the job was scheduled at T0)."""
    with ctx.sessions.begin() as s:
        add_spike(
            session=s,
            zone="FR",
            carbon_factor=20,
            price_factor=1,
            hours=27,
            reason="late readings: FR spiking since 07:00",
            now=T0 - 3 * HOUR,
        )


def _decisions(ctx, wid):
    with ctx.sessions() as s:
        found = repo.list_decisions(session=s, workload_id=wid)
        return sorted((d.id, d.kind, d.outcome) for d in found)


def test_a_spike_moves_scheduled_work_out_of_the_zone_at_once(daily, saver):
    wid, d = _schedule_in_fr(daily)
    _fr_spike_since_seven(daily)
    (r,) = run_once(daily, saver)
    assert (r["trigger"], r["zone"], r["states"]) == ("carbon_spike", "FR", FIVE)
    (move,) = r["reroutes"]
    assert (move["workload_id"], move["from_node_id"]) == (wid, "fr-par-h100")
    assert move["outcome"] in {"rescheduled", "started"}
    with daily.sessions() as s:
        w = s.get(Workload, wid)
        assert w.node_id == move["to_node_id"]
        assert s.get(ComputeNode, w.node_id).zone == "DE"
        decision = s.get(RoutingDecision, move["decision_id"])
        assert decision.workload_id == wid and "joint re-plan" in decision.reason
    # The hourly pass of the same run left it alone (decided this hour); the incident moved it.
    assert sorted((k, o) for _, k, o in _decisions(daily, wid)) == sorted(
        [("route", "scheduled"), (decision.kind, move["outcome"])]
    )
    assert "1 free workload(s) re-planned" in r["summary"]


def test_a_spike_keeps_scheduled_work_whose_window_the_plan_still_prefers(daily, saver):
    """A spike that just began: the forecast expects it gone by FR's clean night, so the
    re-plan keeps the window. That is a decision, not stuck work: the incident resolves."""
    wid, d = _schedule_in_fr(daily)
    with daily.sessions.begin() as s:
        add_spike(
            session=s, zone="FR", carbon_factor=20, price_factor=1, hours=3, reason="t", now=T0
        )
    (r,) = run_once(daily, saver)
    assert r["states"] == FIVE
    assert [(m["workload_id"], m["outcome"], m["to_node_id"]) for m in r["reroutes"]] == [
        (wid, "kept", "fr-par-h100")
    ]
    with daily.sessions() as s:
        w = s.get(Workload, wid)
        assert (w.status, w.node_id, w.planned_start_at) == ("scheduled", d.node_id, d.start_at)


class PowerCut(RuntimeError):
    """The process dies here."""


def test_a_resumed_incident_replans_nothing_twice(daily, sqlite_engine, monkeypatch):
    wid, _ = _schedule_in_fr(daily)
    _fr_spike_since_seven(daily)
    real = graphs.incident.stuck_workloads
    cuts = iter([True])

    def crash_once(**kw):  # dies inside ADAPTING, after the re-plan committed
        if next(cuts, False):
            raise PowerCut("killed inside ADAPTING")
        return real(**kw)

    monkeypatch.setattr(graphs.incident, "stuck_workloads", crash_once)
    with open_checkpointer(sqlite_engine) as saver:
        with pytest.raises(PowerCut):
            run_once(daily, saver)
    moved = _decisions(daily, wid)
    (replanned,) = [i for i, kind, _ in moved if kind != "route"]
    with daily.sessions() as s:
        placed = (s.get(Workload, wid).status, s.get(Workload, wid).node_id)
        held = [(g.node_id, g.start_at) for g in s.scalars(select(GpuReservation))]
    with open_checkpointer(sqlite_engine) as saver:
        (r,) = run_once(daily, saver)
        assert r["states"] == FIVE
        assert [(m["workload_id"], m["decision_id"]) for m in r["reroutes"]] == [(wid, replanned)]
        assert run_once(daily, saver) == []  # and a later pass finds nothing to do
    assert _decisions(daily, wid) == moved
    with daily.sessions() as s:
        assert (s.get(Workload, wid).status, s.get(Workload, wid).node_id) == placed
        assert [(g.node_id, g.start_at) for g in s.scalars(select(GpuReservation))] == held
        assert len(s.scalars(select(IncidentReroute)).all()) == 1


class Curtailing:
    """DailyGrid with NL curtailing renewables all along at 5 g/kWh."""

    def __init__(self) -> None:
        self.inner = DailyGrid()
        self.name = self.inner.name

    def reading(self, zone, at):
        r = self.inner.reading(zone, at)
        if zone != "NL":
            return r
        update = {"curtailment": True, "surplus": True, "carbon_intensity": 5.0}
        return r.model_copy(update=update)

    def series(self, zone, start, hours):
        return [self.reading(zone, start + h * HOUR) for h in range(hours)]


def test_a_surplus_pulls_scheduled_work_in_when_it_may_run_there(daily, saver):
    wid, _ = _schedule_in_fr(daily, zones=("FR", "NL"))
    stays, _ = _schedule_in_fr(daily, zones=("FR",))  # may not run in NL
    (r,) = run_once(replace(daily, grid=Curtailing()), saver)
    assert (r["trigger"], r["zone"], r["states"]) == ("surplus", "NL", FIVE)
    (move,) = r["reroutes"]
    assert (move["workload_id"], move["from_node_id"]) == (wid, "fr-par-h100")
    assert move["outcome"] in {"started", "rescheduled"} and move["to_node_id"] == "nl-ams-h100"
    with daily.sessions() as s:
        assert s.get(Workload, wid).node_id == "nl-ams-h100"
        assert s.get(Workload, stays).node_id == "fr-par-h100"


def test_a_surplus_pulls_pending_work_in(daily, saver):
    """Pending work that fit nowhere this hour (its only zone's node was down) is placed in the
    surplus zone when the node is back, without waiting for the next hourly pass."""
    with daily.sessions.begin() as s:
        s.get(ComputeNode, "nl-ams-h100").status = "offline"
        spec = JobSpec(gpu_count=2, duration_hours=3, allowed_zones=["NL"])
        w = submit_workload(session=s, org_id="acme-ai", name="nl-only", spec=spec, now=T0)
        d = route_workload(session=s, grid=daily.grid, workload_id=w.id, now=T0)
    assert d.outcome == "no_eligible_node"
    with daily.sessions.begin() as s:
        s.get(ComputeNode, "nl-ams-h100").status = "online"
    (r,) = run_once(replace(daily, grid=Curtailing()), saver)
    assert (r["trigger"], r["zone"], r["states"]) == ("surplus", "NL", FIVE)
    assert [(m["workload_id"], m["outcome"], m["to_node_id"]) for m in r["reroutes"]] == [
        (w.id, "routed", "nl-ams-h100")
    ]
    with daily.sessions() as s:
        assert s.get(Workload, w.id).status == "routed"


def test_scheduled_work_stuck_on_an_offline_node_escalates(daily, saver):
    wid, _ = _schedule_in_fr(daily, zones=("FR",))  # FR has one node
    with daily.sessions.begin() as s:
        s.get(ComputeNode, "fr-par-h100").status = "offline"
    (r,) = run_once(daily, saver)
    assert r["trigger"] == "node_offline" and r["states"][-1] == "ESCALATED"
    assert [(m["workload_id"], m["outcome"]) for m in r["reroutes"]] == [(wid, "kept")]
    (stuck,) = r["details"]["stuck"]
    assert stuck["workload_id"] == wid and "fits nowhere" in stuck["reason"]


def test_scheduled_work_leaves_an_offline_node(daily, saver):
    wid, _ = _schedule_in_fr(daily, zones=("FR", "DE"))
    with daily.sessions.begin() as s:
        s.get(ComputeNode, "fr-par-h100").status = "offline"
    (r,) = run_once(daily, saver)
    assert r["trigger"] == "node_offline" and r["states"] == FIVE
    (move,) = r["reroutes"]
    assert move["workload_id"] == wid and move["outcome"] in {"rescheduled", "started"}
    with daily.sessions() as s:
        assert s.get(ComputeNode, s.get(Workload, wid).node_id).zone == "DE"


def _escalations(ctx) -> list[tuple[str, int]]:
    with ctx.sessions() as s:
        rows = s.scalars(
            select(IncidentTransition)
            .where(IncidentTransition.to_state.in_(["ESCALATED", "MONITORING"]))
            .order_by(IncidentTransition.id)
        ).all()
        return [(t.to_state, t.attempt) for t in rows]


def test_stuck_scheduled_work_is_escalated_once_until_the_joint_plan_can_move_it(daily, saver):
    """The re-examination asks what the planner would do, so unchanged passes write nothing."""
    wid, _ = _schedule_in_fr(daily, zones=("FR", "DE"))
    with daily.sessions.begin() as s:
        s.get(ComputeNode, "fr-par-h100").status = "offline"
        s.get(ComputeNode, "de-fra-h100").status = "maintenance"
    (r,) = run_once(daily, saver)
    assert r["states"][-1] == "ESCALATED"
    for hours in (1, 2):
        assert run_once(replace(daily, clock=FixedClock(T0 + hours * HOUR)), saver) == []
    assert _escalations(daily) == [("MONITORING", 0), ("ESCALATED", 0)]
    with daily.sessions.begin() as s:
        s.get(ComputeNode, "de-fra-h100").status = "online"
    (moved,) = run_once(replace(daily, clock=FixedClock(T0 + 3 * HOUR)), saver)
    assert moved["id"] == r["id"] and moved["states"][-1] == "RESOLVED"
    assert run_once(replace(daily, clock=FixedClock(T0 + 4 * HOUR)), saver) == []
    assert [e for e in _escalations(daily) if e[0] == "ESCALATED"] == [("ESCALATED", 0)]
    with daily.sessions() as s:
        assert s.get(ComputeNode, s.get(Workload, wid).node_id).zone == "DE"
