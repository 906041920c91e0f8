"""Temporal capture per (L, S) bin and `tgtg forecast evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evals.temporal import BINS, Bin, capture_from_forecasts
from tests.unit.test_forecasts import daily, write_zone
from ui.cli import app

GRID_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "grid"


def perfect(ci: np.ndarray, hours: int, horizon: int) -> np.ndarray:
    padded = np.pad(ci, ((0, 0), (0, horizon + 1)), mode="edge")
    return np.stack([padded[:, t + 1 : t + 1 + horizon] for t in range(hours)], axis=1)


@pytest.mark.parametrize("b", BINS, ids=lambda b: b.label)
def test_perfect_forecasts_capture_every_bin_fully(b: Bin) -> None:
    ci = np.vstack([daily(24 * 20, seed=1), daily(24 * 20, seed=2) / 2])
    arrivals = 24 * 20 - b.slack - b.length - 1
    ahead = perfect(ci, arrivals + b.slack + b.length, b.lookahead)
    res = capture_from_forecasts(ci, ahead, arrivals=arrivals, b=b)
    assert res["capture_pct"] == pytest.approx([100.0, 100.0])
    assert (res["oracle"] < res["baseline"]).all()


def test_a_forecast_of_dirty_hours_ahead_starts_now_and_captures_nothing() -> None:
    ci = daily(24 * 5, seed=4)[None, :]
    b = Bin(4, 24)
    ahead = np.full((1, 24 * 3 + 28, b.lookahead), 5000.0)
    res = capture_from_forecasts(ci, ahead, arrivals=24 * 3, b=b)
    assert res["capture_pct"][0] == pytest.approx(0.0)
    b = Bin(4, 24, interruptible=True)
    res = capture_from_forecasts(ci, ahead, arrivals=24 * 3, b=b)
    assert res["capture_pct"][0] == pytest.approx(0.0)


def test_a_forecast_of_clean_hours_ahead_waits_to_the_last_start() -> None:
    ci = np.arange(24 * 4, dtype=float)[None, :] % 24 + 1  # every hour dirtier than forecast
    b = Bin(1, 5)
    ahead = np.zeros((1, 30, b.lookahead))
    res = capture_from_forecasts(ci, ahead, arrivals=24, b=b)
    assert res["policy"][0] == pytest.approx(np.mean([(a + 5) % 24 + 1 for a in range(24)]))


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    hours = 24 * 40
    write_zone(tmp_path, "FR", daily(hours, seed=1), daily(hours, seed=5) / 3)
    write_zone(tmp_path, "DE", daily(hours, seed=2) * 2)
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(app, ["forecast", "evaluate", *args])


def test_evaluate_json_reports_capture_and_mae_beside_naive(grid: Path) -> None:
    result = invoke(
        "--start",
        "2023-02-01",
        "--days",
        "3",
        "--grid-dir",
        str(grid),
        "--zones",
        "fr,DE",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["zones"] == ["FR", "DE"] and report["modes"] == ["persistence", "naive"]
    assert set(report["bins"]) == {b.label for b in BINS}
    head = report["bins"]["L4 S24"]
    assert head["arrivals"] == 72
    zones = report["per_zone"]
    assert report["mean_capture_pct"] == pytest.approx(
        (zones["FR"]["capture_pct"] + zones["DE"]["capture_pct"]) / 2, abs=0.01
    )
    assert zones["DE"]["naive_capture_pct"] == head["capture_pct"]["naive"]["DE"]
    assert zones["FR"]["mae"] > 0 and zones["FR"]["naive_mae"] > 0
    assert report["bins"]["L4 S168"]["arrivals"] < 72  # the data ends before a week of slack


def test_evaluate_perfect_forecast_captures_everything(grid: Path) -> None:
    result = invoke(
        "--start",
        "2023-01-20",
        "--days",
        "2",
        "--grid-dir",
        str(grid),
        "--zones",
        "FR",
        "--forecast",
        "perfect",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mean_capture_pct"] == pytest.approx(100.0)
    assert report["per_zone"]["FR"]["mae"] == pytest.approx(0.0)
    assert report["naive_mean_capture_pct"] < 100.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days 0"),
        (["--start", "next tuesday"], "--start 'next tuesday' is not a date"),
        (
            ["--start", "0001-01-01T00:00+01:00"],
            "--start '0001-01-01T00:00+01:00' is out of range: give a time from 1970-01-01",
        ),
        (["--start", "2023-01-10T00:30"], "--start '2023-01-10T00:30' is not on the hour"),
        (["--zones", "XX"], "unknown zone 'XX'"),
        (["--start", "2024-06-01"], "is not inside it"),
        (
            ["--start", "2023-02-08", "--days", "7"],
            "is not inside it: start from 2023-01-01T00:00:00+00:00 to 2023-02-03T00:00:00+00:00 "
            "for 7 days, or ask for at most 2 days from 2023-02-08T00:00:00+00:00",
        ),
        (["--forecast", "oracle"], "forecast mode 'oracle'"),
    ],
)
def test_evaluate_bad_input_exits_2_with_one_line(grid: Path, args, message) -> None:
    base = {"--start": "2023-01-10", "--days": "2", "--zones": "FR"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [item for pair in base.items() for item in pair]
    result = invoke(*flat, "--grid-dir", str(grid))
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_evaluate_text_says_why_a_bin_was_not_measured_and_the_start_that_measures_it(
    grid: Path,
) -> None:
    args = ["--days", "1", "--grid-dir", str(grid), "--zones", "FR", "--forecast", "naive"]
    result = invoke("--start", "2023-02-09", *args)  # the last recorded day
    assert result.exit_code == 0, result.stderr
    fix = "start by 2023-02-08T20:00:00+00:00 to measure it"
    assert (
        "L4 S24 not measured: the recorded data ends at 2023-02-10T00:00:00+00:00, before one "
        f"job's window (24 h slack + 4 h): {fix}"
    ) in " ".join(result.stdout.split())
    assert result.stdout.count("not measured:") == 8  # every bin needs more than one day
    measured = invoke("--start", "2023-02-08T20:00", *args, "--json")
    assert measured.exit_code == 0, measured.stderr
    assert json.loads(measured.stdout)["bins"]["L4 S24"]["arrivals"] == 1


def test_evaluate_missing_grid_dir_exits_2(tmp_path: Path) -> None:
    result = invoke("--start", "2023-01-10", "--days", "1", "--grid-dir", str(tmp_path / "no"))
    assert result.exit_code == 2
    assert "--grid-dir" in result.stderr and "is not a folder" in result.stderr


def test_evaluate_on_recorded_data_beats_the_naive_forecast() -> None:
    if not (GRID_DIR / "FR.csv").is_file():
        pytest.skip(f"recorded grid not found at {GRID_DIR}")
    result = invoke(
        "--start",
        "2023-03-01",
        "--days",
        "3",
        "--grid-dir",
        str(GRID_DIR),
        "--zones",
        "FR",
        "--zones",
        "DE",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["history_hours"] >= 24 * 365
    for zone in ("FR", "DE"):
        assert report["per_zone"][zone]["mae"] < report["per_zone"][zone]["naive_mae"]
    assert 0 <= report["mean_capture_pct"] <= 100


def test_forecast_show_prints_the_next_hours_from_recorded_history(grid: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "--grid-source",
            "recorded",
            "--grid-dir",
            str(grid),
            "forecast",
            "show",
            "--zone",
            "fr",
            "--hours",
            "5",
            "--at",
            "2023-02-05T10:30Z",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    (f,) = out["forecasts"]
    assert out["source"] == "history:persistence" and f["zone"] == "FR"
    assert f["times"][0] == "2023-02-05T11:00:00Z" and len(f["carbon_intensity"]) == 5
    assert all(p is not None for p in f["price_eur_per_mwh"])
