"""Every `tgtg` failure a person can fix: exit 2, one line on stderr naming the value, no traceback;
and every `--json` output is strict JSON."""

import json
import sqlite3
import subprocess
import sys
from importlib.util import find_spec

import pytest
import typer.main
from typer.testing import CliRunner

from tests.conftest import PG_URL, pg_problem
from ui.cli import app

AT = "2023-06-01T12:00Z"
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:9/test"


def _invoke(*args, env=None):
    return CliRunner().invoke(app, list(args), env=env)


def _one_line_error(result, *fragments):
    """Assert exit 2 with exactly one `error:` line on stderr holding every fragment."""
    output = result.stdout + result.stderr
    assert result.exit_code == 2, output
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def local(tmp_path):
    """Run `tgtg` on a fresh SQLite database under tmp_path."""
    base = ["--data-dir", str(tmp_path)]
    return lambda *args, env=None: _invoke(*base, *args, env=env)


# --- the database: URL, server, login, revision ------------------------------------------------

# Commands that touch the store; each must report a database problem the same way.
STORE_COMMANDS = [
    ["nodes"],
    ["node-status", "fr-par-h100", "offline"],
    ["orgs"],
    ["seed", "--at", AT],
    ["db", "upgrade"],
    ["grid", "--zone", "FR", "--at", AT],
    ["grid", "ingest", "--zone", "FR", "--hours", "1", "--at", AT],
    ["grid", "spike", "--zone", "FR", "--at", AT],
    ["route", "--gpus", "1", "--hours", "1", "--at", AT],
    ["workloads"],
    ["workloads", "start", "wl_x"],
    ["workloads", "reroute", "wl_x"],
    ["workloads", "complete", "--all", "--at", AT],
    ["ledger", "balance"],
    ["ledger", "owed", "acme-ai"],
    ["payouts"],
    ["payouts", "--approve", "po_x"],
    ["receipts"],
    ["receipts", "verify", "cr_x"],
    ["profitability"],
    ["billing-worker", "--at", AT],
    ["incidents", "list"],
    ["incidents", "run-once"],
    ["chat", "compare zones now"],
]


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=" ".join)
def test_an_unreachable_server_is_one_line_for_every_store_command(tmp_path, command):
    result = _invoke("--data-dir", str(tmp_path), "--database-url", UNREACHABLE, *command)
    _one_line_error(result, f"database '{UNREACHABLE}'", "cannot reach the server", "refused")


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("bogus", ["database 'bogus' is not a database URL", "sqlite:///"]),
        ("postgresql+nope://u@h/d", ["unknown database driver 'postgresql+nope'"]),
        ("sqlite:////etc/hostname", ["'sqlite:////etc/hostname'", "file is not a database"]),
    ],
)
def test_a_bad_database_url_names_it(tmp_path, url, fragments):
    result = _invoke("--data-dir", str(tmp_path), "--database-url", url, "nodes")
    _one_line_error(result, *fragments)


@pytest.mark.skipif(find_spec("MySQLdb") is not None, reason="the MySQL driver is installed")
def test_a_missing_driver_is_named_and_the_password_hidden(tmp_path):
    url = "mysql://app:hunter2@127.0.0.1/tgtg"
    result = _invoke("--data-dir", str(tmp_path), "--database-url", url, "workloads")
    line = _one_line_error(result, "'mysql://app:***@127.0.0.1/tgtg'", "driver", "MySQLdb")
    assert "hunter2" not in line


def test_a_data_dir_that_is_a_file_is_named(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = _invoke("--data-dir", str(blocker), "nodes")
    _one_line_error(result, f"cannot create '{blocker}'", "--data-dir")


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("user", "database", "fragments"),
    [
        (
            "tgtg_no_such_role:hunter2",
            "test",
            ["the server refused the login", 'role "tgtg_no_such_role"', "tgtg_no_such_role:***@"],
        ),
        ("postgres", "tgtg_no_such_db", ['database "tgtg_no_such_db" does not exist', "create it"]),
    ],
)
def test_a_refused_login_or_missing_database_is_named(tmp_path, user, database, fragments):
    if pg_problem():
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
    host = PG_URL.split("@", 1)[1].rsplit("/", 1)[0]
    url = f"postgresql+psycopg://{user}@{host}/{database}"
    result = _invoke("--data-dir", str(tmp_path), "--database-url", url, "nodes")
    line = _one_line_error(result, *fragments)
    assert "hunter2" not in line


