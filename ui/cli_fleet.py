"""`tgtg db`, `tgtg seed`, `tgtg nodes` and `tgtg orgs`: the schema, the demo fleet, listings."""

from __future__ import annotations

from typing import Annotated

import typer

from store import repo
from store.db import make_engine
from store.migrate import upgrade
from store.seed import MoneyRowsError, drop_everything
from tools.broker.fleet import NODE_STATUSES, node_views, seed_demo, set_node_status
from tools.money.amounts import format_money
from ui.cli_common import (
    AT_OPTION,
    JSON_OPTION,
    domain_errors,
    emit_json,
    fail,
    one_of,
    services,
    table,
    transaction,
)

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
@domain_errors
def db_upgrade(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Apply database migrations up to the newest schema (creating the tables if none)."""
    settings = ctx.find_root().obj["settings"]
    engine = make_engine(settings.resolved_database_url)
    ctx.call_on_close(engine.dispose)
    done = upgrade(engine)
    url = engine.url.render_as_string(hide_password=True)
    if as_json:
        emit_json(
            {
                "upgraded": bool(done.applied),
                "database": url,
                "from_revision": done.before,
                "to_revision": done.after,
                "applied": list(done.applied),
            }
        )
    elif not done.applied:
        print(f"database at {url} is already at the newest schema (revision {done.after})")
    elif done.before is None:
        print(
            f"database at {url} created: {len(done.applied)} migrations applied, "
            f"now at revision {done.after}"
        )
    else:
        print(
            f"database at {url} upgraded from revision {done.before} to {done.after} "
            f"({len(done.applied)} migrations: {', '.join(done.applied)})"
        )


@domain_errors
def seed(
    ctx: typer.Context,
    reset: Annotated[
        bool, typer.Option("--reset", help="Drop all data first (refused while money rows exist).")
    ] = False,
    wipe_ledger: Annotated[
        bool,
        typer.Option(
            "--wipe-ledger",
            help="With --reset: also delete ledger entries, payouts and carbon receipts.",
        ),
    ] = False,
    at: str | None = AT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Seed 13 organisations, 14 nodes and recent grid states (idempotent).

    --reset refuses while the ledger, payouts or receipts hold rows: their transfers stay in
    the chain journal and on chain, so deleting them loses the books. --wipe-ledger allows it.
    """
    if wipe_ledger and not reset:
        raise fail("--wipe-ledger only applies with --reset: add --reset or drop --wipe-ledger")
    svc = services(ctx, at)
    deleted: dict[str, int] = {}
    if reset:
        try:
            deleted = drop_everything(svc.engine, wipe_ledger=wipe_ledger)
        except MoneyRowsError as exc:
            raise fail(
                f"--reset refused: {exc} (money records whose transfers stay in the chain "
                "journal, on chain and at Stripe); back up the database, then rerun with "
                "--reset --wipe-ledger, or seed without --reset"
            ) from None
        upgrade(svc.engine)
    with transaction(svc) as session:
        report = seed_demo(session=session, grid=svc.grid("sim"), now=svc.clock.now())
    if as_json:
        emit_json({**report.model_dump(), "reset": reset, "deleted": deleted})
        return
    if reset:
        gone = ", ".join(f"{n} {t}" for t, n in deleted.items() if n) or "no rows"
        print(f"reset: deleted {gone}")
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
        ["id", "zone", "GPU", "free/total", "util", "price/GPU-h", "status"],
        [
            [
                n.id,
                n.zone,
                n.gpu_model,
                f"{n.free_gpus}/{n.gpu_count}",
                f"{n.utilization:.0%}",
                format_money(n.price_per_gpu_hour_minor, n.currency),
                n.status,
            ]
            for n in rows
        ],
    )


@domain_errors
def node_status(
    ctx: typer.Context,
    node_id: Annotated[str, typer.Argument(help="Node id (see `tgtg nodes`).")],
    status: Annotated[
        str,
        typer.Argument(help="online | offline | maintenance.", callback=one_of(*NODE_STATUSES)),
    ],
    as_json: bool = JSON_OPTION,
) -> None:
    """Mark a node online, offline or in maintenance.

    A node that is not online takes no new work, and the incident agent's next pass moves the
    work on it elsewhere (failover); work that cannot checkpoint restarts there.
    """
    svc = services(ctx)
    with transaction(svc) as session:
        view = set_node_status(session=session, node_id=node_id, status=status, now=svc.clock.now())
    if as_json:
        emit_json(view)
        return
    print(f"{view.id}: {view.status}")


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
    app.command("node-status")(node_status)
    app.command("orgs")(orgs)
