"""`tgtg seed --reset` keeps the books: it refuses while money rows exist unless --wipe-ledger."""

import json

import pytest
from sqlalchemy import MetaData, func, select, text
from typer.testing import CliRunner

from ui.cli import app

AT = "2023-06-01T12:00Z"


def _cli_url(engine):
    """The fixture database as a URL the CLI can open (PostgreSQL: its schema on the path)."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = conn.execute(text("select current_schema()")).scalar_one()
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    return url


def _counts(engine):
    meta = MetaData()
    meta.reflect(bind=engine)
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for name, t in meta.tables.items()
            if name != "alembic_version"
        }


@pytest.fixture
def tgtg(engine, tmp_path):
    base = ["--database-url", _cli_url(engine), "--data-dir", str(tmp_path)]
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(app, [*base, *args])
        assert result.exit_code == code, (result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
        return result

    return run


def _settle_some_work(tgtg):
    tgtg("seed", "--at", AT)
    tgtg("route", "--gpus", "1", "--hours", "3", "--gpu-model", "RTX4090", "--at", AT)
    tgtg("route", "--gpus", "4", "--hours", "2", "--at", AT)
    report = json.loads(tgtg("workloads", "complete", "--all", "--at", AT, "--json").stdout)
    assert any(r.get("payout") for r in report["settled"])


def test_reset_refuses_while_the_ledger_holds_rows_and_leaves_them(tgtg, engine):
    _settle_some_work(tgtg)
    before = _counts(engine)
    entries, payouts = before["ledger_entries"], before["payout_intents"]
    assert entries > 0 and payouts > 0

    result = tgtg("seed", "--reset", "--at", AT, code=2)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --reset refused: the database holds ")
    assert f"{entries} ledger entries" in line
    assert f"{payouts} payout{'s' if payouts != 1 else ''}" in line
    assert "--reset --wipe-ledger" in line
    assert _counts(engine) == before

    json_result = tgtg("seed", "--reset", "--json", "--at", AT, code=2)
    assert json_result.stdout == "" and _counts(engine) == before


def test_wipe_ledger_deletes_and_reports_what_each_table_held(tgtg, engine):
    _settle_some_work(tgtg)
    before = _counts(engine)

    out = json.loads(tgtg("seed", "--reset", "--wipe-ledger", "--at", AT, "--json").stdout)
    assert out["reset"] is True
    assert out["deleted"] == before
    assert out["organizations_added"] == 13 and out["nodes_added"] == 14
    after = _counts(engine)
    assert after["ledger_entries"] == after["payout_intents"] == after["carbon_receipts"] == 0
    assert after["organizations"] == 13

    # Without money rows a plain reset proceeds and says what it deleted.
    text_out = tgtg("seed", "--reset", "--at", AT).stdout
    assert "reset: deleted " in text_out
    assert f"{after['compute_nodes']} compute_nodes" in text_out
    assert f"{after['organizations']} organizations" in text_out
