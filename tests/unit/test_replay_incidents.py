"""Incident replays: recorded days with injected events end with every workload where expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.cli import app as evals_app
from evals.incident_replay import ExpectedIncident, ExpectedWorkload, check_day, load_days


def test_days_validate_and_cover_each_event_kind():
    days = load_days()
    kinds = {e.kind for d in days for e in d.events}
    assert {"carbon_spike", "price_spike", "curtailment", "node_down", "node_up"} <= kinds
    for day in days:
        assert set(day.expected_workloads) == {w.name for w in day.workloads}


@pytest.mark.slow
def test_every_day_replays_to_its_expected_end_state(grid_dir: Path):
    result = CliRunner().invoke(evals_app, ["incidents", "--grid-dir", str(grid_dir), "--json"])
    assert result.exit_code == 0, result.output
    days = {d["id"]: d for d in json.loads(result.stdout)}
    assert all(d["passed"] for d in days.values()), {k: d["problems"] for k, d in days.items()}
    june = days["day_2023_06_01"]
    spike = next(i for i in june["incidents"] if i["trigger"] == "carbon_spike")
    assert spike["states"] == [
        "MONITORING",
        "ANOMALY_DETECTED",
        "EVALUATING",
        "ADAPTING",
        "RESOLVED",
    ]
    assert [m["outcome"] for m in spike["reroutes"]] == ["rerouted"]
    assert june["workloads"]["eu-finetune"]["zone"] != "FR"
    # The NL node stays down from 10:00: one incident for the whole episode, ESCALATED once
    # and reported only when it changed (not once per hourly pass).
    (offline,) = [i for i in june["incidents"] if i["trigger"] == "node_offline"]
    assert offline["states"] == [
        "MONITORING",
        "ANOMALY_DETECTED",
        "EVALUATING",
        "ADAPTING",
        "ESCALATED",
    ]
    assert june["workloads"]["nl-batch"]["status"] == "routed"


def test_check_reports_each_broken_expectation():
    day = load_days()[0]
    facts = {
        name: {"status": "routed", "node_id": "fr-par-h100", "zone": "FR", "reroutes": 3}
        for name in day.expected_workloads
    }
    facts["extra"] = {"status": "routed", "node_id": None, "zone": None, "reroutes": 0}
    broken = day.model_copy(
        update={
            "expected_workloads": {
                **day.expected_workloads,
                "eu-finetune": ExpectedWorkload(status="running", not_node="fr-par-h100"),
            },
            "expected_incidents": [ExpectedIncident(trigger="surplus", zone="IT")],
        }
    )
    problems = check_day(broken, facts, reports=[])
    assert "eu-finetune: status 'routed', expected 'running'" in problems
    assert "eu-finetune: still on 'fr-par-h100'" in problems
    assert any("without an expected end state" in p for p in problems)
    assert "no RESOLVED surplus incident in IT" in problems


def test_check_counts_incidents_by_their_last_report_and_names_stuck_work():
    day = load_days()[0].model_copy(update={"expected_workloads": {}})
    expected = ExpectedIncident(
        trigger="node_offline", zone="NL", state="ESCALATED", count=1, stuck=["nl-batch"]
    )
    day = day.model_copy(update={"expected_incidents": [expected]})

    def rep(inc_id, state, reason):
        return {
            "id": inc_id,
            "trigger": "node_offline",
            "zone": "NL",
            "state": state,
            "transitions": [{"reason": reason}],
        }

    stuck = rep("a", "ESCALATED", "nl-batch (wl_1) stays on nl-ams-h100 (offline)")
    assert check_day(day, {}, [stuck]) == []
    # Later passes that resolve the same incident replace its end state.
    assert check_day(day, {}, [stuck, rep("a", "RESOLVED", "back")]) == [
        "no ESCALATED node_offline incident in NL",
        "'nl-batch' not named as stuck by the node_offline incident",
    ]
    assert check_day(day, {}, [stuck, rep("b", "RESOLVED", "kept")]) == [
        "2 node_offline incident(s) in NL, expected 1"
    ]
    assert check_day(day, {}, [rep("a", "ESCALATED", "something else")]) == [
        "'nl-batch' not named as stuck by the node_offline incident"
    ]
