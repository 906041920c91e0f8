"""Replay data rules on small synthetic files: gaps, history, tail, trace days, per-job CSV."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evals.cli import app as evals_app
from evals.fleet import Fleet, default_fleet
from evals.gridwindow import load_grid_window
from evals.jobs import active_days, load_trace, map_trace_to_window, window_trace_days
from evals.outputs import JOB_COLUMNS, markdown_summary, write_jobs_csv
from evals.replay import (
    ReplayConfig,
    forecast_history_days,
    forecast_model,
    prepare,
    run_replay,
)
from evals.report import build_report
from tests.evals_helpers import write_trace, write_zone_csv
from tools.errors import InvalidInputError, NoGridDataError
from tools.grid import load_zone_series
from tools.grid.outlook import DEFAULT_HISTORY_DAYS

DATA_START = datetime(2023, 1, 1, tzinfo=UTC)
WINDOW_START = datetime(2023, 1, 10, tzinfo=UTC)


def _grid(tmp_path: Path, fr_skip: range = range(0), de_skip: range = range(0)) -> Path:
    write_zone_csv(tmp_path, "FR", DATA_START, 20 * 24, 60.0, fr_skip)
    write_zone_csv(tmp_path, "DE", DATA_START, 20 * 24, 350.0, de_skip)
    return tmp_path


def test_gaps_outside_the_window_shorten_history_and_tail_only(tmp_path: Path) -> None:
    # FR misses 5 rows on 3 Jan (before the window); DE misses 3 rows on 15 Jan (after it).
    grid = _grid(
        tmp_path, fr_skip=range(2 * 24 + 5, 2 * 24 + 10), de_skip=range(14 * 24, 14 * 24 + 3)
    )
    with pytest.raises(InvalidInputError, match="contiguous hours"):
        load_zone_series(grid, "FR")  # the product's reader still refuses gaps
    window = load_grid_window(grid, ("FR", "DE"), start=WINDOW_START, days=2, tail_hours=5 * 24)
    notes = window.notes
    assert notes["history_hours"] == 7 * 24 - 10  # from the hour after FR's gap to the start
    assert window.history == notes["history_hours"]
    assert notes["history_hours_wanted"] == 28 * 24
    assert notes["missing_rows_outside_window"] == 8
    # DE's usable data ends where its gap begins (14 Jan 24:00, replay hour 120 of 168).
    assert notes["tail_hours_repeated"] == 7 * 24 - 5 * 24
    de = window.actual_ci()[1]
    assert np.array_equal(de[120:144], de[96:120])  # the last recorded day repeats
    assert not np.isnan(window.ci).any()


def test_a_gap_inside_the_window_rejects_it(tmp_path: Path) -> None:
    grid = _grid(tmp_path, fr_skip=range(10 * 24 + 3, 10 * 24 + 8))  # 11 Jan 03:00-07:59
    with pytest.raises(NoGridDataError, match=r"'FR' has no rows for 5 hours inside the window"):
        load_grid_window(grid, ("FR", "DE"), start=WINDOW_START, days=2, tail_hours=24)
    later = load_grid_window(
        grid, ("FR", "DE"), start=WINDOW_START + timedelta(days=2), days=2, tail_hours=24
    )
    assert later.history == 24 - 8  # history starts after the gap (11 Jan 08:00)


def test_each_window_start_draws_its_own_trace_days(tmp_path: Path) -> None:
    # Ten active trace days, told apart by their job counts (20 + day).
    trace = load_trace(write_trace(tmp_path / "t.csv", {d: 20 + d for d in range(10)}))
    active = active_days(trace)
    a = window_trace_days(active, days=7, day_seed=WINDOW_START.toordinal())
    again = window_trace_days(active, days=7, day_seed=WINDOW_START.toordinal())
    b = window_trace_days(active, days=7, day_seed=(WINDOW_START + timedelta(7)).toordinal())
    flat_a = [int(d) for day in a for d in day]
    assert flat_a == [int(d) for day in again for d in day]
    assert flat_a != [int(d) for day in b for d in day]
    assert len(set(flat_a)) == 7  # no day repeats while unused ones are left
    assert [int(d) for day in window_trace_days(active, days=3) for d in day] == [0, 1, 2]
    jobs = map_trace_to_window(
        trace, days=7, zone_capacity=np.array([4.0]), seed=0, day_seed=WINDOW_START.toordinal()
    )
    per_day = np.bincount(jobs.arrival // 24, minlength=7)
    assert per_day.tolist() == [20 + d for d in flat_a]
    long = window_trace_days(active, days=25, arrival_scale=1.0, day_seed=1)
    assert sorted(int(d) for day in long[:10] for d in day) == list(range(10))


def _replay(tmp_path: Path, **kw) -> ReplayConfig:
    grid = _grid(tmp_path / "grid")
    trace = write_trace(tmp_path / "trace.csv", {d: 12 for d in range(5)}, gpus=2)
    fleet = Fleet(
        ("FR", "DE"), np.array([4.0, 8.0]), np.array([0.7, 0.7]), np.array([290.0, 250.0])
    )
    return ReplayConfig(
        grid_dir=grid,
        jobs_file=trace,
        start=WINDOW_START,
        days=1,
        forecast="naive",
        pareto=False,
        policies=("baseline", "carbon_only", "composite"),
        fleet=fleet,
        **kw,
    )


def test_report_and_summary_show_the_bound_the_data_and_the_labels(tmp_path: Path) -> None:
    (tmp_path / "grid").mkdir()
    result = run_replay(_replay(tmp_path))
    report = build_report(result)
    bound = report["oracle"]["lp_bound_kg"]
    assert bound > 0 and report["lp_bound_kg"] == bound
    for name, row in report["policies"].items():
        assert row["lp_bound_kg"] == bound
        assert row["co2_vs_lp_bound"] == pytest.approx(row["co2_kg"] / bound, rel=1e-3)
        if name in ("baseline", "carbon_only", "composite"):
            assert row["causal"] is True and row["foresight"] is None
            assert row["co2_kg"] >= bound - 1e-6
    assert report["policies"]["oracle"]["causal"] is False
    assert "recorded future" in report["policies"]["oracle"]["foresight"]
    gap = report["oracle"]["gap_vs_lp_bound_pct"]
    assert gap == pytest.approx(100 * (report["oracle"]["schedule_kg"] / bound - 1), abs=1e-2)
    assert len(report["jobs"]["trace_days"]) == 1
    text = markdown_summary(report)
    assert "| x LP bound |" in text
    assert f"history {9 * 24} of {28 * 24} h (**short**" in text
    assert "tail hours repeated 0" in text
    assert "Forecast model: naive: hour-of-day mean of the last 28 days." in text
    assert "`oracle` is not causal: replays the oracle's schedule" in text
    json.dumps(report)


def test_jobs_csv_has_a_row_per_job_and_policy(tmp_path: Path) -> None:
    (tmp_path / "grid").mkdir()
    result = run_replay(_replay(tmp_path))
    path = write_jobs_csv(result, tmp_path / "out" / "jobs.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == JOB_COLUMNS
    assert len(rows) == len(result.jobs) * len(result.runs)
    for name, run in result.runs.items():
        mine = [r for r in rows if r["policy"] == name]
        assert sum(float(r["kg_co2"]) for r in mine) == pytest.approx(
            float(run.outcome.co2_kg.sum()), abs=1e-3
        )
        assert sum(r["missed_deadline"] == "True" for r in mine) == int(run.outcome.missed.sum())
    first = next(r for r in rows if r["policy"] == "baseline" and r["job_id"] == "0")
    start, end = datetime.fromisoformat(first["start"]), datetime.fromisoformat(first["end"])
    assert (end - start) == timedelta(hours=int(first["hours"]))
    assert datetime.fromisoformat(first["arrival"]) >= WINDOW_START
    assert first["zone"] in ("FR", "DE")


def test_cli_writes_the_jobs_csv_and_refuses_a_folder(tmp_path: Path) -> None:
    (tmp_path / "grid").mkdir()
    cfg = _replay(tmp_path)
    args = ["replay", "--grid-dir", str(cfg.grid_dir), "--jobs", str(cfg.jobs_file), "--quiet"]
    bad = CliRunner().invoke(evals_app, [*args, "--jobs-csv", str(tmp_path)])
    assert bad.exit_code == 2 and "--jobs-csv" in bad.stderr
    zero = CliRunner().invoke(evals_app, [*args, "--oracle-time-limit", "0"])
    assert zero.exit_code == 2 and "--oracle-time-limit 0.0" in zero.stderr


def test_a_model_replay_loads_the_history_the_product_reads_and_says_which_model_ran() -> None:
    assert forecast_history_days("model") == DEFAULT_HISTORY_DAYS
    assert forecast_history_days("naive") == forecast_history_days("perfect") == 28
    year = forecast_model("model", DEFAULT_HISTORY_DAYS * 24, 7)
    assert year.startswith("model: blend fitted") and "365 d of history" in year
    short = forecast_model("model", 28 * 24, 7)
    assert short.startswith("model: seasonal persistence") and "fitted" not in short
    # 28 d + 8 weeks reaches the 88 d the first fit needs at the next weekly refit.
    assert "from day 63 the blend fitted" in forecast_model("model", 28 * 24, 100)


def _cli_args(tmp_path: Path) -> list[str]:
    grid = tmp_path / "grid"
    grid.mkdir()
    for i, zone in enumerate(default_fleet().zones):
        write_zone_csv(grid, zone, DATA_START, 20 * 24, 60.0 + 40 * i)
    trace = write_trace(tmp_path / "trace.csv", {d: 6 for d in range(3)})
    return [
        "replay",
        "--grid-dir",
        str(grid),
        "--jobs",
        str(trace),
        "--start",
        f"{WINDOW_START:%Y-%m-%d}",
        "--days",
        "1",
        "--forecast",
        "naive",
        "--no-pareto",
        "--quiet",
    ]


@pytest.mark.parametrize(
    ("option", "path", "message"),
    [
        ("--out", "taken", "--out '{p}' is a file: give a folder"),
        ("--out", "taken/sub", "--out '{p}': '{taken}' is a file, not a folder"),
        ("--jobs-csv", "taken/jobs.csv", "--jobs-csv '{p}': '{taken}' is a file, not a folder"),
    ],
)
def test_an_unwritable_output_path_is_refused_before_the_replay_runs(
    tmp_path: Path, option: str, path: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = _cli_args(tmp_path)
    taken = tmp_path / "taken"
    taken.write_text("not a folder\n", encoding="utf-8")
    ran: list[object] = []
    monkeypatch.setattr("evals.replay.run_replay", lambda config: ran.append(config))
    target = tmp_path / path
    extra = [option, str(target)] + ([] if option == "--out" else ["--out", str(tmp_path / "o")])
    result = CliRunner().invoke(evals_app, [*args, *extra])
    assert result.exit_code == 2, result.output
    assert message.format(p=target, taken=taken) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert ran == []  # refused before any replay work
    assert taken.read_text(encoding="utf-8") == "not a folder\n"


def test_a_write_that_fails_after_the_replay_is_one_line_naming_the_file(tmp_path: Path) -> None:
    args = _cli_args(tmp_path)
    out = tmp_path / "out"
    # The jobs CSV's folder is a file the replay itself writes into --out.
    jobs_csv = out / "summary.md" / "jobs.csv"
    result = CliRunner().invoke(evals_app, [*args, "--out", str(out), "--jobs-csv", str(jobs_csv)])
    assert result.exit_code == 2, result.output
    assert f"could not write {str(out / 'summary.md')!r}" in result.stderr
    assert "give a writable --out folder and --jobs-csv file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not jobs_csv.exists()


def test_the_jobs_csv_replaces_an_old_file_only_once_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "grid").mkdir()
    result = run_replay(_replay(tmp_path))
    path = tmp_path / "jobs.csv"
    path.write_text("old\n", encoding="utf-8")

    def full_disk(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("evals.outputs.os.replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_jobs_csv(result, path)
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir() if "jobs" in p.name] == ["jobs.csv"]


def test_a_window_past_the_data_names_the_latest_start_and_the_most_days(tmp_path: Path) -> None:
    grid = _grid(tmp_path)  # 20 days from 1 Jan; DE one day shorter
    write_zone_csv(grid, "DE", DATA_START, 19 * 24, 350.0)
    zones = ("FR", "DE")
    late = DATA_START + timedelta(days=15)
    with pytest.raises(NoGridDataError) as caught:
        load_grid_window(grid, zones, start=late, days=7, tail_hours=0)
    message = str(caught.value)
    assert "every zone has data from 2023-01-01T00:00:00+00:00 to 2023-01-20T00:00:00+00:00" in (
        message
    )
    assert (
        "start from 2023-01-01T00:00:00+00:00 to 2023-01-13T00:00:00+00:00 for 7 days, or ask "
        "for at most 4 days from 2023-01-16T00:00:00+00:00" in message
    )
    # Both fixes it names are windows that load.
    for start, days in ((datetime(2023, 1, 13, tzinfo=UTC), 7), (late, 4)):
        window = load_grid_window(grid, zones, start=start, days=days, tail_hours=0)
        assert window.actual_ci().shape == (2, days * 24)
    with pytest.raises(NoGridDataError, match="start at 2023-01-01T00:00:00.00:00 with at most 19"):
        load_grid_window(grid, zones, start=DATA_START - timedelta(days=1), days=30, tail_hours=0)
    with pytest.raises(NoGridDataError, match="does not start on the hour"):
        load_grid_window(grid, zones, start=late + timedelta(minutes=30), days=1, tail_hours=0)


def test_a_window_longer_than_the_data_is_refused_before_jobs_are_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "grid").mkdir()
    config = replace(_replay(tmp_path), days=1_000_000)
    drawn: list[int] = []
    monkeypatch.setattr(
        "evals.replay.map_trace_to_window", lambda *_, days, **__: drawn.append(days)
    )
    with pytest.raises(NoGridDataError, match="ask for at most 11 days from 2023-01-10"):
        prepare(config)
    assert drawn == []
