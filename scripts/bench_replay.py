"""Benchmark the replay: the policies (baselines and `broker`, the product's planner) on 30 days x
11 zones x 10k jobs, oracle solve time, and forecaster error (MAE) of the learned model against
the naive forecast. The broker's line also counts its hourly plans by method (lp, milp, greedy).

Usage: .venv/bin/python scripts/bench_replay.py [--start 2023-06-01] [--days 30] [--jobs 10000]
       [--oracle-days 7] [--fleet-scale 2] [--grid-dir DIR] [--jobs-file FILE]

10k jobs in 30 days is about twice the trace's own daily volume, so the seeded fleet is scaled
by 2 by default to keep the load comparable to the default week.
"""

from __future__ import annotations

import argparse
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from evals.fleet import default_fleet
from evals.jobs import load_trace, map_trace_to_window
from evals.oracle import solve_oracle
from evals.replay import HEURISTIC_POLICIES, ReplayConfig, build_policy, prepare, run_policy
from graphs.settings import Settings
from tools.grid.forecast import NaiveForecaster, SeasonalPersistenceForecaster

GOAL_SECONDS = 60.0


def _arrival_scale(jobs_file: Path, days: int, target: int) -> float:
    trace = load_trace(jobs_file)
    fleet = default_fleet()
    natural = len(map_trace_to_window(trace, days=days, zone_capacity=fleet.capacity, seed=0))
    return max(1.0, target / natural * 1.02)


def bench_policies(config: ReplayConfig) -> None:
    t0 = time.perf_counter()
    fleet, window, jobs, decide_hours = prepare(config)
    print(
        f"setup: {len(jobs)} jobs, {len(fleet.zones)} zones, {config.days} days, "
        f"{time.perf_counter() - t0:.2f} s"
    )
    total = 0.0
    for name in HEURISTIC_POLICIES:
        policy = build_policy(name, causal_forecast=config.forecast != "perfect")
        t = time.perf_counter()
        run = run_policy(
            policy,
            jobs=jobs,
            fleet=fleet,
            window=window,
            forecast=config.forecast,
            decide_hours=decide_hours,
        )
        took = time.perf_counter() - t
        total += took
        o = run.outcome
        methods = getattr(policy, "methods", None)
        print(
            f"  {name:16s} {took:6.2f} s  {o.co2_kg.sum():10.1f} kg  {o.energy_eur.sum():9.1f} EUR"
            f"  misses {int(o.missed.sum())}" + (f"  plans {methods}" if methods else "")
        )
    verdict = "within" if total <= GOAL_SECONDS else "OVER"
    print(f"policies total: {total:.2f} s ({verdict} the {GOAL_SECONDS:.0f} s goal)")


def bench_oracle(config: ReplayConfig) -> None:
    fleet, window, jobs, _ = prepare(config)
    t = time.perf_counter()
    sol = solve_oracle(jobs, fleet, window.actual_ci(), time_limit_s=config.oracle_time_limit_s)
    took = time.perf_counter() - t
    gap = 100.0 * (sol.objective_kg - sol.lp_bound_kg) / sol.lp_bound_kg
    print(
        f"oracle {config.days} d, {len(jobs)} jobs: {took:.2f} s, method {sol.method}, "
        f"{sol.variables} vars, schedule {sol.objective_kg:.1f} kg vs LP bound "
        f"{sol.lp_bound_kg:.1f} kg (+{gap:.2f} %)"
    )


def bench_forecasts(config: ReplayConfig, lead_hours: int = 24) -> None:
    _, window, _, _ = prepare(config)
    hours = config.days * 24
    for series, data in (("ci", window.ci), ("price", window.price)):
        errors = {"naive": [], "model": []}
        for name, model in (
            ("naive", NaiveForecaster()),
            ("model", SeasonalPersistenceForecaster()),
        ):
            for now in range(0, hours, 1):
                history = data[:, : window.history + now + 1]
                pred = model.predict(history, now, lead_hours)
                actual = data[:, window.history + now + 1 : window.history + now + 1 + lead_hours]
                errors[name].append(np.abs(pred - actual))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a zone without prices gives NaN
            naive = np.nanmean(np.stack(errors["naive"]), axis=(0, 2))
            model = np.nanmean(np.stack(errors["model"]), axis=(0, 2))
        unit = "g/kWh" if series == "ci" else "EUR/MWh"
        print(f"forecast MAE {series} ({unit}), leads 1-{lead_hours} h, {config.days} d:")
        for zone, a, b in zip(window.zones, naive, model, strict=True):
            if np.isnan(a):
                print(f"  {zone:12s} no data")
                continue
            print(f"  {zone:12s} naive {a:7.2f}  model {b:7.2f}  ({100 * (b - a) / a:+.1f} %)")
        print(f"  {'mean':12s} naive {np.nanmean(naive):7.2f}  model {np.nanmean(model):7.2f}")


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", default="2023-06-01")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--oracle-days", type=int, default=7)
    parser.add_argument("--forecast", default="model")
    parser.add_argument("--fleet-scale", type=float, default=2.0)
    parser.add_argument("--grid-dir", type=Path, default=settings.grid_dir)
    parser.add_argument("--jobs-file", type=Path, default=settings.jobs_file)
    args = parser.parse_args()
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    scale = _arrival_scale(args.jobs_file, args.days, args.jobs)
    config = ReplayConfig(
        grid_dir=args.grid_dir,
        jobs_file=args.jobs_file,
        start=start,
        days=args.days,
        forecast=args.forecast,
        arrival_scale=scale,
        max_jobs=args.jobs,
        pareto=False,
        fleet_scale=args.fleet_scale,
    )
    bench_policies(config)
    week = ReplayConfig(
        grid_dir=args.grid_dir,
        jobs_file=args.jobs_file,
        start=start,
        days=args.oracle_days,
        pareto=False,
    )
    bench_oracle(week)
    bench_oracle(config)
    bench_forecasts(config)


if __name__ == "__main__":
    main()
