import json
from datetime import datetime

import pytest
from typer.testing import CliRunner

from ui.cli import app

AT = "2023-06-01T12:00Z"


@pytest.fixture
def tgtg(tmp_path):
    runner = CliRunner()
    base = ["--database-url", f"sqlite:///{tmp_path / 'cli.db'}", "--data-dir", str(tmp_path)]

    def run(*args, code=0):
        result = runner.invoke(app, [*base, *args])
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    return run


def _json(result):
    return json.loads(result.stdout)


def test_score_json_gives_one_half(tgtg):
    out = _json(tgtg("score", "--carbon", "250", "--price", "50", "--utilization", "0.5", "--json"))
    assert out["score"] == pytest.approx(0.5)
    assert out["carbon_term"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score", "--carbon", "-5", "--price", "50"], "carbon intensity -5.0"),
        (["score", "--carbon", "100", "--utilization", "2"], "utilization 2.0"),
        (["route", "--gpus", "4", "--hours", "6", "--zones", "XX"], "unknown zone 'XX'"),
        (["route", "--gpus", "0", "--hours", "6"], "--gpus '0'"),
        (
            ["route", "--gpus", "1", "--hours", "6", "--deadline", "tomorrow"],
            "--deadline 'tomorrow'",
        ),
        (["grid", "--zone", "Mars"], "unknown zone 'MARS'"),
        (["--grid-source", "bogus", "grid"], "--grid-source 'bogus': use one of sim"),
        (["workloads", "start", "wl_nope"], "workload 'wl_nope' does not exist"),
    ],
)
def test_bad_input_exits_2_naming_the_value(tgtg, args, message):
    result = tgtg(*args, code=2)
    assert message in result.stderr


def test_seed_is_idempotent(tgtg):
    first = _json(tgtg("seed", "--at", AT, "--json"))
    assert (first["organizations_added"], first["nodes_added"]) == (13, 14)
    assert first["grid_states_added"] >= 33
    again = _json(tgtg("seed", "--at", AT, "--json"))
    assert (again["organizations_added"], again["nodes_added"], again["grid_states_added"]) == (
        0,
        0,
        0,
    )
    reset = _json(tgtg("seed", "--reset", "--at", AT, "--json"))
    assert reset["nodes_added"] == 14


def test_route_picks_the_lowest_scoring_eligible_node(tgtg):
    tgtg("seed", "--at", AT)
    out = _json(tgtg("route", "--gpus", "4", "--hours", "6", "--at", AT, "--json"))
    scores = {c["node_id"]: c["score"] for c in out["candidates"]}
    assert out["node"]["id"] == min(scores, key=scores.get)
    assert out["score"] == pytest.approx(min(scores.values()))
    assert out["node"]["zone"]
    assert all(r["reason"] for r in out["rejected"])
    listed = _json(tgtg("workloads", "--json"))
    assert listed[0]["id"] == out["workload_id"] and listed[0]["status"] == "routed"


def test_route_no_move_records_work_that_stays_where_it_starts(tgtg):
    tgtg("seed", "--at", AT)
    pinned = _json(tgtg("route", "--gpus", "1", "--hours", "2", "--no-move", "--at", AT, "--json"))
    free = _json(tgtg("route", "--gpus", "1", "--hours", "2", "--at", AT, "--json"))
    listed = {w["id"]: w["movable"] for w in _json(tgtg("workloads", "--json"))}
    assert listed == {pinned["workload_id"]: False, free["workload_id"]: True}


def test_route_dry_run_writes_nothing(tgtg):
    tgtg("seed", "--at", AT)
    out = _json(tgtg("route", "--gpus", "1", "--hours", "2", "--dry-run", "--at", AT, "--json"))
    assert out["workload_id"] is None and out["node"]["id"]
    assert _json(tgtg("workloads", "--json")) == []


def test_route_with_no_eligible_node_exits_1_with_reasons(tgtg):
    tgtg("seed", "--at", AT)
    result = tgtg("route", "--gpus", "500", "--hours", "1", "--at", AT, code=1)
    assert "no eligible node" in result.stderr and "GPUs needed are free" in result.stderr


def test_workload_life_cycle_through_the_cli(tgtg):
    tgtg("seed", "--at", AT)
    wid = _json(tgtg("route", "--gpus", "1", "--hours", "1", "--at", AT, "--json"))["workload_id"]
    assert _json(tgtg("workloads", "start", wid, "--at", AT, "--json"))["status"] == "running"
    result = tgtg("workloads", "start", wid, code=2)
    assert "'running' and cannot become 'running'" in result.stderr
    assert _json(tgtg("workloads", "reroute", wid, "--at", AT, "--json"))["kind"] == "reroute"