def test_a_database_migrated_by_newer_code_is_refused_and_left_alone(local, tmp_path):
    from alembic.script import ScriptDirectory

    from store.migrate import alembic_config

    assert local("db", "upgrade").exit_code == 0
    db = tmp_path / "tgtg.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeed9999'")
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    expected = (
        f"database is at revision f00dfeed9999, newer than this code (head {head}): "
        "upgrade the code or point --database-url elsewhere"
    )
    for command in (["db", "upgrade"], ["nodes"], ["seed", "--at", AT]):
        assert _one_line_error(local(*command)) == f"error: {expected}"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("f00dfeed9999",)
        ]


# --- option values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["workloads", "--status", "bogus"],
            "--status 'bogus': use one of pending, scheduled, routed, running, completed, "
            "failed, cancelled",
        ),
        (["workloads", "--status", "routed", "--status", "done"], "--status 'done': use one of"),
        (["payouts", "--status", "paid"], "--status 'paid': use one of awaiting_approval"),
        (["--grid-source", "bogus", "nodes"], "--grid-source 'bogus': use one of sim, recorded"),
        (["grid", "--source", "solar"], "--source 'solar': use one of sim, recorded, live"),
        (["grid", "ingest", "--source", "solar"], "--source 'solar': use one of"),
        (["route", "--gpus", "1", "--hours", "1", "--source", "x"], "--source 'x': use one of"),
        (["workloads", "reroute", "wl_x", "--source", "x"], "--source 'x': use one of"),
        (["orgs", "--kind", "robot"], "--kind 'robot': use one of enterprise, datacenter, gamer"),
        (["workloads", "--limit", "0"], "--limit '0': Input should be greater than or equal to 1"),
        (["score", "--carbon", "abc"], "--carbon 'abc': Input should be a valid number"),
        (["score"], "Missing option '--carbon'"),
        (["score", "--carbon", "1", "--bogus"], "No such option: --bogus"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["route", "--gpus", "0", "--hours", "6"], "--gpus '0': Input should be greater than 0"),
        (["route", "--gpus", "1", "--hours", "800"], "--hours '800.0': Input should be less"),
        (["route", "--gpus", "1", "--hours", "1", "--deny", "XX"], "--deny 'XX': unknown zone"),
        (["route", "--gpus", "1", "--hours", "1", "--zones", " , "], "--zones ' , ' names no zone"),
        (
            ["route", "--gpus", "1", "--hours", "1", "--zones", "FR", "--deny", "FR"],
            "--zones/--deny: every allowed zone is also denied",
        ),
        (
            ["route", "--gpus", "1", "--hours", "1", "--at", AT, "--deadline", "2023-06-01T00:00Z"],
            "--deadline '2023-06-01T00:00:00+00:00' has already passed",
        ),
        (
            ["route", "--gpus", "1", "--hours", "6", "--at", AT, "--deadline", "2023-06-01T15:00Z"],
            "--deadline '2023-06-01T15:00:00+00:00' is too soon for a 6 h job started now "
            "(2023-06-01T12:00:00+00:00): give 2023-06-01T18:00:00+00:00 or later",
        ),
        (["grid", "--at", "9999-12-31T23:59Z"], "--at '9999-12-31T23:59Z' is out of range"),
        (["grid", "--at", "0001-01-01T00:00Z"], "--at '0001-01-01T00:00Z' is out of range"),
        (["grid", "ingest", "--start", "9999-12-31T00:00Z"], "--start '9999-12-31T00:00Z' is out"),
        (
            ["route", "--gpus", "1", "--hours", "1", "--deadline", "9999-12-31T23:00Z"],
            "--deadline '9999-12-31T23:00Z' is out of range",
        ),
        (["seed", "--wipe-ledger"], "--wipe-ledger only applies with --reset"),
        (["payouts", "--approve", "a", "--reject", "b"], "--approve 'a' and --reject 'b'"),
        (["workloads", "complete", "wl_a", "--all"], "workload 'wl_a' and --all"),
        (["ledger", "owed", "nobody"], "organization 'nobody' does not exist; list them with"),
        (["chat", "   "], "chat text '   ' is empty"),
    ],
)
def test_a_bad_value_is_one_line_naming_it(local, args, message):
    _one_line_error(local(*args), message)


