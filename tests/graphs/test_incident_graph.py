from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

import graphs.incident
from graphs.checkpoint import incident_thread, open_checkpointer
from graphs.incident import build_incident_graph
from graphs.incident_watch import run_once, scan
from store.incident_models import AlertEvent, IncidentOutbox
from store.models import ComputeNode, Workload
from tests.graphs.conftest import T0
from tools.broker.routing import JobSpec, route_workload, submit_workload
from tools.clock import FixedClock
from tools.incidents.detection import (
    CARBON_SPIKE_MIN,
    add_spike,
    detect_anomalies,
    grid_with_overrides,
)
from tools.incidents.ports import AlertDeliveryError
from tools.integrations.incidentio import DemoAlerts

FIVE = ["MONITORING", "ANOMALY_DETECTED", "EVALUATING", "ADAPTING", "RESOLVED"]


def _route_fr_job(sessions, grid) -> str:
    with sessions.begin() as s:
        spec = JobSpec(
            gpu_count=4, gpu_model="H100", duration_hours=6, allowed_zones=["FR", "NL", "DE"]
        )
        wl = submit_workload(session=s, org_id="acme-ai", name="ft", spec=spec, now=T0)
        decision = route_workload(session=s, grid=grid, workload_id=wl.id, now=T0)
    assert decision.node_id == "fr-par-h100"
    return wl.id


def _spike(sessions, factor, price_factor=1.0):
    with sessions.begin() as s:
        add_spike(
            session=s,
            zone="FR",
            carbon_factor=factor,
            price_factor=price_factor,
            hours=6,
            reason="test",
            now=T0,
        )


@pytest.fixture
def saver(sqlite_engine):
    with open_checkpointer(sqlite_engine) as cp:
        yield cp


def test_carbon_spike_runs_five_states_and_reroutes_once(ctx, sessions, saver):
    wid = _route_fr_job(sessions, ctx.grid)
    _spike(sessions, 20)
    reports = run_once(ctx, saver)
    assert len(reports) == 1
    r = reports[0]
    assert r["trigger"] == "carbon_spike" and r["zone"] == "FR"
    assert r["states"] == FIVE
    assert all(t["reason"] and t["at"] for t in r["transitions"])
    assert (
        "20x" not in r["transitions"][1]["reason"]
        and "threshold 1.5x" in r["transitions"][1]["reason"]
    )
    assert [(m["workload_id"], m["outcome"], m["from_node_id"]) for m in r["reroutes"]] == [
        (wid, "rerouted", "fr-par-h100")
    ]
    with sessions() as s:
        wl = s.get(Workload, wid)
        assert wl.node_id == r["reroutes"][0]["to_node_id"] != "fr-par-h100"
        assert wl.reroute_count == 1
        alerts = s.scalars(select(AlertEvent).order_by(AlertEvent.id)).all()
        assert [(a.deduplication_key, a.status, a.delivery) for a in alerts] == [
            (r["id"], "firing", "demo"),
            (r["id"], "resolved", "demo"),
        ]
    # A second pass finds nothing new: the workload left FR.
    assert run_once(ctx, saver) == []


def test_small_spike_keeps_the_workload_and_still_records_every_state(ctx, sessions, saver):
    wid = _route_fr_job(sessions, ctx.grid)
    _spike(sessions, 3)
    (r,) = run_once(ctx, saver)
    assert r["states"] == FIVE
    assert [m["outcome"] for m in r["reroutes"]] == ["kept"]
    with sessions() as s:
        assert s.get(Workload, wid).node_id == "fr-par-h100"


def test_thresholds_are_ratio_and_minimum(ctx, sessions):
    _route_fr_job(sessions, ctx.grid)
    _spike(sessions, 1.4)
    with sessions() as s:
        grid = grid_with_overrides(session=s, grid=ctx.grid, now=T0)
        assert detect_anomalies(session=s, grid=grid, now=T0) == []
        base = ctx.grid.reading("FR", T0).carbon_intensity
    assert base * 1.4 < CARBON_SPIKE_MIN  # FR is clean: even 1.4x stays under the floor


def test_no_active_work_means_no_incident(ctx, sessions, saver):
    _spike(sessions, 20)
    assert run_once(ctx, saver) == []


def test_anomaly_that_clears_goes_straight_to_resolved(ctx, sessions, saver):
    wid = _route_fr_job(sessions, ctx.grid)
    _spike(sessions, 20)
    (incident_id,) = scan(ctx)
    with sessions.begin() as s:  # the work finishes before anyone evaluates the incident
        wl = s.get(Workload, wid)
        wl.status = "completed"
    (r,) = run_once(ctx, saver)
    assert r["id"] == incident_id and r["states"] == ["MONITORING", "RESOLVED"]
    assert r["reroutes"] == []


def test_node_offline_fails_over_without_the_25_percent_rule(ctx, sessions, saver):
    wid = _route_fr_job(sessions, ctx.grid)
    with sessions.begin() as s:
        s.get(ComputeNode, "fr-par-h100").status = "offline"
    (r,) = run_once(ctx, saver)
    assert r["trigger"] == "node_offline" and r["states"] == FIVE
    assert r["reroutes"][0]["outcome"] == "rerouted"
    with sessions() as s:
        assert s.get(Workload, wid).node_id != "fr-par-h100"


class FlakyAlerts(DemoAlerts):
    """Fails the first 'resolved' delivery, as an incident.io outage would."""

    def __init__(self):
        self.failed = False

    def deliver(self, event):
        if event.status == "resolved" and not self.failed:
            self.failed = True
            raise AlertDeliveryError("incident.io unavailable")
        return super().deliver(event)


