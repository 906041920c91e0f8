"""The acceptance path through `tgtg`: recommend, route it, spike, incidents run-once."""

import json

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from store.db import make_engine
from store.models import Workload
from ui.cli import app

ASK = "Where should I run a 4xH100 fine-tune for 6 hours, EU only, done within 24 hours?"
EU = {"FR", "DE", "ES", "PT", "NL", "BE", "IT"}
CLOCK = "2026-11-26T10:00:00Z"
"""Every command's clock (TGTG_CLOCK_START): the result never depends on the hour tests run."""


@pytest.fixture
def tgtg(tmp_path, monkeypatch):
    monkeypatch.setenv("TGTG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TGTG_CLOCK_START", CLOCK)
    monkeypatch.setenv("TGTG_CLOCK_SPEED", "0.000001")  # as good as standing still
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    run.db = tmp_path / "tgtg.db"
    return run


def _workloads(db):
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(Workload)).scalar_one()
    engine.dispose()
    return n


def test_recommend_route_spike_and_incident(tgtg):
    first = json.loads(tgtg("chat", ASK, "--json"))
    assert first["zone"] in EU and first["node"] and first["tool_calls"] == ["recommend_placement"]
    assert "score" in first["answer"] and "carbon-agnostic" in first["answer"]
    assert first["written"] is False and _workloads(tgtg.db) == 0

    asked = json.loads(tgtg("chat", "route it", "--thread", first["thread"], "--json"))
    assert asked["pending_approval"]["tool"] == "route_workload" and asked["written"] is False
    assert _workloads(tgtg.db) == 0
    second = json.loads(tgtg("chat", "--thread", first["thread"], "--approve", "--json"))
    assert second["tool_calls"] == ["route_workload"] and second["written"] is True
    assert second["zone"] in EU and second["thread"] == first["thread"]
    assert _workloads(tgtg.db) == 1

    spike = json.loads(tgtg("grid", "spike", "--zone", second["zone"], "--factor", "20", "--json"))
    assert spike["carbon_factor"] == 20
    (incident,) = json.loads(tgtg("incidents", "run-once", "--json", "--worker-id", "t"))
    assert incident["zone"] == second["zone"]
    assert incident["states"] == [
        "MONITORING",
        "ANOMALY_DETECTED",
        "EVALUATING",
        "ADAPTING",
        "RESOLVED",
    ]
    (move,) = incident["reroutes"]
    assert move["outcome"] == "rerouted" and move["from_node_id"] == second["node"]
    listed = json.loads(tgtg("incidents", "list", "--json"))
    assert [i["id"] for i in listed] == [incident["id"]]


def test_book_by_chat_approve_once_and_reject_on_another_thread(tgtg):
    rec = json.loads(tgtg("chat", ASK, "--json"))
    thread = rec["thread"]
    asked = json.loads(tgtg("chat", "yes, go ahead and book it", "--thread", thread, "--json"))
    pending = asked["pending_approval"]
    assert pending["tool"] == "route_workload" and set(pending["args"]) == {"recommendation_id"}
    assert {"node_id", "zone", "start", "gpu_count", "duration_hours", "co2_kg", "cost_minor"} <= (
        pending["summary"].keys()
    )
    assert pending["summary"]["node_id"] == rec["node"] and _workloads(tgtg.db) == 0

    approved = json.loads(tgtg("chat", "--thread", thread, "--approve", "--by", "ana", "--json"))
    assert approved["written"] is True and approved["decision"]["by"] == "ana"
    assert approved["workload"]["node_id"] == rec["node"] and _workloads(tgtg.db) == 1
    again = json.loads(tgtg("chat", "--thread", thread, "--approve", "--json"))
    assert (
        again["already_decided"] is True and again["workload"]["id"] == approved["workload"]["id"]
    )
    assert _workloads(tgtg.db) == 1

    other = json.loads(tgtg("chat", ASK, "--json"))
    tgtg("chat", "book it", "--thread", other["thread"])
    text = tgtg("chat", "--thread", other["thread"], "--reject", "too expensive")
    assert "rejected by" in text and "too expensive" in text
    assert _workloads(tgtg.db) == 1


def test_approval_flags_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("TGTG_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    result = runner.invoke(app, ["chat", "--approve"])
    assert result.exit_code == 2 and "--thread" in result.output
    result = runner.invoke(app, ["chat", "--thread", "t", "--approve", "--reject"])
    assert result.exit_code == 2 and "not both" in result.output
    result = runner.invoke(app, ["chat", "--thread", "nothing-here", "--reject", "no"])
    assert result.exit_code == 2 and "nothing is waiting for approval" in result.output


def test_bad_input_exits_2_naming_the_value(tmp_path, monkeypatch):
    monkeypatch.setenv("TGTG_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["grid", "spike", "--zone", "XX", "--factor", "3"])
    assert result.exit_code == 2 and "'XX'" in result.output
    result = CliRunner().invoke(app, ["chat", "  "])
    assert result.exit_code == 2 and "empty" in result.output


def test_misconfigured_model_endpoint_fails_fast_naming_the_setting(tmp_path, monkeypatch):
    from tests.fakes import FakeHTTPServer, Reply, models_list

    with FakeHTTPServer(lambda r: Reply(200, models_list("served/model"))) as server:
        monkeypatch.setenv("TGTG_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("TGTG_LLM_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("TGTG_LLM_API_KEY", "sk-test")
        monkeypatch.setenv("TGTG_LLM_MODEL", "missing/model")
        result = CliRunner().invoke(app, ["chat", "compare zones now", "--json"])
    assert result.exit_code == 2
    assert "TGTG_LLM_MODEL" in result.output and "served/model" in result.output


def test_a_model_timing_out_on_the_summary_never_fails_run_once(tgtg, monkeypatch):
    """A real, slow model endpoint: the escalation summary times out; the pass still succeeds."""
    from tests.fakes import FakeHTTPServer, Reply, completion, models_list

    def slow(req):
        if req.path.endswith("/models"):
            return Reply(200, models_list("served/model"))
        return Reply(200, completion("too late"), delay_s=1)

    tgtg("seed", "--at", CLOCK, "--json")
    routed = json.loads(
        tgtg(
            "route",
            "--gpus",
            "2",
            "--hours",
            "4",
            "--gpu-model",
            "H100",
            "--zones",
            "NL",
            "--at",
            CLOCK,
            "--json",
        )
    )
    tgtg("grid", "spike", "--zone", "NL", "--factor", "20", "--at", CLOCK, "--json")
    with FakeHTTPServer(slow) as server:
        monkeypatch.setenv("TGTG_LLM_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("TGTG_LLM_API_KEY", "sk-test")
        monkeypatch.setenv("TGTG_LLM_MODEL", "served/model")
        monkeypatch.setenv("TGTG_LLM_TIMEOUT_S", "0.3")
        monkeypatch.setenv("TGTG_LLM_MAX_RETRIES", "0")
        (incident,) = json.loads(tgtg("incidents", "run-once", "--json"))
        asked = [r.path for r in server.requests if r.path.endswith("/chat/completions")]
    assert incident["state"] == "ESCALATED" and len(asked) == 1
    assert routed["workload_id"] in incident["summary"]  # the template summary, for now
    assert incident["summary"].startswith("carbon spike in NL: 1 workload(s) evaluated")


def test_incident_status_in_chat(tgtg):
    out = json.loads(tgtg("chat", "any incidents?", "--json"))
    assert out["tool_calls"] == ["incident_status"]
    assert "No incidents" in out["answer"]
