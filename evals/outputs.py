"""Write a replay report and the per-job outcomes of every policy.

`write_outputs`: JSON, CSV tables, PNG plots and a Markdown summary into a folder;
`write_jobs_csv`: one row per (job, policy) into a CSV file (`--jobs-csv`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from evals.replay import ReplayResult

logger = logging.getLogger(__name__)

JOB_COLUMNS = (
    "job_id",
    "arrival",
    "gpus",
    "hours",
    "slack_h",
    "deadline",
    "policy",
    "causal",
    "zone",
    "start",
    "end",
    "kg_co2",
    "missed_deadline",
    "moved",
)

_POLICY_COLUMNS = (
    "policy",
    "causal",
    "co2_kg",
    "co2_vs_oracle",
    "lp_bound_kg",
    "co2_vs_lp_bound",
    "co2_vs_milp_bound",
    "oracle_capture_pct",
    "energy_kwh",
    "energy_eur",
    "customer_eur",
    "deadline_misses",
    "unfinished",
    "reroutes",
    "mean_delay_h",
    "foresight",
)


def _write_csv(
    path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None
) -> None:
    if not rows:
        path.write_text("", encoding="utf-8")
        return
    fields = list(columns or rows[0].keys())
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _data_line(report: dict[str, Any]) -> str:
    """Return the summary line on the data behind the replay: history, tail, gaps, trace days."""
    notes = report["window"].get("grid_notes", {})
    have, want = notes.get("history_hours"), notes.get("history_hours_wanted")
    parts = []
    if have is not None and want is not None:
        short = " (**short**: forecasts rest on less)" if have < want else ""
        parts.append(f"history {have} of {want} h{short}")
    parts.append(f"tail hours repeated {notes.get('tail_hours_repeated', 0)}")
    parts.append(f"CI hours filled {notes.get('ci_filled_hours', 0)}")
    parts.append(f"missing rows outside the window {notes.get('missing_rows_outside_window', 0)}")
    days = report["jobs"].get("trace_days")
    if days:
        parts.append("trace days " + ", ".join("+".join(str(d) for d in day) for day in days))
    return "Data: " + "; ".join(parts) + "."


def markdown_summary(report: dict[str, Any]) -> str:
    """Return a Markdown summary of the report."""
    w, s = report["window"], report["settings"]
    lines = [
        f"# Replay {w['start'][:10]} + {w['days']} day{'' if w['days'] == 1 else 's'}",
        "",
        f"Jobs: {report['jobs']['count']} ({report['jobs']['gpu_hours']:,.1f} GPU-hours); "
        f"forecast `{s['forecast']}`; seed {s['seed']}; fleet scale {s['fleet_scale']}."
        + (f" Forecast model: {s['forecast_model']}." if s.get("forecast_model") else ""),
        _data_line(report),
        "",
        "| policy | causal | kg CO2 | x oracle | x LP bound | % oracle savings | energy EUR "
        "| customer EUR | misses | reroutes | mean delay h |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["policies"].items():
        lines.append(
            f"| {name} | {r['causal']} | {_fmt(r['co2_kg'])} | {_fmt(r['co2_vs_oracle'])} | "
            f"{_fmt(r.get('co2_vs_lp_bound'))} | {_fmt(r['oracle_capture_pct'])} | "
            f"{_fmt(r['energy_eur'])} | {_fmt(r['customer_eur'])} | {r['deadline_misses']} | "
            f"{r['reroutes']} | {_fmt(r['mean_delay_h'])} |"
        )
    lines += [""] + [
        f"* `{name}` is not causal: {r['foresight']}."
        for name, r in report["policies"].items()
        if r.get("foresight")
    ]
    if "oracle" in report:
        o = report["oracle"]
        lines += [
            "",
            f"Oracle: `{o['method']}`, schedule {_fmt(o['schedule_kg'])} kg, LP lower bound "
            f"{_fmt(o['lp_bound_kg'])} kg (schedule {_fmt(o.get('gap_vs_lp_bound_pct'))} % "
            f"above it), MILP lower bound {_fmt(o.get('milp_bound_kg'))} kg, "
            f"{o['variables']} variables, {_fmt(o['solve_seconds'])} s of a "
            f"{_fmt(o.get('time_limit_s'))} s limit.",
        ]
    t = report["targets"]
    lines += ["", "## Targets", ""]
    if "best_causal_policy" in t:
        verdict = "met" if t["co2_ratio_met"] else "not met"
        lines.append(
            f"* Best causal policy `{t['best_causal_policy']}`: "
            f"{_fmt(t['best_causal_co2_vs_oracle'])} x oracle CO2 "
            f"({_fmt(t['best_causal_co2_vs_lp_bound'])} x the LP lower bound) with "
            f"{t['best_causal_deadline_misses']} misses (target <= {t['co2_ratio_target']} "
            f"with 0): **{verdict}**."
        )
    if "temporal_capture_pct" in t:
        lines.append(
            f"* Per-zone temporal oracle (4 h jobs, 24 h slack), forecast "
            f"`{t['temporal_capture_forecast']}`: {_fmt(t['temporal_capture_pct'])} % of savings "
            f"(target >= {t['temporal_capture_target_pct']}): "
            f"**{'met' if t['temporal_capture_met'] else 'not met'}**."
        )
    if report.get("temporal_l4_s24"):
        lines += ["", "## Temporal capture by zone (L4 S24, % of oracle savings)", ""]
        modes = list(report["temporal_l4_s24"])
        lines += [
            "| zone | oracle reduction % | " + " | ".join(modes) + " |",
            "|---|---:|" + "---:|" * len(modes),
        ]
        first = report["temporal_l4_s24"][modes[0]]
        for zone in first:
            caps = " | ".join(
                _fmt(report["temporal_l4_s24"][m][zone]["capture_pct"]) for m in modes
            )
            lines.append(f"| {zone} | {_fmt(first[zone]['oracle_reduction_pct'])} | {caps} |")
    if report.get("pareto"):
        lines += [
            "",
            "## CO2 / EUR trade-off over score weights (spatio-temporal policy)",
            "",
            "| carbon w | price w | kg CO2 | energy EUR | misses | Pareto |",
            "|---:|---:|---:|---:|---:|---|",
        ]
        for p in report["pareto"]:
            lines.append(
                f"| {p['carbon_weight']:.2f} | {p['price_weight']:.2f} | {_fmt(p['co2_kg'])} | "
                f"{_fmt(p['energy_eur'])} | {p['deadline_misses']} | {p['pareto_optimal']} |"
            )
    return "\n".join(lines) + "\n"


def _plots(report: dict[str, Any], out: Path) -> list[Path]:
    paths = []
    names = list(report["policies"])
    co2 = [report["policies"][n]["co2_kg"] for n in names]
    eur = [report["policies"][n]["energy_eur"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(
        names,
        co2,
        color=["tab:green" if report["policies"][n]["causal"] else "tab:gray" for n in names],
    )
    ax.set_ylabel("kg CO2")
    ax.set_title("CO2 per policy (grey: not causal)")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    paths.append(out / "co2_by_policy.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(eur, co2, color="tab:blue")
    for n, x, y in zip(names, eur, co2, strict=True):
        ax.annotate(n, (x, y), fontsize=8)
    front = [p for p in report.get("pareto", []) if p["pareto_optimal"]]
    if report.get("pareto"):
        ax.plot(
            [p["energy_eur"] for p in report["pareto"]],
            [p["co2_kg"] for p in report["pareto"]],
            "o--",
            color="tab:orange",
            label="weight sweep",
        )
        front.sort(key=lambda p: p["energy_eur"])
        ax.plot(
            [p["energy_eur"] for p in front],
            [p["co2_kg"] for p in front],
            "-",
            color="tab:red",
            label="Pareto front",
        )
        ax.legend()
    ax.set_xlabel("energy EUR")
    ax.set_ylabel("kg CO2")
    ax.set_title("CO2 vs energy cost")
    fig.tight_layout()
    paths.append(out / "pareto.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    zones = report["window"]["zones"]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
        hours = [
            next(r["gpu_hours"] for r in report["per_zone"] if r["policy"] == n and r["zone"] == z)
            for z in zones
        ]
        ax.bar([k + i * width for k in range(len(zones))], hours, width=width, label=n)
    ax.set_xticks([k + 0.4 for k in range(len(zones))], zones, rotation=30)
    ax.set_ylabel("GPU-hours")
    ax.set_title("Where each policy ran the work")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "gpu_hours_by_zone.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_outputs(report: dict[str, Any], out: Path) -> list[Path]:
    """Write report.json, policies/per_zone/bins/pareto CSVs, summary.md and PNGs into `out`.

    All files are written into a staging folder inside `out` first and moved into place only
    once every one is complete, so a write that fails (a full disk, say) leaves the files of an
    earlier run as they were; the staging folder is removed either way.
    """
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".outputs-", dir=out))
    try:
        staged = _write_all(report, stage)
        for path in staged:
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    paths = [out / path.name for path in staged]
    logger.info("wrote %d files to %s", len(paths), out)
    return paths


def _write_all(report: dict[str, Any], out: Path) -> list[Path]:
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    rows = [{"policy": n, **r} for n, r in report["policies"].items()]
    _write_csv(out / "policies.csv", rows, _POLICY_COLUMNS)
    _write_csv(out / "per_zone.csv", report["per_zone"])
    _write_csv(out / "bins.csv", report["bins"])
    _write_csv(out / "pareto.csv", report["pareto"])
    (out / "summary.md").write_text(markdown_summary(report), encoding="utf-8")
    names = ("report.json", "policies.csv", "per_zone.csv", "bins.csv", "pareto.csv", "summary.md")
    return [out / n for n in names] + _plots(report, out)


def write_jobs_csv(result: ReplayResult, path: Path) -> Path:
    """Write one row per (job, policy): times ISO-8601 UTC; zone, start, end empty if unstarted.

    `job_id` is the job's index in the replay (arrival order); `zone` is where it started; `end`
    is exclusive; `moved` lists `ZONE@time` for each move while it ran (space-separated; the
    job ran in that zone from that hour). The rows go to a partial file next to `path` that
    replaces it only once complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        _write_job_rows(result, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("wrote %d job rows to %s", len(result.jobs) * len(result.runs), path)
    return path


def _write_job_rows(result: ReplayResult, path: Path) -> None:
    jobs, origin, zones = result.jobs, result.window.start, result.fleet.zones

    def at(hour: int) -> str:
        return (origin + timedelta(hours=int(hour))).isoformat()

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(JOB_COLUMNS)
        for name, run in result.runs.items():
            o = run.outcome
            moved: dict[int, list[str]] = {}
            for j, hour, new in o.moves:
                moved.setdefault(j, []).append(f"{zones[new]}@{at(hour)}")
            for j in range(len(jobs)):
                started = o.start[j] >= 0
                writer.writerow(
                    (
                        j,
                        at(jobs.arrival[j]),
                        round(float(jobs.gpus[j]), 3),
                        int(jobs.duration[j]),
                        int(jobs.slack[j]),
                        at(jobs.deadline[j]),
                        name,
                        run.causal,
                        zones[o.zone[j]] if started else "",
                        at(o.start[j]) if started else "",
                        at(o.start[j] + jobs.duration[j]) if started else "",
                        round(float(o.co2_kg[j]), 6),
                        bool(o.missed[j]),
                        " ".join(moved.get(j, [])),
                    )
                )
