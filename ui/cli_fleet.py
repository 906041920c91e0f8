"""`tgtg db`, `tgtg seed`, `tgtg nodes` and `tgtg orgs`: the schema, the demo fleet, listings."""

from __future__ import annotations

from typing import Annotated

import typer

from store import repo
from store.migrate import upgrade
from store.seed import drop_everything
from tools.broker.fleet import node_views, seed_demo
from ui.cli_common import (
    AT_OPTION,
    JSON_OPTION,
    domain_errors,
    emit_json,
    one_of,
    services,
    table,
    transaction,
)

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
@domain_errors
def db_upgrade(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Apply database migrations up to the newest schema."""
    svc = services(ctx)
    upgrade(svc.engine)
    url = svc.engine.url.render_as_string(hide_password=True)
    emit_json({"upgraded": True, "database": url}) if as_json else print(
        f"database at {url} is up to date"
    )


@domain_errors
def seed(
    ctx: typer.Context,
    reset: Annotated[bool, typer.Option("--reset", help="Drop all data first.")] = False,
    at: str | None = AT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Seed 13 organisations, 14 nodes and recent grid states (idempotent)."""
    svc = services(ctx, at)
    if reset:
        drop_everything(svc.engine)
        upgrade(svc.engine)
    with transaction(svc) as session:
        report = seed_demo(session=session, grid=svc.grid("sim"), now=svc.clock.now())
    if as_json:
        emit_json(report)
    else:
        print(
            f"seeded: {report.organizations_added} organisations, {report.nodes_added} nodes, "
            f"{report.grid_states_added} grid states (reset={reset})"
        )


@domain_errors
def nodes(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List compute nodes with their free GPUs and utilisation."""
    svc = services(ctx)
    with transaction(svc) as session:
        rows = node_views(session=session)
    if as_json:
        emit_json(rows)
        return
    table(
        "nodes",
        ["id", "zone", "GPU", "free/total", "util", "€/GPU-h", "status"],
        [
            [
                n.id,
                n.zone,
                n.gpu_model,
                f"{n.free_gpus}/{n.gpu_count}",
                f"{n.utilization:.0%}",
                f"{n.price_per_gpu_hour_minor / 100:.2f}",
                n.status,
            ]
            for n in rows
        ],
    )


@domain_errors
def orgs(
    ctx: typer.Context,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="enterprise | datacenter | gamer.",
            callback=one_of("enterprise", "datacenter", "gamer"),
        ),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """List organisations: customers, data centres and gamers who host nodes."""
    svc = services(ctx)
    with transaction(svc) as session:
        rows = [
            {"id": o.id, "name": o.name, "kind": o.kind, "country": o.country}
            for o in repo.list_organizations(session=session, kind=kind)
        ]
    if as_json:
        emit_json(rows)
        return
    table(
        "organisations",
        ["id", "name", "kind", "country"],
        [[o["id"], o["name"], o["kind"], o["country"]] for o in rows],
    )


def register(app: typer.Typer) -> None:
    """Add the database and fleet commands to the `tgtg` app."""
    app.add_typer(db_app, name="db")
    app.command("seed")(seed)
    app.command("nodes")(nodes)
    app.command("orgs")(orgs)