def test_a_bad_setting_from_the_environment_names_the_variable(local):
    result = local("nodes", env={"TGTG_CLOCK_SPEED": "fast"})
    _one_line_error(result, "TGTG_CLOCK_SPEED 'fast': Input should be a valid number")


def test_orgs_lists_the_organisations_the_messages_point_to(local):
    local("seed", "--at", AT)
    gamers = _strict_json(local("orgs", "--kind", "gamer", "--json").stdout)
    assert {o["kind"] for o in gamers} == {"gamer"} and len(gamers) == 4


# --- numbers: NaN and infinities are refused before anything runs ----------------------------

# What each command with a number option needs besides it; the walk below finds the options.
REQUIRED = {
    ("score",): ["--carbon", "100"],
    ("route",): ["--gpus", "1", "--hours", "1", "--dry-run", "--json"],
    ("grid", "spike"): ["--zone", "FR", "--json"],
    ("incidents", "watch"): ["--iterations", "1", "--json"],
    ("replay",): ["--days", "1", "--quiet", "--json"],
}


def _number_options():
    found = []

    def walk(command, path):
        for param in command.params:
            if getattr(getattr(param, "type_descriptor", None), "annotation", None) is float:
                found.append((path, param.opts[0]))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


NUMBER_OPTIONS = _number_options()


def test_the_walk_finds_the_number_options():
    assert {("score",), ("route",), ("grid", "spike"), ("replay",)} <= {
        p for p, _ in NUMBER_OPTIONS
    }
    assert {p for p, _ in NUMBER_OPTIONS} <= set(REQUIRED)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize(("path", "option"), NUMBER_OPTIONS, ids=lambda x: " ".join(x))
def test_every_number_option_refuses_non_finite_values_before_computing(
    tmp_path, path, option, value
):
    # The unreachable database proves the refusal comes first: nothing was computed or stored.
    base = ["--data-dir", str(tmp_path), "--database-url", UNREACHABLE]
    result = _invoke(*base, *path, *REQUIRED[path], option, value)
    if option == "--interval" and value != "inf":  # its lower bound (0.1) refuses first
        _one_line_error(result, f"--interval '{value}'")
    else:
        _one_line_error(result, f"{option} '{value}': give a finite number")
    assert result.stdout == ""


# --- --json is strict JSON --------------------------------------------------------------------


def test_json_refuses_a_non_finite_result_instead_of_printing_infinity(local):
    result = local("score", "--carbon", "100", "--json", env={"TGTG_SCORE_WEIGHT_CARBON": "inf"})
    _one_line_error(result, "--json: score is not a finite number")
    assert result.stdout == ""


def test_every_json_output_is_strict_json(local):
    def out(*args):
        result = local(*args, "--json")
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return _strict_json(result.stdout)

    out("db", "upgrade")
    out("seed", "--at", AT)
    out("score", "--carbon", "1e308", "--price", "1e308", "--utilization", "1")
    out("route", "--gpus", "1", "--hours", "1", "--at", AT, "--dry-run")
    gamer = out("route", "--gpus", "1", "--hours", "3", "--gpu-model", "RTX4090", "--at", AT)
    out("route", "--gpus", "4", "--hours", "2", "--at", AT)
    out("workloads", "start", gamer["workload_id"], "--at", AT)
    out("workloads", "reroute", gamer["workload_id"], "--at", AT)
    out("grid", "--at", AT)
    out("grid", "ingest", "--zone", "FR", "--hours", "2", "--at", AT)
    out("grid", "spike", "--zone", "DE", "--factor", "2", "--at", AT)
    out("nodes")
    out("orgs")
    out("workloads")
    settled = out("workloads", "complete", "--all", "--at", AT)
    out("billing-worker", "--at", AT)
    out("ledger", "balance")
    out("ledger", "owed", "gamer-jonas")
    out("payouts")
    receipt = settled["settled"][0]["settlement"]["receipt"]["id"]
    out("receipts")
    out("receipts", "verify", receipt)
    for by in ("workload", "org", "node"):
        out("profitability", "--by", by)
    out("profitability", "--signals")
    out("incidents", "list")


def test_the_installed_entry_point_reports_errors_without_a_traceback(tmp_path):
    code = "import sys; from ui.cli import app; sys.argv[0] = 'tgtg'; app()"
    args = ["--data-dir", str(tmp_path), "--database-url", "bogus", "workloads", "--status", "x"]
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip() == (
        "error: --status 'x': use one of pending, scheduled, routed, running, completed, "
        "failed, cancelled"
    )