def test_grid_reads_recorded_data(tgtg, grid_dir):
    out = _json(
        tgtg(
            "--grid-dir",
            str(grid_dir),
            "grid",
            "--zone",
            "FR",
            "--source",
            "recorded",
            "--at",
            "2021-01-01T00:30Z",
            "--json",
        )
    )
    (reading,) = out["readings"]
    assert reading["carbon_intensity"] == pytest.approx(60.97)
    assert reading["price_eur_per_mwh"] == pytest.approx(48.19)


def test_grid_outside_recorded_span_is_a_clear_error(tgtg, grid_dir):
    result = tgtg(
        "--grid-dir",
        str(grid_dir),
        "grid",
        "--zone",
        "FR",
        "--source",
        "recorded",
        "--at",
        "2030-01-01T00:00Z",
        code=2,
    )
    assert "FR" in result.stderr and "2030" in result.stderr


def test_route_at_an_hour_the_recorded_data_do_not_cover_is_one_line_naming_at(tgtg, grid_dir):
    tgtg("seed", "--at", AT)
    base = ["--grid-dir", str(grid_dir), "--grid-source", "recorded", "route"]
    result = tgtg(*base, "--gpus", "4", "--hours", "6", "--at", "2030-01-01T12:00Z", code=2)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --at '2030-01-01T12:00Z': no grid reading")
    assert "the file covers" in line and "Traceback" not in result.stdout + result.stderr


def test_route_why_says_a_job_longer_than_the_horizon_starts_now(tgtg):
    tgtg("seed", "--at", AT)
    args = ["--gpus", "1", "--hours", "49", "--deadline", "2023-06-20T00:00Z", "--at", AT]
    out = _json(tgtg("route", *args, "--dry-run", "--json"))
    assert out["start_at"].startswith("2023-06-01T12:00")
    assert "49 h, the 48 h forecast horizon or more: starts now" in out["why"]


def test_db_upgrade(tgtg):
    assert _json(tgtg("db", "upgrade", "--json"))["upgraded"] is True


def test_replay_clock_serves_recorded_data(tgtg, grid_dir, monkeypatch):
    monkeypatch.setenv("TGTG_CLOCK_START", "2021-01-01T00:10")
    monkeypatch.setenv("TGTG_CLOCK_SPEED", "1")
    out = _json(
        tgtg(
            "--grid-dir",
            str(grid_dir),
            "--grid-source",
            "recorded",
            "grid",
            "--zone",
            "FR",
            "--json",
        )
    )
    assert out["readings"][0]["ts"] == "2021-01-01T00:00:00Z"
    assert out["readings"][0]["carbon_intensity"] == pytest.approx(60.97)


def test_agent_commands_default_to_the_context_default_org():
    from graphs.context import DEFAULT_ORG_ID
    from ui.cli_agents import DEFAULT_ORG_ID as CLI_DEFAULT

    assert CLI_DEFAULT == DEFAULT_ORG_ID


