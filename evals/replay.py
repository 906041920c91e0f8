"""Replay a window of recorded grid hours and a job trace through every policy and the oracle.

`run_replay(config)` loads the window (with forecast history and a tail for late jobs), maps the
trace onto it, runs each heuristic policy through the harness, solves the capacity-aware oracle
and replays its schedule through the same harness (so every row is accounted identically), adds
the per-job oracle as a loose bound, and optionally sweeps score weights for the CO2/EUR Pareto
front. Everything is deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from evals.fleet import Fleet, default_fleet
from evals.gridwindow import HISTORY_DAYS, GridWindow, load_grid_window
from evals.harness import JobOutcome, PolicyRun, account, simulate
from evals.jobs import (
    DEFAULT_MAX_DURATION_HOURS,
    DEFAULT_SLACK_CLASSES,
    IntArray,
    JobSet,
    active_days,
    load_trace,
    map_trace_to_window,
    window_trace_days,
)
from evals.oracle import OracleSolution, solve_oracle
from evals.policies import (
    BaselinePolicy,
    BrokerPolicy,
    ScheduledPolicy,
    carbon_only_policy,
    composite_policy,
    price_only_policy,
)
from evals.policy_base import Policy
from evals.schedule import per_job_oracle
from tools.broker.blocking import ARRIVAL_SPAN_H
from tools.broker.scoring import ScoreWeights
from tools.errors import InvalidInputError
from tools.grid.blend import MIN_HISTORY_HOURS, REFIT_HOURS
from tools.grid.forecast import FORECAST_MODES, NAIVE_DAYS, PLANNING_MODE
from tools.grid.outlook import DEFAULT_HISTORY_DAYS, FITTED_MODES

logger = logging.getLogger(__name__)

GRACE_HOURS = 24
"""Hours after the window (beyond the longest slack) in which waiting jobs may still start."""
HEURISTIC_POLICIES = ("baseline", "price_only", "carbon_only", "composite", "broker")
PARETO_CARBON_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
ORACLE_FORESIGHT = "replays the oracle's schedule, solved on the recorded future"
PER_JOB_ORACLE_FORESIGHT = "each job alone at its recorded best (zone, start), capacity ignored"
PARETO_PLAN_BUDGET_S = 0.0
"""The sweep's six runs use the planner's greedy plan (no joint solve) to keep a replay short."""


@dataclass(frozen=True)
class ReplayConfig:
    """Inputs of one replay."""

    grid_dir: Path
    jobs_file: Path
    start: datetime
    days: int = 7
    seed: int = 0
    fleet_scale: float = 1.0
    forecast: str = PLANNING_MODE
    arrival_scale: float = 1.0
    max_jobs: int | None = None
    slack_classes: tuple[tuple[int, float], ...] = DEFAULT_SLACK_CLASSES
    max_duration_hours: int = DEFAULT_MAX_DURATION_HOURS
    policies: tuple[str, ...] = HEURISTIC_POLICIES
    oracle: bool = True
    oracle_time_limit_s: float = 60.0
    oracle_gap: float = 1e-3
    pareto: bool = True
    history_days: int | None = None
    """Days of history before the window; default `forecast_history_days(forecast)`."""
    fleet: Fleet | None = None
    """Explicit fleet; default the seeded fleet scaled by `fleet_scale`."""


@dataclass
class ReplayResult:
    """Everything a report needs."""

    config: ReplayConfig
    fleet: Fleet
    window: GridWindow
    jobs: JobSet
    decide_hours: int
    runs: dict[str, PolicyRun]
    oracle: OracleSolution | None = None
    pareto: list[dict[str, float]] = field(default_factory=list)
    forecast_sees_future: bool = False
    trace_days: list[IntArray] = field(default_factory=list)
    """Trace days each window day overlays (`evals.jobs`, rule 4)."""


def forecast_history_days(forecast: str) -> int:
    """Return the days of history a replay with `forecast` loads before its window.

    What the product's history provider reads from recorded data for that mode
    (`tools.grid.outlook.history_days_for`): a year for the fitted models (`model`, `dayahead`;
    with 28 days they would fall back to seasonal persistence), 28 days for the others, so the
    default (`PLANNING_MODE`) replays exactly the forecasts the product plans on.
    """
    return DEFAULT_HISTORY_DAYS if forecast in FITTED_MODES else HISTORY_DAYS


def forecast_model(forecast: str, history_hours: int, days: int) -> str:
    """Return which forecast model a replay ran, in words (for the report and summary)."""
    if forecast == "perfect":
        return "perfect: the recorded future (not causal)"
    if forecast == "naive":
        return f"naive: hour-of-day mean of the last {NAIVE_DAYS} days"
    if forecast == "dayahead":
        return (
            "dayahead: seasonal persistence corrected by the day-ahead prices published by each "
            f"hour, fitted on up to {history_hours // 24} d of history before the window"
        )
    fitted = "blend fitted on up to a year of history, as the product forecasts recorded data"
    # Replay hour 0 is a refit boundary (midnight); later fits come every `REFIT_HOURS`.
    short = MIN_HISTORY_HOURS - (history_hours + 1)
    if short <= 0:
        return f"model: {fitted} ({history_hours // 24} d of history before the window)"
    from_day = math.ceil(short / REFIT_HOURS) * REFIT_HOURS // 24
    persistence = (
        f"model: seasonal persistence (the blend needs {MIN_HISTORY_HOURS / 24:.0f} d of "
        f"history, the window had {history_hours // 24} d)"
    )
    return persistence if from_day >= days else f"{persistence}, from day {from_day} the {fitted}"


def build_policy(
    name: str, *, causal_forecast: bool, prior: Sequence[tuple[float, float, int, int]] = ()
) -> Policy:
    """Return the heuristic policy called `name` (`prior`: see `prior_arrivals`).

    Raises:
        InvalidInputError: Unknown policy name.
    """
    if name == "baseline":
        return BaselinePolicy()
    if name == "price_only":
        return price_only_policy()
    if name == "carbon_only":
        return carbon_only_policy()
    if name == "composite":
        return composite_policy()
    if name == "broker":
        return BrokerPolicy(causal=causal_forecast, prior=prior)
    raise InvalidInputError(f"policy {name!r}: choose from {list(HEURISTIC_POLICIES)}")


def prepare(config: ReplayConfig) -> tuple[Fleet, GridWindow, JobSet, int]:
    """Load the fleet, grid window and jobs of a replay; return them and the decide hours."""
    if config.forecast not in FORECAST_MODES:
        raise InvalidInputError(
            f"forecast {config.forecast!r}: choose one of {list(FORECAST_MODES)}"
        )
    fleet = config.fleet or default_fleet(config.fleet_scale)
    max_slack = max(h for h, _ in config.slack_classes)
    decide_hours = config.days * 24 + max_slack + GRACE_HOURS
    window = load_grid_window(
        config.grid_dir,
        fleet.zones,
        start=config.start,
        days=config.days,
        tail_hours=decide_hours - config.days * 24 + config.max_duration_hours + 1,
        history_days=(
            forecast_history_days(config.forecast)
            if config.history_days is None
            else config.history_days
        ),
    )
    # Drawn only once the window is known to be recorded: a window far too long is refused
    # before its jobs fill memory.
    jobs = _window_jobs(config, fleet, config.start, config.days, config.max_jobs)
    return fleet, window, jobs, decide_hours


def _window_jobs(
    config: ReplayConfig, fleet: Fleet, start: datetime, days: int, max_jobs: int | None
) -> JobSet:
    """Return the jobs a replay of `days` days from `start` draws (its start day seeds them)."""
    return map_trace_to_window(
        load_trace(config.jobs_file),
        days=days,
        zone_capacity=fleet.capacity,
        seed=config.seed,
        arrival_scale=config.arrival_scale,
        slack_classes=config.slack_classes,
        max_duration_hours=config.max_duration_hours,
        max_jobs=max_jobs,
        day_seed=start.toordinal(),
    )


def prior_arrivals(config: ReplayConfig, fleet: Fleet) -> list[tuple[float, float, int, int]]:
    """Return (arrival hour, GPUs, hours, slack hours) of the jobs of the week before the window.

    They are drawn as a replay starting that week would draw them (its start day seeds the
    trace days), on negative hours. The broker learns its large-job arrival rate from them, as
    the product does from a week of submitted workloads; they never run in the replay.
    """
    days = ARRIVAL_SPAN_H // 24
    jobs = _window_jobs(config, fleet, config.start - timedelta(days=days), days, None)
    return [
        (float(a) - days * 24, float(g), int(d), int(s))
        for a, g, d, s in zip(jobs.arrival, jobs.gpus, jobs.duration, jobs.slack, strict=True)
    ]


def run_policy(
    policy: Policy,
    *,
    jobs: JobSet,
    fleet: Fleet,
    window: GridWindow,
    forecast: str,
    decide_hours: int,
) -> PolicyRun:
    """Simulate one policy on a fresh view of the window with `forecast` forecasts."""
    return simulate(
        policy,
        jobs=jobs,
        fleet=fleet,
        window=window,
        forecast=forecast,
        decide_hours=decide_hours,
        progress=True,
    )


def per_job_oracle_run(jobs: JobSet, fleet: Fleet, window: GridWindow) -> PolicyRun:
    """Account the per-job oracle's schedule (capacity ignored, so no harness run)."""
    start, zone = per_job_oracle(jobs, fleet, window.actual_ci())
    energy, co2, cost, customer = account(jobs, fleet, window, start, zone)
    missed = start + jobs.duration > jobs.deadline
    outcome = JobOutcome(
        start, zone, np.zeros(len(jobs), dtype=np.int64), energy, co2, cost, customer, missed
    )
    peak = np.zeros(len(fleet.zones))
    for z in range(len(fleet.zones)):
        on = zone == z
        if on.any():
            use = np.zeros(window.horizon + 1)
            np.add.at(use, start[on], jobs.gpus[on])
            np.add.at(use, start[on] + jobs.duration[on], -jobs.gpus[on])
            peak[z] = np.cumsum(use).max()
    return PolicyRun("oracle_per_job", False, outcome, peak, PER_JOB_ORACLE_FORESIGHT)


