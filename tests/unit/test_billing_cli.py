import json

import pytest
from typer.testing import CliRunner

from ui.cli import app

AT = "2023-06-01T12:00:00Z"


@pytest.fixture
def tgtg(tmp_path, monkeypatch):
    monkeypatch.setenv("TGTG_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    run("seed", "--at", AT, "--json")
    return run


def _route(tgtg, *extra):
    out = json.loads(tgtg("route", "--at", AT, "--json", *extra))
    return out


def test_complete_all_bills_pays_gamers_and_mints_verifiable_receipts(tgtg):
    _route(tgtg, "--gpus", "1", "--hours", "3", "--gpu-model", "RTX4090")
    _route(tgtg, "--gpus", "1", "--hours", "2", "--gpu-model", "RTX4090", "--org", "nordlicht")
    _route(tgtg, "--gpus", "4", "--hours", "2")
    report = json.loads(tgtg("workloads", "complete", "--all", "--at", AT, "--json"))
    assert len(report["completed"]) == 3 and len(report["settled"]) == 3
    assert report["stripe"] == "demo" and report["chain"] == "local chain"
    assert report["trial_balance"] == 0
    paid = [r for r in report["settled"] if r.get("payout")]
    assert paid and all(r["payout"]["status"] == "posted" for r in paid)
    for r in report["settled"]:
        s = r["settlement"]
        assert s["fee_minor"] + s["provider_share_minor"] == s["gross_minor"] > 0
        rid = s["receipt"]["id"]
        verdict = json.loads(tgtg("receipts", "verify", rid, "--json"))
        assert verdict["valid"] and verdict["memo"].startswith(f"cr1:{rid}:")
    balance = json.loads(tgtg("ledger", "balance", "--json"))
    assert balance["trial_balance"] == 0 and balance["unbalanced_transactions"] == []
    by_org = json.loads(tgtg("profitability", "--by", "org", "--json"))
    assert {r["key"] for r in by_org} == {"acme-ai", "nordlicht"}
    assert sum(r["fee_minor"] for r in by_org) == sum(
        r["settlement"]["fee_minor"] for r in report["settled"]
    )
    signals = json.loads(tgtg("profitability", "--signals", "--json"))
    assert len(signals) == 3 and len({s["idempotency_key"] for s in signals}) == 3
    assert all(s["margin_minor"] == s["revenue_minor"] - s["cost_minor"] for s in signals)
    again = json.loads(tgtg("workloads", "complete", "--all", "--at", AT, "--json"))
    assert again["completed"] == [] and again["settled"] == []
    assert json.loads(tgtg("ledger", "balance", "--json")) == balance


def test_big_payouts_pause_for_approval_and_resume_once(tgtg, monkeypatch):
    monkeypatch.setenv("TGTG_PAYOUT_APPROVAL_THRESHOLD_MINOR", "10")
    _route(tgtg, "--gpus", "1", "--hours", "3", "--gpu-model", "RTX4090")
    _route(tgtg, "--gpus", "1", "--hours", "2", "--gpu-model", "RTX4090", "--org", "nordlicht")
    report = json.loads(tgtg("workloads", "complete", "--all", "--at", AT, "--json"))
    waiting = report["awaiting_approval"]
    assert len(waiting) == 2
    listed = json.loads(tgtg("payouts", "--status", "awaiting_approval", "--json"))
    assert sorted(p["id"] for p in listed) == sorted(waiting)
    approved = json.loads(tgtg("payouts", "--approve", waiting[0], "--json"))
    assert approved["status"] == "posted" and approved["approved_by"] == "cli"
    rejected = json.loads(tgtg("payouts", "--reject", waiting[1], "--json"))
    assert rejected["status"] == "rejected"
    err = tgtg("payouts", "--approve", waiting[0], code=2)
    assert "'posted'" in err
    assert json.loads(tgtg("ledger", "balance", "--json"))["trial_balance"] == 0


def test_bad_input_names_the_value(tgtg):
    assert "'wl_nope'" in tgtg("workloads", "complete", "wl_nope", code=2)
    assert "not both" in tgtg("workloads", "complete", code=2)
    assert "'cr_nope'" in tgtg("receipts", "verify", "cr_nope", code=2)


def test_signals_go_to_paid_ai_when_its_key_is_set(tgtg, monkeypatch):
    from tests.fakes import FakeHTTPServer, Reply

    _route(tgtg, "--gpus", "1", "--hours", "2", "--gpu-model", "RTX4090")
    tgtg("workloads", "complete", "--all", "--at", AT, "--json")
    received = []

    def paid(req):
        received.extend(req.body["usageRecords"])
        return Reply(200, {})

    with FakeHTTPServer(paid) as server:
        monkeypatch.setenv("TGTG_PAID_API_KEY", "pk_test")
        monkeypatch.setenv("TGTG_PAID_BASE_URL", server.url)
        out = json.loads(tgtg("profitability", "--signals", "--json"))
    assert out["sent"] == {"sent": 1, "failed": 0, "errors": []}
    assert out["signals"][0]["mode"] == "paid.ai"
    assert [r["idempotency_key"] for r in received] == [out["signals"][0]["idempotency_key"]]
