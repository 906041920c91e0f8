"""Turn a `ReplayResult` into the report dict (the `--json` output) and its tables.

`oracle_capture_pct` of a policy = 100 x (baseline CO2 - policy CO2) / (baseline CO2 - oracle
CO2): the share of the capacity-aware oracle's savings over the carbon-agnostic baseline that the
policy achieves (100 for the oracle, 0 for the baseline; can exceed 100 or go negative).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evals.harness import PolicyRun, account, segments
from evals.replay import ReplayResult, forecast_model

LENGTH_BINS: tuple[tuple[str, int, int], ...] = (
    ("1h", 1, 1),
    ("2-4h", 2, 4),
    ("5-12h", 5, 12),
    ("13h+", 13, 10_000),
)
TARGET_CO2_RATIO = 1.02
TARGET_TEMPORAL_CAPTURE_PCT = 90.0


def capture_pct(policy_kg: float, baseline_kg: float, oracle_kg: float) -> float | None:
    """Return the % of the oracle's savings over the baseline achieved (None without savings)."""
    saving = baseline_kg - oracle_kg
    if saving <= 0 or math.isnan(saving):
        return None
    return 100.0 * (baseline_kg - policy_kg) / saving


def _policy_row(run: PolicyRun, jobs_arrival: np.ndarray) -> dict[str, Any]:
    o = run.outcome
    started = o.started
    delay = (o.start[started] - jobs_arrival[started]).astype(float)
    return {
        "co2_kg": round(float(o.co2_kg.sum()), 4),
        "energy_kwh": round(float(o.energy_kwh.sum()), 3),
        "energy_eur": round(float(o.energy_eur.sum()), 4),
        "customer_minor": int(o.customer_minor.sum()),
        "customer_eur": round(int(o.customer_minor.sum()) / 100.0, 2),
        "deadline_misses": int(o.missed.sum()),
        "unfinished": int((~started).sum()),
        "reroutes": int(o.reroutes.sum()),
        "mean_delay_h": round(float(delay.mean()) if delay.size else 0.0, 3),
        "causal": bool(run.causal),
        "foresight": run.foresight,
    }


def _bins(result: ReplayResult, baseline: str, oracle: str | None) -> list[dict[str, Any]]:
    jobs = result.jobs
    rows = []
    for label, lo, hi in LENGTH_BINS:
        for slack in sorted({int(s) for s in np.unique(jobs.slack)}):
            mask = (jobs.duration >= lo) & (jobs.duration <= hi) & (jobs.slack == slack)
            if not mask.any():
                continue
            base = float(result.runs[baseline].outcome.co2_kg[mask].sum())
            best = float(result.runs[oracle].outcome.co2_kg[mask].sum()) if oracle else math.nan
            for name, run in result.runs.items():
                got = float(run.outcome.co2_kg[mask].sum())
                cap = capture_pct(got, base, best) if oracle else None
                rows.append(
                    {
                        "policy": name,
                        "length_bin": label,
                        "slack_h": slack,
                        "jobs": int(mask.sum()),
                        "co2_kg": round(got, 4),
                        "deadline_misses": int(run.outcome.missed[mask].sum()),
                        "oracle_capture_pct": None if cap is None else round(cap, 2),
                    }
                )
    return rows


def _per_zone(result: ReplayResult) -> list[dict[str, Any]]:
    """Return per (policy, zone): jobs that ran there, GPU-hours, CO2 and energy cost there.

    A job moved while running counts in each zone for the hours it ran there.
    """
    rows = []
    jobs = result.jobs
    for name, run in result.runs.items():
        o = run.outcome
        pieces, owner, start, zone = segments(jobs, o.start, o.zone, o.moves)
        _, co2, eur, _ = account(pieces, result.fleet, result.window, start, zone)
        for z, zone_name in enumerate(result.fleet.zones):
            on = zone == z
            rows.append(
                {
                    "policy": name,
                    "zone": zone_name,
                    "jobs": len(set(owner[on].tolist())),
                    "gpu_hours": round(float((pieces.gpus[on] * pieces.duration[on]).sum()), 3),
                    "co2_kg": round(float(co2[on].sum()), 4),
                    "energy_eur": round(float(eur[on].sum()), 4),
                    "origin_jobs": int((jobs.origin == z).sum()),
                }
            )
    return rows