def pareto_sweep(
    *,
    jobs: JobSet,
    fleet: Fleet,
    window: GridWindow,
    forecast: str,
    decide_hours: int,
    causal: bool,
) -> list[dict[str, float]]:
    """Run the broker's (greedy) plan over carbon/price weight mixes; mark non-dominated points."""
    points: list[dict[str, float]] = []
    for w in PARETO_CARBON_WEIGHTS:
        weights = ScoreWeights(carbon=w, price=1.0 - w, utilization=0.0)
        policy = BrokerPolicy(
            objective="composite",
            weights=weights,
            causal=causal,
            name=f"pareto_c{w:.2f}",
            time_budget_s=PARETO_PLAN_BUDGET_S,
        )
        run = run_policy(
            policy,
            jobs=jobs,
            fleet=fleet,
            window=window,
            forecast=forecast,
            decide_hours=decide_hours,
        )
        points.append(
            {
                "carbon_weight": w,
                "price_weight": 1.0 - w,
                "co2_kg": float(run.outcome.co2_kg.sum()),
                "energy_eur": float(run.outcome.energy_eur.sum()),
                "deadline_misses": int(run.outcome.missed.sum()),
            }
        )
    for p in points:
        p["pareto_optimal"] = not any(
            q is not p
            and q["co2_kg"] <= p["co2_kg"]
            and q["energy_eur"] <= p["energy_eur"]
            and (q["co2_kg"] < p["co2_kg"] or q["energy_eur"] < p["energy_eur"])
            for q in points
        )
    return points