class PowerCut(RuntimeError):
    """The process dies here."""


def test_resume_after_crash_repeats_no_reroute(ctx, sessions, sqlite_engine, monkeypatch):
    wid = _route_fr_job(sessions, ctx.grid)
    _spike(sessions, 20)
    real = graphs.incident.template_summary
    cuts = iter([True])

    def crash_once(**kw):  # dies inside RESOLVED, after the reroute committed
        if next(cuts, False):
            raise PowerCut("killed inside RESOLVED")
        return real(**kw)

    monkeypatch.setattr(graphs.incident, "template_summary", crash_once)
    with open_checkpointer(sqlite_engine) as saver:
        with pytest.raises(PowerCut):
            run_once(ctx, saver)
    with sessions() as s:
        assert s.get(Workload, wid).reroute_count == 1
    # A new process: fresh checkpointer connection, same database.
    with open_checkpointer(sqlite_engine) as saver:
        graph = build_incident_graph(checkpointer=saver)
        with sessions() as s:
            from store.incident_repo import list_incidents

            (inc,) = list_incidents(session=s)
            assert inc.state == "ADAPTING" and inc.claimed_by is None  # released on the way out
        cfg = {"configurable": {"thread_id": incident_thread(inc.id)}}
        assert graph.get_state(cfg).next == ("resolved",)
        (r,) = run_once(ctx, saver)
    assert r["states"] == FIVE and len(r["reroutes"]) == 1
    with sessions() as s:
        assert s.get(Workload, wid).reroute_count == 1
        alerts = s.scalars(select(AlertEvent).order_by(AlertEvent.id)).all()
        assert [a.status for a in alerts] == ["firing", "resolved"]


def test_curtailment_pulls_routed_work_in(ctx, sessions, saver):
    class Curtailing:
        name = ctx.grid.name

        def reading(self, zone, at):
            r = ctx.grid.reading(zone, at)
            if zone == "NL":
                return r.model_copy(
                    update={
                        "curtailment": True,
                        "surplus": True,
                        "carbon_intensity": 5.0,
                        "price_eur_per_mwh": -10.0,
                    }
                )
            return r

        def series(self, zone, start, hours):
            return [self.reading(zone, r.ts) for r in ctx.grid.series(zone, start, hours)]

    with sessions.begin() as s:
        spec = JobSpec(gpu_count=2, gpu_model="H100", duration_hours=6, allowed_zones=["DE", "NL"])
        wl = submit_workload(session=s, org_id="acme-ai", name="flex", spec=spec, now=T0)
        s.flush()
        s.get(Workload, wl.id).allowed_zones = ["DE"]
        route_workload(session=s, grid=ctx.grid, workload_id=wl.id, now=T0)
        s.get(Workload, wl.id).allowed_zones = ["DE", "NL"]
    (r,) = run_once(replace(ctx, grid=Curtailing()), saver)
    assert r["trigger"] == "surplus" and r["zone"] == "NL" and r["states"] == FIVE
    assert (
        r["reroutes"][0]["outcome"] == "rerouted"
        and r["reroutes"][0]["to_node_id"] == "nl-ams-h100"
    )


def test_overrides_apply_once_even_when_wrapped_twice(ctx, sessions):
    _spike(sessions, 3)
    raw = ctx.grid.reading("FR", T0).carbon_intensity
    with sessions() as s:
        once = grid_with_overrides(session=s, grid=ctx.grid, now=T0)
        twice = grid_with_overrides(session=s, grid=once, now=T0)
    assert once.reading("FR", T0).carbon_intensity == pytest.approx(raw * 3)
    assert twice.reading("FR", T0).carbon_intensity == pytest.approx(raw * 3)
    assert twice.reading("DE", T0) == ctx.grid.reading("DE", T0)


def test_an_alert_outage_delays_the_alert_never_the_incident(ctx, sessions, saver):
    from graphs.incident_watch import watch

    wid = _route_fr_job(sessions, ctx.grid)
    _spike(sessions, 20)
    flaky = FlakyAlerts()
    # Passes at T0, T0 (the retry is not due yet) and T0 + 31 s (it is).
    contexts = iter(
        replace(ctx, alerts=flaky, clock=FixedClock(T0 + timedelta(seconds=s))) for s in (0, 0, 31)
    )
    passes = []
    outbox = []

    def after(reports):
        passes.append(reports)
        with sessions() as s:
            rows = s.scalars(select(IncidentOutbox).order_by(IncidentOutbox.id)).all()
            outbox.append([(r.kind, r.payload["event"]["status"], r.status) for r in rows])

    watch(lambda: next(contexts), saver, interval_s=0, iterations=3, on_pass=after)
    (r,) = passes[0]  # the incident resolved although incident.io was down
    assert r["states"] == FIVE and len(r["reroutes"]) == 1
    assert passes[1:] == [[], []]
    assert outbox == [
        [("alert", "firing", "done"), ("alert", "resolved", "pending")],
        [("alert", "firing", "done"), ("alert", "resolved", "pending")],
        [("alert", "firing", "done"), ("alert", "resolved", "done")],
    ]
    with sessions() as s:
        assert s.get(Workload, wid).reroute_count == 1
        alerts = s.scalars(select(AlertEvent).order_by(AlertEvent.id)).all()
        assert [(a.status, a.created_at) for a in alerts] == [
            ("firing", T0),
            ("resolved", T0 + timedelta(seconds=31)),
        ]
