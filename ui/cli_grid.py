"""`tgtg grid`: show readings of each zone, or ingest them into the store."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from tools.broker.workloads import normalise_zone
from tools.grid import ZONE_CODES
from tools.grid.ingest import ingest
from tools.grid.models import floor_hour
from ui.cli_common import (
    AT_OPTION,
    JSON_OPTION,
    SOURCE_OPTION,
    cli_time,
    domain_errors,
    emit_json,
    services,
    table,
    transaction,
)

grid_app = typer.Typer(help="Grid readings: show them, or ingest them into the store.")


@grid_app.callback(invoke_without_command=True)
@domain_errors
def grid_show(
    ctx: typer.Context,
    zone: Annotated[list[str] | None, typer.Option("--zone", help="Zone code; repeatable.")] = None,
    source: str | None = SOURCE_OPTION,
    at: str | None = AT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the grid reading of each zone at a time (default: now)."""
    if ctx.invoked_subcommand is not None:
        return
    svc = services(ctx, at)
    zones = [normalise_zone(z) for z in zone] if zone else list(ZONE_CODES)
    now = svc.clock.now()
    with transaction(svc) as session:
        grid = svc.effective_grid(session, source)
        readings = [grid.reading(z, now) for z in zones]
    if as_json:
        emit_json({"source": grid.name, "at": now, "readings": readings})
        return
    table(
        f"grid ({grid.name}) at {floor_hour(now).isoformat()}",
        ["zone", "gCO2/kWh", "renewable %", "€/MWh", "surplus", "curtailment"],
        [
            [
                r.zone,
                _fmt(r.carbon_intensity),
                _fmt(r.renewable_pct),
                _fmt(r.price_eur_per_mwh),
                r.surplus,
                r.curtailment,
            ]
            for r in readings
        ],
    )


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


@grid_app.command("ingest")
@domain_errors
def grid_ingest(
    ctx: typer.Context,
    zone: Annotated[list[str] | None, typer.Option("--zone", help="Zone code; repeatable.")] = None,
    source: str | None = SOURCE_OPTION,
    start: Annotated[
        str | None, typer.Option("--start", help="First hour (default: now-23h).")
    ] = None,
    hours: Annotated[int, typer.Option("--hours", min=1, max=24 * 366)] = 24,
    at: str | None = AT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Read grid states from a source and store them with any curtailment events."""
    svc = services(ctx, at)
    now = svc.clock.now()
    zones = [normalise_zone(z) for z in zone] if zone else list(ZONE_CODES)
    first = cli_time(start, "--start") if start else floor_hour(now) - timedelta(hours=hours - 1)
    with transaction(svc) as session:
        report = ingest(
            session=session, source=svc.grid(source), zones=zones, start=first, hours=hours, now=now
        )
    emit_json(report) if as_json else print(report)