def best_incumbent(solution: OracleSolution, runs: dict[str, PolicyRun]) -> OracleSolution:
    """Return the oracle's schedule, or a policy's when it misses no deadline and emits less.

    Any such run is a feasible schedule of the oracle's problem (the harness kept capacity, no
    job moved once started), so the oracle keeps the best one known; `lp_bound_kg` stays the
    lower bound and `method` names where the schedule came from.
    """
    best = solution
    for name, run in runs.items():
        o = run.outcome
        kg = float(o.co2_kg.sum())
        if not o.missed.any() and kg < best.objective_kg * (1 - 1e-9):
            best = dataclasses.replace(
                solution,
                start=o.start.copy(),
                zone=o.zone.copy(),
                method=f"{solution.method}, bettered by {name}'s schedule",
                objective_kg=kg,
            )
    if best is not solution:
        logger.info("oracle: %s beats the solver's %.2f kg", best.method, solution.objective_kg)
    return best


def run_replay(config: ReplayConfig) -> ReplayResult:
    """Run every configured policy, the oracles and the Pareto sweep on one window."""
    fleet, window, jobs, decide_hours = prepare(config)
    prior = prior_arrivals(config, fleet) if "broker" in config.policies else []
    forecast = config.forecast
    causal_forecast = forecast != "perfect"
    runs: dict[str, PolicyRun] = {}
    for i, name in enumerate(config.policies, start=1):
        logger.debug("policy %d/%d: %s", i, len(config.policies), name)
        policy = build_policy(name, causal_forecast=causal_forecast, prior=prior)
        runs[name] = run_policy(
            policy,
            jobs=jobs,
            fleet=fleet,
            window=window,
            forecast=forecast,
            decide_hours=decide_hours,
        )
    result = ReplayResult(
        config,
        fleet,
        window,
        jobs,
        decide_hours,
        runs,
        forecast_sees_future=not causal_forecast,
        trace_days=window_trace_days(
            active_days(load_trace(config.jobs_file)),
            days=config.days,
            arrival_scale=config.arrival_scale,
            day_seed=config.start.toordinal(),
        ),
    )
    if config.oracle:
        solution = solve_oracle(
            jobs,
            fleet,
            window.actual_ci(),
            time_limit_s=config.oracle_time_limit_s,
            mip_rel_gap=config.oracle_gap,
        )
        solution = best_incumbent(solution, runs)
        scheduled = ScheduledPolicy("oracle", solution.start, solution.zone)
        run = run_policy(
            scheduled,
            jobs=jobs,
            fleet=fleet,
            window=window,
            forecast=forecast,
            decide_hours=decide_hours,
        )
        runs["oracle"] = dataclasses.replace(run, foresight=ORACLE_FORESIGHT)
        runs["oracle_per_job"] = per_job_oracle_run(jobs, fleet, window)
        result.oracle = solution
    if config.pareto:
        result.pareto = pareto_sweep(
            jobs=jobs,
            fleet=fleet,
            window=window,
            forecast=forecast,
            decide_hours=decide_hours,
            causal=causal_forecast,
        )
    return result
