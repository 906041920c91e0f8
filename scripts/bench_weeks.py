"""Benchmark the broker's planner over one-week replays spread over the recorded years.

Each window is a one-week replay (`evals.replay.run_replay`, policy `broker` only, no Pareto
sweep) on the default fleet and seeded jobs: the broker's kg CO2 against the capacity-aware
oracle's (replayed through the same harness), the oracle's LP bound and its proven MILP bound,
the broker's missed deadlines and how often it moved a running job (`tools.broker.make_room`).
Per week one line, then the mean and worst ratios.

Windows: `--weeks` Mondays evenly spread from the first Monday of February 2021 (28 days of
history before it) to the last Monday whose week and tail the recorded data still cover
(`--last`), each date snapped to the Monday on or after it. Deterministic for `--weeks`, `--seed`
and the two ends; `--years 2021,2022` keeps only the windows starting in those years (the same
dates as without it, so subsets compare).

Usage: .venv/bin/python scripts/bench_weeks.py [--forecast persistence|model] [--weeks 20]
       [--years 2021,2022] [--no-oracle] [--oracle-time-limit 60] [--grid-dir DIR]
       [--jobs-file FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from evals.replay import ReplayConfig, run_replay
from graphs.settings import Settings
from tools.grid.forecast import FORECAST_MODES, PLANNING_MODE

FIRST = date(2021, 2, 1)
LAST = date(2024, 2, 26)


def window_starts(weeks: int, first: date = FIRST, last: date = LAST) -> list[date]:
    """Return `weeks` Mondays evenly spread from `first` to `last` (each snapped forward)."""
    if weeks < 1:
        raise SystemExit(f"error: --weeks {weeks!r}: give at least 1")
    span = (last - first).days
    out: list[date] = []
    for i in range(weeks):
        day = first + timedelta(days=round(span * i / max(weeks - 1, 1)))
        day += timedelta(days=(7 - day.weekday()) % 7)
        if day > last:
            day -= timedelta(days=7)
        out.append(day)
    return out


def run_week(args: argparse.Namespace, day: date) -> dict[str, float | int | str]:
    """Replay one week; return the broker's and oracle's kg, the LP bound and the misses."""
    config = ReplayConfig(
        grid_dir=args.grid_dir,
        jobs_file=args.jobs_file,
        start=datetime(day.year, day.month, day.day, tzinfo=UTC),
        days=7,
        seed=args.seed,
        forecast=args.forecast,
        policies=("broker",),
        oracle=not args.no_oracle,
        oracle_time_limit_s=args.oracle_time_limit,
        pareto=False,
    )
    t0 = time.perf_counter()
    result = run_replay(config)
    broker = result.runs["broker"].outcome
    row: dict[str, float | int | str] = {
        "week": day.isoformat(),
        "jobs": len(result.jobs),
        "broker_kg": float(broker.co2_kg.sum()),
        "misses": int(broker.missed.sum()),
        "moved": len(broker.moves),
        "oracle_kg": math.nan,
        "lp_bound_kg": math.nan,
    }
    if result.oracle is not None:
        row["oracle_kg"] = float(result.runs["oracle"].outcome.co2_kg.sum())
        row["lp_bound_kg"] = float(result.oracle.lp_bound_kg)
        row["milp_bound_kg"] = float(result.oracle.milp_bound_kg)
        row["oracle_misses"] = int(result.runs["oracle"].outcome.missed.sum())
    row["x_oracle"] = float(row["broker_kg"]) / float(row["oracle_kg"])
    row["x_lp_bound"] = float(row["broker_kg"]) / float(row["lp_bound_kg"])
    row["x_milp_bound"] = float(row["broker_kg"]) / float(row.get("milp_bound_kg", math.nan))
    row["seconds"] = time.perf_counter() - t0
    return row


def _fmt(value: float) -> str:
    return "      -" if math.isnan(value) else f"{value:7.3f}"


def main() -> None:
    """Parse the options, replay every chosen week and print the table."""
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--forecast", default=PLANNING_MODE, choices=FORECAST_MODES)
    parser.add_argument("--weeks", type=int, default=20)
    parser.add_argument("--years", default="", help="comma-separated start years to keep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--last", type=date.fromisoformat, default=LAST)
    parser.add_argument("--no-oracle", action="store_true", help="broker only (fast)")
    parser.add_argument("--oracle-time-limit", type=float, default=60.0)
    parser.add_argument("--grid-dir", type=Path, default=settings.grid_dir)
    parser.add_argument("--jobs-file", type=Path, default=settings.jobs_file)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines")
    args = parser.parse_args()
    if args.grid_dir is None or args.jobs_file is None:
        raise SystemExit("error: set --grid-dir and --jobs-file (or TGTG_GRID_DIR, TGTG_JOBS_FILE)")
    try:
        years = {int(y) for y in args.years.split(",") if y.strip()}
    except ValueError:
        raise SystemExit(f"error: --years {args.years!r}: give years like 2021,2022") from None
    days = [d for d in window_starts(args.weeks, last=args.last) if not years or d.year in years]
    print(
        f"{'week':10s} {'jobs':>5s} {'broker':>8s} {'oracle':>8s} {'LP':>8s} "
        f"{'x orac':>7s} {'x LP':>7s} {'x MILP':>7s} {'miss':>4s} {'moved':>5s} {'s':>5s}   "
        f"forecast {args.forecast}",
        flush=True,
    )
    rows = []
    for day in days:
        row = run_week(args, day)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
            continue
        print(
            f"{row['week']:10s} {row['jobs']:5d} {row['broker_kg']:8.1f} "
            f"{row['oracle_kg']:8.1f} {row['lp_bound_kg']:8.1f} {_fmt(float(row['x_oracle']))} "
            f"{_fmt(float(row['x_lp_bound']))} {_fmt(float(row['x_milp_bound']))} "
            f"{row['misses']:4d} {row['moved']:5d} "
            f"{row['seconds']:5.0f}",
            flush=True,
        )
    if not rows:
        return
    xo = np.array([float(r["x_oracle"]) for r in rows])
    xl = np.array([float(r["x_lp_bound"]) for r in rows])
    xm = np.array([float(r["x_milp_bound"]) for r in rows])
    kg = sum(float(r["broker_kg"]) for r in rows)
    print(
        f"{len(rows)} weeks: broker {kg:.1f} kg, misses {sum(int(r['misses']) for r in rows)}, "
        f"jobs moved {sum(int(r['moved']) for r in rows)}; "
        f"x oracle mean {_fmt(float(np.mean(xo)))} worst {_fmt(float(np.max(xo)))}; "
        f"x LP bound mean {_fmt(float(np.mean(xl)))} worst {_fmt(float(np.max(xl)))}; "
        f"x MILP bound mean {_fmt(float(np.mean(xm)))} worst {_fmt(float(np.max(xm)))}"
    )


if __name__ == "__main__":
    main()
