"""What `tgtg` prints for people: whole ids at 80 columns, money with its currency, true
`db upgrade` messages, and totals that do not depend on the grouping."""

import json
import re

import pytest
from typer.testing import CliRunner

from store.db import make_engine
from store.migrate import upgrade
from tools.money.amounts import format_money
from ui.cli import app

AT = "2023-06-01T12:00:00Z"


@pytest.fixture
def tgtg(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    base = ["--database-url", url, "--data-dir", str(tmp_path)]
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(app, [*base, *args])
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result.stdout

    run.url = url
    return run


@pytest.fixture
def billed(tgtg):
    """Three routed workloads (one on a gamer node), completed and settled."""
    tgtg("seed", "--at", AT)
    for args in (
        ["--gpus", "1", "--hours", "3", "--gpu-model", "RTX 4090", "--name", "gamer job"],
        ["--gpus", "1", "--hours", "2", "--gpu-model", "RTX4090", "--org", "nordlicht"],
        ["--gpus", "4", "--hours", "6", "--name", "Mistral fine-tune with a long name"],
    ):
        tgtg("route", "--at", AT, "--json", *args)
    tgtg("workloads", "complete", "--all", "--at", AT)
    return tgtg


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1234, "EUR", "€12.34"),
        (5, "usd", "$0.05"),
        (-120, "EUR", "-€1.20"),
        (123456789, "GBP", "£1,234,567.89"),
        (700, "CHF", "CHF 7.00"),
        (500, "JPY", "JPY 500"),
        (0, "EUR", "€0.00"),
    ],
)
def test_money_reads_with_its_currency_and_exact_digits(minor, currency, text):
    assert format_money(minor, currency) == text


def test_workloads_at_80_columns_print_every_id_whole(billed):
    listed = json.loads(billed("workloads", "--json"))
    out = billed("workloads")
    assert max(len(line) for line in out.splitlines()) <= 80
    for w in listed:
        assert re.search(rf"^{w['id']}\s", out, re.MULTILINE), out
        assert w["node_id"] in out
    assert "…" not in out


def test_wide_prints_each_row_on_one_line(billed):
    out = billed("--wide", "workloads")
    assert re.search(r"wl_\w+\s+Mistral fine-tune with a long name\s+completed", out), out


def test_payouts_and_profitability_show_money_with_its_currency(billed):
    payouts = json.loads(billed("payouts", "--json"))
    assert payouts, "the gamer node's workload is paid"
    out = billed("payouts")
    for p in payouts:
        assert p["id"] in out and format_money(p["amount_minor"], p["currency"]) in out
    lines = json.loads(billed("profitability", "--json"))
    out = billed("profitability")
    for line in lines:
        assert format_money(line["margin_minor"], line["currency"]) in out
    assert "€" in billed("nodes") and "€" in billed("ledger", "balance")
    assert "the books balance" in billed("ledger", "balance")


def test_totals_are_the_same_whatever_the_grouping(billed):
    totals = set()
    for by in ("workload", "org", "node"):
        lines = json.loads(billed("profitability", "--by", by, "--json"))
        totals.add(
            tuple(
                sum(line[k] for line in lines)
                for k in ("gross_minor", "fee_minor", "chain_cost_minor", "margin_minor")
            )
        )
    assert len(totals) == 1, totals


def test_db_upgrade_says_what_it_did(tgtg, tmp_path):
    created = tgtg("db", "upgrade")
    assert "created" in created and "now at revision" in created, created
    assert "already at the newest schema" in tgtg("db", "upgrade")
    assert json.loads(tgtg("db", "upgrade", "--json"))["upgraded"] is False


def test_db_upgrade_from_an_older_schema_names_both_revisions(tgtg):
    engine = make_engine(tgtg.url)
    upgrade(engine, "0006")
    engine.dispose()
    out = json.loads(tgtg("db", "upgrade", "--json"))
    assert out["upgraded"] is True and out["from_revision"] == "0006"
    assert out["applied"][0] == "0007" and out["applied"][-1] == out["to_revision"]
    assert "0006" not in out["applied"]


def test_node_status_takes_a_node_offline_and_refuses_bad_values(tgtg):
    tgtg("seed", "--at", AT)
    assert tgtg("node-status", "fr-par-h100", "offline").strip() == "fr-par-h100: offline"
    nodes = {n["id"]: n["status"] for n in json.loads(tgtg("nodes", "--json"))}
    assert nodes["fr-par-h100"] == "offline"
    assert json.loads(tgtg("node-status", "fr-par-h100", "online", "--json"))["status"] == "online"
    tgtg("node-status", "fr-par-h100", "down", code=2)
    tgtg("node-status", "nope", "offline", code=2)
    nodes = {n["id"]: n["status"] for n in json.loads(tgtg("nodes", "--json"))}
    assert nodes["fr-par-h100"] == "online"