def build_report(
    result: ReplayResult, temporal: dict[str, dict[str, dict[str, float]]] | None = None
) -> dict[str, Any]:
    """Return the JSON-ready report of a replay (see the module docstring for capture %)."""
    cfg, jobs = result.config, result.jobs
    policies = {name: _policy_row(run, jobs.arrival) for name, run in result.runs.items()}
    baseline = "baseline" if "baseline" in policies else None
    oracle = "oracle" if "oracle" in policies else None
    for row in policies.values():
        cap = None
        ratio = None
        if baseline and oracle:
            cap = capture_pct(
                row["co2_kg"], policies[baseline]["co2_kg"], policies[oracle]["co2_kg"]
            )
            if policies[oracle]["co2_kg"] > 0:
                ratio = row["co2_kg"] / policies[oracle]["co2_kg"]
        row["oracle_capture_pct"] = None if cap is None else round(cap, 2)
        row["co2_vs_oracle"] = None if ratio is None else round(ratio, 4)
        bound = result.oracle.lp_bound_kg if result.oracle is not None else math.nan
        known = not math.isnan(bound) and bound > 0
        row["lp_bound_kg"] = round(bound, 4) if known else None
        row["co2_vs_lp_bound"] = round(row["co2_kg"] / bound, 4) if known else None
        proven = result.oracle.milp_bound_kg if result.oracle is not None else math.nan
        has_proven = not math.isnan(proven) and proven > 0
        row["co2_vs_milp_bound"] = round(row["co2_kg"] / proven, 4) if has_proven else None
    report: dict[str, Any] = {
        "window": {
            "start": cfg.start.isoformat(),
            "days": cfg.days,
            "decide_hours": result.decide_hours,
            "zones": list(result.fleet.zones),
            "grid_notes": dict(result.window.notes),
        },
        "lp_bound_kg": policies["oracle"]["lp_bound_kg"] if oracle else None,
        "settings": {
            "seed": cfg.seed,
            "forecast": cfg.forecast,
            "forecast_sees_future": result.forecast_sees_future,
            "forecast_model": forecast_model(cfg.forecast, result.window.history, cfg.days),
            "fleet_scale": cfg.fleet_scale,
            "arrival_scale": cfg.arrival_scale,
            "slack_classes": [{"slack_h": h, "share": s} for h, s in cfg.slack_classes],
            "max_duration_hours": cfg.max_duration_hours,
            "grid_dir": str(cfg.grid_dir),
            "jobs_file": str(cfg.jobs_file),
        },
        "fleet": {
            z: {
                "gpus": round(float(c), 3),
                "kw_per_gpu": round(float(k), 4),
                "price_minor_per_gpu_hour": round(float(p), 2),
            }
            for z, c, k, p in zip(
                result.fleet.zones,
                result.fleet.capacity,
                result.fleet.kw_per_gpu,
                result.fleet.price_minor_per_gpu_hour,
                strict=True,
            )
        },
        "jobs": {
            "count": len(jobs),
            "gpu_hours": round(float((jobs.gpus * jobs.duration).sum()), 3),
            "slack_h_counts": {
                str(int(h)): int((jobs.slack == h).sum()) for h in np.unique(jobs.slack)
            },
            "trace_days": [[int(d) for d in day] for day in result.trace_days],
        },
        "policies": policies,
        "per_zone": _per_zone(result),
        "bins": _bins(result, baseline, oracle) if baseline else [],
        "pareto": result.pareto,
    }
    if result.oracle is not None:
        sol = result.oracle
        gap = sol.gap_vs_lp_bound
        report["oracle"] = {
            "method": sol.method,
            "lp_bound_kg": None if math.isnan(sol.lp_bound_kg) else round(sol.lp_bound_kg, 4),
            "schedule_kg": round(sol.objective_kg, 4),
            "gap_vs_lp_bound_pct": None if gap is None else round(100.0 * gap, 3),
            "milp_bound_kg": None if math.isnan(sol.milp_bound_kg) else round(sol.milp_bound_kg, 4),
            "time_limit_s": cfg.oracle_time_limit_s,
            "solve_seconds": round(sol.solve_seconds, 3),
            "variables": sol.variables,
            "job_classes": sol.classes,
            "mip_gap": sol.mip_gap,
            "local_moves": sol.moves,
        }
    if temporal is not None:
        report["temporal_l4_s24"] = temporal
    report["targets"] = _targets(policies, temporal, cfg.forecast)
    return report


def _targets(
    policies: dict[str, dict[str, Any]],
    temporal: dict[str, dict[str, dict[str, float]]] | None,
    forecast: str,
) -> dict[str, Any]:
    causal = {n: r for n, r in policies.items() if r["causal"] and n != "baseline"}
    out: dict[str, Any] = {"co2_ratio_target": TARGET_CO2_RATIO}
    if causal and "oracle" in policies:
        zero_miss = {n: r for n, r in causal.items() if r["deadline_misses"] == 0} or causal
        best = min(zero_miss, key=lambda n: zero_miss[n]["co2_kg"])
        out.update(
            {
                "best_causal_policy": best,
                "best_causal_co2_vs_oracle": zero_miss[best]["co2_vs_oracle"],
                "best_causal_co2_vs_lp_bound": zero_miss[best]["co2_vs_lp_bound"],
                "best_causal_deadline_misses": zero_miss[best]["deadline_misses"],
                "co2_ratio_met": bool(
                    zero_miss[best]["co2_vs_oracle"] is not None
                    and zero_miss[best]["co2_vs_oracle"] <= TARGET_CO2_RATIO
                    and zero_miss[best]["deadline_misses"] == 0
                ),
            }
        )
    if temporal is not None:
        # The target is about a causal forecast: `perfect` scores 100 % by construction.
        causal_modes = [m for m in temporal if m != "perfect"]
        mode = forecast if forecast in causal_modes else (causal_modes or list(temporal))[0]
        if forecast == "perfect" and "model" in temporal:
            mode = "model"
        mean = temporal[mode]["mean"]["capture_pct"]
        out.update(
            {
                "temporal_capture_target_pct": TARGET_TEMPORAL_CAPTURE_PCT,
                "temporal_capture_forecast": mode,
                "temporal_capture_pct": round(mean, 2),
                "temporal_capture_met": bool(mean >= TARGET_TEMPORAL_CAPTURE_PCT),
            }
        )
    return out