def test_importing_the_cli_leaves_model_and_chain_libraries_unloaded():
    import subprocess
    import sys

    heavy = ["openai", "langchain_core", "langgraph", "solana", "alembic", "scipy", "gradio"]
    heavy += ["mpl_toolkits.basemap"]
    code = f"import sys, ui.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_offline_chat_turn_leaves_vendor_and_console_libraries_unloaded(tmp_path):
    import os
    import subprocess
    import sys

    unused = ["openai", "langchain_openai", "gradio", "stripe", "solana", "pandas", "scipy"]
    unused += ["mpl_toolkits.basemap"]
    unused += ["psycopg", "alembic", "sqlalchemy.dialects.postgresql"]  # migrated SQLite store
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGTG_")}
    env |= {"TGTG_DATA_DIR": str(tmp_path), "TGTG_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    env["TGTG_CLOCK_START"] = AT  # the chat reads a replay clock, not the wall clock
    subprocess.run(
        [sys.executable, "-c", "from ui.cli import app; app()", "seed", "--at", AT],
        env=env,
        capture_output=True,
        check=True,
    )
    code = (
        "import sys\n"
        "from ui.cli import app\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        f"print([m for m in {unused!r} if m in sys.modules])\n"
        "print('langgraph' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "chat", "where should I run 4 H100 for 6 hours", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    *answer, loaded, ran_graph = out.stdout.strip().splitlines()
    assert json.loads("\n".join(answer))["tool_calls"] == ["recommend_placement"]
    assert (loaded, ran_graph) == ("[]", "True")


def test_an_injected_spike_reaches_every_routing_path(tgtg):
    tgtg("seed", "--at", AT)
    before = _json(tgtg("grid", "--zone", "FR", "--at", AT, "--json"))["readings"][0]
    tgtg("grid", "spike", "--zone", "FR", "--factor", "20", "--price-factor", "1", "--at", AT)
    after = _json(tgtg("grid", "--zone", "FR", "--at", AT, "--json"))["readings"][0]
    assert after["carbon_intensity"] == pytest.approx(min(before["carbon_intensity"] * 20, 2000))
    assert "override x20" in after["note"]
    routed = _json(tgtg("route", "--gpus", "1", "--hours", "1", "--at", AT, "--json"))
    fr = next(c for c in routed["candidates"] if c["zone"] == "FR")
    assert routed["node"]["zone"] != "FR"
    assert fr["co2_kg"] == pytest.approx(0.7 * after["carbon_intensity"] / 1000)


WHEN_KEYS = {"start_at", "node", "co2_kg", "co2_kg_if_started_now", "saving_pct", "why"}


def test_route_with_a_deadline_shows_a_planned_start(tgtg):
    tgtg("seed", "--at", AT)
    args = ["route", "--gpus", "4", "--hours", "6", "--deadline", "2023-06-02T12:00Z"]
    plan = _json(tgtg(*args, "--dry-run", "--at", AT, "--json"))
    assert WHEN_KEYS <= set(plan) and plan["workload_id"] is None
    assert _json(tgtg("workloads", "--json")) == []
    out = _json(tgtg(*args, "--at", AT, "--json"))
    assert out["status"] == "scheduled" and out["start_at"] == plan["start_at"]
    assert out["node"] == plan["node"]
    start = out["start_at"]
    assert "2023-06-01T12:00:00+00:00" < start <= "2023-06-02T06:00:00+00:00"
    assert 0 < out["co2_kg"] < out["co2_kg_if_started_now"]
    saving = 100 * (1 - out["co2_kg"] / out["co2_kg_if_started_now"])
    assert out["saving_pct"] == pytest.approx(saving)
    assert "greenest forecast window" in out["why"]
    (listed,) = _json(tgtg("workloads", "--json"))
    assert listed["status"] == "scheduled"
    assert datetime.fromisoformat(listed["planned_start_at"]) == datetime.fromisoformat(start)
    now_out = _json(tgtg("route", "--gpus", "1", "--hours", "1", "--at", AT, "--json"))
    assert now_out["status"] == "routed" and now_out["start_at"] == "2023-06-01T12:00:00+00:00"
    assert now_out["saving_pct"] == 0 and WHEN_KEYS <= set(now_out)


def test_operators_start_or_cancel_scheduled_work(tgtg):
    tgtg("seed", "--at", AT)
    args = ["route", "--gpus", "4", "--hours", "6", "--deadline", "2023-06-02T12:00Z"]
    first = _json(tgtg(*args, "--at", AT, "--json"))["workload_id"]
    second = _json(tgtg(*args, "--at", AT, "--json"))["workload_id"]
    started = _json(tgtg("workloads", "start", first, "--at", AT, "--json"))
    assert started["status"] == "running" and started["started_at"].startswith("2023-06-01T12")
    cancelled = _json(tgtg("workloads", "cancel", second, "--at", AT, "--json"))
    assert cancelled["status"] == "cancelled" and cancelled["planned_start_at"] is None
    result = tgtg("workloads", "start", second, "--at", AT, code=2)
    assert "'cancelled' and cannot become 'running'" in result.stderr


def test_route_objective_is_checked_and_used(tgtg):
    tgtg("seed", "--at", AT)
    args = ["route", "--gpus", "4", "--hours", "6", "--deadline", "2023-06-02T18:00Z", "--at", AT]
    bad = tgtg(*args, "--objective", "cheapest", code=2)
    assert "--objective 'cheapest': use one of carbon, composite" in bad.stderr
    out = _json(tgtg(*args, "--objective", "composite", "--dry-run", "--json"))
    assert WHEN_KEYS <= set(out) and out["workload_id"] is None
    assert out["start_at"] > "2023-06-01T12:00:00+00:00" and "best-scoring" in out["why"]
