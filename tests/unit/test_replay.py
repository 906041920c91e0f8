"""The replay harness end to end: trace mapping, grid window, determinism, report and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evals.cli import app as evals_app
from evals.fleet import Fleet, default_fleet
from evals.gridwindow import load_grid_window
from evals.jobs import active_days, load_trace, map_trace_to_window
from evals.outputs import write_outputs
from evals.replay import ReplayConfig, prepare, prior_arrivals, run_replay
from evals.report import build_report
from tools.errors import InvalidInputError, NoGridDataError

JOBS_FILE = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "jobs"
    / ("alibaba_gpu_v2023_openb.csv")
)
HEADER = (
    "submit_time_utc_or_offset_s,duration_s,num_gpus,gpu_milli,cpu_milli,memory_mib,scheduled,"
    "queue_delay_s,gpu_spec,qos,pod_phase,ends_at_trace_end,pod_name\n"
)


@pytest.fixture
def jobs_file() -> Path:
    if not JOBS_FILE.is_file():
        pytest.skip(f"job trace not found at {JOBS_FILE}")
    return JOBS_FILE


def _row(submit: int, duration: int, gpus: int, milli: int = 1000, scheduled: int = 1) -> str:
    return f"{submit},{duration},{gpus},{milli},1000,1024,{scheduled},0,,BE,Succeeded,0,p\n"


def test_trace_mapping_rules(tmp_path: Path) -> None:
    day = 86_400
    rows = [_row(5 * day + 3600 * h + 10, 600, 1, 500) for h in range(20)]  # 20 jobs on day 5
    rows += [_row(6 * day + 7200, 3 * 86_400, 8), _row(6 * day + 7300, 5400, 2)]  # day 6 ...
    rows += [_row(6 * day + 5 * 3600, 60, 1) for _ in range(20)]  # ... plus 20 one-minute jobs
    rows += [_row(6 * day + 100, 60, 0), _row(6 * day + 200, 60, 1, scheduled=0)]  # filtered out
    rows += [_row(90 * day, 60, 1)]  # a lone job on a sparse day (< 10 % of the median)
    path = tmp_path / "trace.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    trace = load_trace(path)
    assert trace.submit_s.size == 43
    assert active_days(trace).tolist() == [5, 6]

    capacity = np.array([8.0, 1.0])
    jobs = map_trace_to_window(trace, days=3, zone_capacity=capacity, seed=1)
    # Window days 0, 1, 2 take trace days 5, 6, 5 (looping); the sparse day is dropped.
    assert len(jobs) == 20 + 22 + 20
    assert jobs.arrival[:20].tolist() == list(range(20))
    assert jobs.arrival[20:42].tolist() == [26, 26] + [29] * 20
    assert jobs.arrival[42:].tolist() == [48 + h for h in range(20)]
    assert jobs.gpus[:20].tolist() == [0.5] * 20  # shared single GPU
    assert jobs.duration[20:22].tolist() == [48, 2]  # 3 days capped at 48 h; 1.5 h -> 2 h
    assert jobs.duration[22:42].tolist() == [1] * 20  # at least one hour
    assert jobs.origin[20] == 0  # the 8-GPU job only fits zone 0
    assert set(jobs.slack.tolist()) <= {0, 6, 24}

    double = map_trace_to_window(trace, days=1, zone_capacity=capacity, seed=1, arrival_scale=2)
    assert len(double) == 42
    with pytest.raises(InvalidInputError, match="slack class shares"):
        map_trace_to_window(
            trace, days=1, zone_capacity=capacity, seed=1, slack_classes=((0, 0.5), (6, 0.2))
        )


def test_trace_without_gpu_work_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(HEADER + _row(0, 60, 0), encoding="utf-8")
    with pytest.raises(InvalidInputError, match="no row with scheduled==1"):
        load_trace(path)


def test_grid_window_bounds_and_tail(grid_dir: Path) -> None:
    zones = ("FR", "DE")
    with pytest.raises(NoGridDataError, match="not inside"):
        load_grid_window(
            grid_dir, zones, start=datetime(2020, 1, 1, tzinfo=UTC), days=1, tail_hours=10
        )
    late = load_grid_window(
        grid_dir, zones, start=datetime(2024, 3, 12, tzinfo=UTC), days=2, tail_hours=30
    )
    assert late.notes["tail_hours_repeated"] == 30
    ci = late.actual_ci()
    assert np.array_equal(ci[:, 48:72], ci[:, 24:48])  # tail repeats the last recorded day
    assert late.history == 28 * 24
    assert not np.isnan(late.price_cost).any()


def _config(grid_dir: Path, jobs_file: Path, **kw) -> ReplayConfig:
    base = ReplayConfig(
        grid_dir=grid_dir,
        jobs_file=jobs_file,
        start=datetime(2023, 6, 1, tzinfo=UTC),
        days=2,
        pareto=False,
        forecast="naive",
    )
    return replace(base, **kw)


def test_replay_is_deterministic_for_a_seed(grid_dir: Path, jobs_file: Path) -> None:
    policies = ("baseline", "composite", "broker")
    fleet = Fleet(
        ("FR", "DE", "US-CAL-CISO"),
        np.array([4.0, 6.0, 8.0]),
        np.array([0.7, 0.7, 0.5]),
        np.array([290.0, 250.0, 240.0]),
    )
    config = _config(grid_dir, jobs_file, seed=4, policies=policies, fleet=fleet, days=1)
    a, b = run_replay(config), run_replay(config)
    for name in (*policies, "oracle"):
        assert np.array_equal(a.runs[name].outcome.start, b.runs[name].outcome.start)
        assert np.array_equal(a.runs[name].outcome.zone, b.runs[name].outcome.zone)
        assert a.runs[name].outcome.co2_kg.sum() == b.runs[name].outcome.co2_kg.sum()
    _, _, other, _ = prepare(replace(config, seed=5))
    assert np.array_equal(other.arrival, a.jobs.arrival)
    assert not np.array_equal(other.origin, a.jobs.origin)


def test_the_broker_learns_large_arrivals_from_the_week_before_the_window(
    grid_dir: Path, jobs_file: Path
) -> None:
    config = _config(grid_dir, jobs_file, seed=4, policies=("broker",), days=1)
    fleet, _, _, _ = prepare(config)
    prior = prior_arrivals(config, fleet)
    week_before = replace(config, start=config.start - timedelta(days=7), days=7)
    _, _, earlier, _ = prepare(week_before)
    assert [a for a, _, _, _ in prior] == (earlier.arrival - 168).tolist()
    assert [(g, h, s) for _, g, h, s in prior] == list(
        zip(earlier.gpus.tolist(), earlier.duration.tolist(), earlier.slack.tolist(), strict=True)
    )
    assert max(a for a, _, _, _ in prior) < 0


def test_report_shape_and_oracle_bound(grid_dir: Path, jobs_file: Path) -> None:
    fleet = Fleet(
        ("FR", "ES", "DE", "US-TEX-ERCO"),
        np.array([3.0, 4.0, 6.0, 8.0]),
        np.array([0.7, 0.4, 0.7, 0.7]),
        np.array([290.0, 170.0, 250.0, 210.0]),
    )
    result = run_replay(_config(grid_dir, jobs_file, fleet=fleet))
    report = build_report(result)
    policies = report["policies"]
    assert set(policies) == {
        "baseline",
        "price_only",
        "carbon_only",
        "composite",
        "broker",
        "oracle",
        "oracle_per_job",
    }
    for name, row in policies.items():
        for key in ("co2_kg", "energy_eur", "customer_eur", "deadline_misses", "reroutes"):
            assert isinstance(row[key], int | float), (name, key)
        assert isinstance(row["causal"], bool)
    assert policies["oracle"]["causal"] is False and policies["baseline"]["causal"] is True
    assert policies["oracle"]["oracle_capture_pct"] == pytest.approx(100.0)
    assert policies["baseline"]["oracle_capture_pct"] == pytest.approx(0.0)
    assert report["oracle"]["lp_bound_kg"] <= policies["oracle"]["co2_kg"] + 1e-6
    for name in ("carbon_only", "broker", "composite"):
        assert policies[name]["co2_kg"] >= report["oracle"]["lp_bound_kg"] - 1e-6
    assert policies["oracle_per_job"]["co2_kg"] <= report["oracle"]["lp_bound_kg"] + 1e-6
    assert {r["zone"] for r in report["per_zone"]} == set(fleet.zones)
    assert sum(r["jobs"] for r in report["per_zone"] if r["policy"] == "oracle") == len(result.jobs)
    assert {b["slack_h"] for b in report["bins"]} <= {0, 6, 24}
    json.dumps(report)  # JSON-ready


def test_cli_replay_prints_policies_json(grid_dir: Path, jobs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        evals_app,
        [
            "replay",
            "--grid-dir",
            str(grid_dir),
            "--jobs",
            str(jobs_file),
            "--start",
            "2023-06-01",
            "--days",
            "1",
            "--seed",
            "3",
            "--forecast",
            "naive",
            "--out",
            str(out),
            "--jobs-csv",
            str(tmp_path / "jobs.csv"),
            "--json",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "oracle" in report["policies"]
    assert report["lp_bound_kg"] == report["oracle"]["lp_bound_kg"] > 0
    assert all(row["lp_bound_kg"] == report["lp_bound_kg"] for row in report["policies"].values())
    milp = report["oracle"]["milp_bound_kg"]
    oracle_kg = report["policies"]["oracle"]["co2_kg"]
    # The whole MILP ran (or the LP was integral): a proven bound at least as tight as the LP's.
    assert report["lp_bound_kg"] - 1e-6 <= milp <= oracle_kg + 1e-6
    for row in report["policies"].values():
        assert row["co2_vs_milp_bound"] == pytest.approx(row["co2_kg"] / milp, abs=1e-4)
    assert str(tmp_path / "jobs.csv") in report["files"]
    lines = (tmp_path / "jobs.csv").read_text().splitlines()
    assert len(lines) == 1 + report["jobs"]["count"] * len(report["policies"])
    assert set(report["fleet"]) == set(default_fleet().zones)
    assert report["targets"]["co2_ratio_target"] == 1.02
    assert set(report["temporal_l4_s24"]) == {"naive", "persistence"}
    for row in report["policies"].values():
        assert {"co2_kg", "energy_eur", "deadline_misses", "causal", "oracle_capture_pct"} <= set(
            row
        )
    assert len(report["pareto"]) >= 3
    for name in ("report.json", "policies.csv", "summary.md", "pareto.png", "co2_by_policy.png"):
        assert (out / name).stat().st_size > 0
    assert "# Replay 2023-06-01 + 1 day\n" in (out / "summary.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "June"], "--start 'June' is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:00"),
        (
            ["--start", "0001-01-01T00:00+01:00"],
            "--start '0001-01-01T00:00+01:00' is out of range: give a time from 1970-01-01 up to "
            "3000-01-01",
        ),
        (["--start", "2023-06-01T00:30"], "--start '2023-06-01T00:30' is not on the hour"),
        (["--forecast", "crystal-ball"], "forecast 'crystal-ball'"),
        (["--start", "2019-01-01"], "not inside"),
        (
            ["--start", "2024-03-10", "--days", "7"],
            "start from 2021-01-01T00:00:00+00:00 to 2024-03-07T00:00:00+00:00 for 7 days, or "
            "ask for at most 4 days from 2024-03-10T00:00:00+00:00",
        ),
        (["--days", "0"], "--days 0"),
        (["--seed", "-1", "--days", "1"], "--seed -1: give 0 or more"),
    ],
)
def test_cli_bad_input_exits_2(
    grid_dir: Path, jobs_file: Path, tmp_path: Path, args, message
) -> None:
    result = CliRunner().invoke(
        evals_app,
        [
            "replay",
            "--grid-dir",
            str(grid_dir),
            "--jobs",
            str(jobs_file),
            "--out",
            str(tmp_path),
            "--quiet",
            *args,
        ],
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_replay_and_forecast_evaluate_help_names_the_start_forms_they_accept() -> None:
    from typer.main import get_command

    from ui.cli import app as tgtg_app

    root = get_command(tgtg_app)
    replay = root.commands["replay"]
    evaluate = root.commands["forecast"].commands["evaluate"]
    for command in (replay, evaluate):
        (start,) = [p for p in command.params if p.name == "start"]
        assert "YYYY-MM-DD or YYYY-MM-DDTHH:00" in start.help, command.name


def test_tgtg_replay_is_registered_and_uses_root_settings(tmp_path: Path) -> None:
    from ui.cli import app as tgtg_app

    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(tgtg_app, ["--grid-dir", str(missing), "replay", "--quiet"])
    assert result.exit_code == 2
    assert f"--grid-dir {str(missing)!r}" in result.stderr


FAIL_PARTWAY = """
import json, resource, signal, sys
from pathlib import Path
from evals.outputs import write_outputs
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write raises OSError (EFBIG)
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
report = json.loads(Path(sys.argv[1]).read_text())
try:
    write_outputs(report, Path(sys.argv[2]))
except OSError as exc:
    print("failed", exc.errno)
"""


def test_a_write_that_fails_partway_leaves_the_old_files(
    grid_dir: Path, jobs_file: Path, tmp_path: Path
) -> None:
    result = run_replay(_config(grid_dir, jobs_file, days=1, policies=("baseline",)))
    report = build_report(result, None)
    out = tmp_path / "out"
    written = write_outputs(report, out)
    old = {p.name: p.read_bytes() for p in written}
    text = [len(b) for n, b in old.items() if not n.endswith(".png")]
    images = [len(b) for n, b in old.items() if n.endswith(".png")]
    # Every table and the summary fit under the limit; a plot, written last, does not.
    limit = max(text) + 1024
    assert images and max(images) > limit
    report["note"] = "a later run"
    source = tmp_path / "report.json"
    source.write_text(json.dumps(report), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-c", FAIL_PARTWAY, str(source), str(out), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (run.returncode, run.stdout.strip()) == (0, "failed 27"), run.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old
