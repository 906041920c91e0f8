"""`tgtg forecast`: show each zone's forecast, or evaluate forecasts on recorded data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evals.gridwindow import START_FORMS
from graphs.settings import Settings
from tools.broker.workloads import normalise_zone
from tools.grid import ZONE_CODES
from tools.grid.forecast import PLANNING_MODE
from tools.grid.outlook import DEFAULT_HORIZON_HOURS
from ui.cli_common import (
    AT_OPTION,
    JSON_OPTION,
    SOURCE_OPTION,
    domain_errors,
    emit_json,
    fail,
    services,
    table,
)

forecast_app = typer.Typer(
    help="Carbon-intensity and price forecasts: show them, or evaluate them on recorded data.",
    no_args_is_help=True,
)


@forecast_app.command("show")
@domain_errors
def forecast_show(
    ctx: typer.Context,
    zone: Annotated[list[str] | None, typer.Option("--zone", help="Zone code; repeatable.")] = None,
    hours: Annotated[
        int, typer.Option("--hours", min=1, max=72, help="Hours ahead.")
    ] = DEFAULT_HORIZON_HOURS,
    source: str | None = SOURCE_OPTION,
    at: str | None = AT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Forecast each zone's next hours (Electricity Maps with a key, else the history model)."""
    svc = services(ctx, at)
    provider = svc.forecasts(source)
    zones = [normalise_zone(z) for z in zone] if zone else list(ZONE_CODES)
    now = svc.clock.now()
    forecasts = [provider.forecast(z, now, hours) for z in zones]
    if as_json:
        emit_json({"source": provider.name, "issued_at": now, "forecasts": forecasts})
        return
    for f in forecasts:
        table(
            f"{f.zone} forecast ({f.source}) issued {f.issued_at.isoformat()}",
            ["hour (UTC)", "gCO2/kWh", "€/MWh"],
            [
                [t.isoformat(), f"{ci:.1f}", "—" if p is None else f"{p:.1f}"]
                for t, ci, p in zip(f.times, f.carbon_intensity, f.price_eur_per_mwh, strict=True)
            ],
        )


@forecast_app.command("evaluate")
@domain_errors
def forecast_evaluate(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--start", help=f"First arrival hour, {START_FORMS}.")],
    days: Annotated[int, typer.Option("--days", help="Days of arrivals to evaluate.")],
    grid_dir: Annotated[
        Path | None, typer.Option("--grid-dir", help="Recorded <ZONE>.csv folder (TGTG_GRID_DIR).")
    ] = None,
    zones: Annotated[
        list[str] | None,
        typer.Option("--zones", help="Zone codes, repeatable or comma-separated (default: all)."),
    ] = None,
    forecast: Annotated[
        str,
        typer.Option(
            "--forecast",
            help=(
                "Forecast measured: persistence (the planner's) | dayahead (with published "
                "day-ahead prices) | model | naive | perfect."
            ),
        ),
    ] = PLANNING_MODE,
    as_json: bool = JSON_OPTION,
) -> None:
    """Temporal capture per (L, S) bin and 24 h MAE of a forecast, the naive forecast beside it."""
    from evals.forecast_eval import evaluate_forecasts
    from evals.gridwindow import parse_window_start

    root = ctx.find_root().obj
    settings = root["settings"] if isinstance(root, dict) else Settings()
    folder = grid_dir or settings.grid_dir
    if folder is None or not Path(folder).is_dir():
        raise fail(f"--grid-dir {str(folder)!r} is not a folder: pass the recorded CSV directory")
    names = [part for z in zones or [] for part in z.split(",") if part.strip()]
    codes = tuple(normalise_zone(z) for z in names) if names else ZONE_CODES
    modes = (forecast,) if forecast == "naive" else (forecast, "naive")
    report = evaluate_forecasts(
        Path(folder), start=parse_window_start(start), days=days, zones=codes, modes=modes
    )
    if as_json:
        emit_json(report)
        return
    _print_report(report)


def _print_report(report: dict[str, Any]) -> None:
    modes = report["modes"]
    head = report["bins"].get("L4 S24")
    if head is not None:
        table(
            f"L4 S24 capture % and 24 h MAE (gCO2/kWh) from {report['start']}, "
            f"{report['days']} days",
            ["zone"] + [f"{m} capture %" for m in modes] + [f"{m} MAE" for m in modes],
            [
                [zone]
                + [head["capture_pct"][m][zone] for m in modes]
                + [report["mae"][m][zone] for m in modes]
                for zone in report["zones"]
            ]
            + [["mean"] + [head["capture_pct"][m]["mean"] for m in modes] + [""] * len(modes)],
        )
    if report["bins"]:
        _print_bins(report)
    for label, reason in report["bins_skipped"].items():
        print(f"{label} not measured: {reason}")


def _print_bins(report: dict[str, Any]) -> None:
    modes = report["modes"]
    table(
        "mean capture % over zones per (L, S) bin",
        ["bin", "arrivals", "oracle saving %"] + list(modes),
        [
            [
                label,
                entry["arrivals"],
                round(
                    sum(entry["oracle_reduction_pct"].values())
                    / len(entry["oracle_reduction_pct"]),
                    1,
                ),
            ]
            + [entry["capture_pct"][m]["mean"] for m in modes]
            for label, entry in report["bins"].items()
        ],
    )
