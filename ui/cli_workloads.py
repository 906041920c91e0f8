"""`tgtg workloads`: list workloads, start, cancel, fail or reroute one."""

from __future__ import annotations

from typing import Annotated, get_args

import typer

from store import repo
from tools.broker.routing import reroute_workload
from tools.broker.scheduling import start_now
from tools.broker.workloads import (
    WorkloadStatus,
    WorkloadView,
    set_workload_status,
)
from ui.cli_common import (
    AT_OPTION,
    JSON_OPTION,
    SOURCE_OPTION,
    domain_errors,
    emit_json,
    fail,
    one_of,
    services,
    table,
    transaction,
)

workloads_app = typer.Typer(help="List workloads, or move one along its life cycle.")


@workloads_app.callback(invoke_without_command=True)
@domain_errors
def workloads(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status", help="Filter; repeatable.", callback=one_of(*get_args(WorkloadStatus))
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    as_json: bool = JSON_OPTION,
) -> None:
    """List workloads, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    svc = services(ctx)
    with transaction(svc) as session:
        rows = [
            WorkloadView.of(w)
            for w in repo.list_workloads(session=session, statuses=status, limit=limit)
        ]
    if as_json:
        emit_json(rows)
        return
    # The planned start shows only when some workload waits for one (keeps 80 columns otherwise).
    planned = any(w.planned_start_at for w in rows)
    columns = ["id", "name", "status", "GPUs", "hours", "node", "zone"]
    table(
        "workloads",
        [*columns, *(["starts (UTC)"] if planned else []), "reroutes"],
        [
            [
                w.id,
                w.name,
                w.status,
                w.gpu_count,
                w.duration_hours,
                w.node_id,
                w.zone,
                *(
                    [w.planned_start_at.strftime("%Y-%m-%d %H:%M") if w.planned_start_at else ""]
                    if planned
                    else []
                ),
                w.reroute_count,
            ]
            for w in rows
        ],
    )


def _status_command(name: str, target: str, doc: str) -> None:
    @domain_errors
    def command(
        ctx: typer.Context,
        workload_id: Annotated[str, typer.Argument(help="Workload id.")],
        at: str | None = AT_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        svc = services(ctx, at)
        with transaction(svc) as session:
            view = set_workload_status(
                session=session, workload_id=workload_id, status=target, now=svc.clock.now()
            )
        emit_json(view) if as_json else print(f"{view.id} is now {view.status}")

    command.__doc__ = doc
    workloads_app.command(name)(command)


@workloads_app.command("start")
@domain_errors
def start(
    ctx: typer.Context,
    workload_id: Annotated[str, typer.Argument(help="Workload id.")],
    source: str | None = SOURCE_OPTION,
    at: str | None = AT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Start a routed workload, or a scheduled one now instead of at its planned hour."""
    svc = services(ctx, at)
    with transaction(svc) as session:
        view, decision = start_now(
            session=session,
            grid=svc.effective_grid(session, source),
            workload_id=workload_id,
            now=svc.clock.now(),
            weights=svc.weights,
        )
    refused = decision.reason if decision and decision.outcome != "started" else None
    if refused is not None:
        raise fail(f"{workload_id} stays scheduled: {refused}", code=1)
    emit_json(view) if as_json else print(f"{view.id} is now {view.status} on {view.node_id}")


_status_command("cancel", "cancelled", "Cancel a workload that has not finished.")
_status_command("fail", "failed", "Mark a workload as failed.")


@workloads_app.command("reroute")
@domain_errors
def reroute(
    ctx: typer.Context,
    workload_id: Annotated[str, typer.Argument(help="Workload id.")],
    source: str | None = SOURCE_OPTION,
    at: str | None = AT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Move a workload if another node is at least 25 % better (at most 5 moves)."""
    svc = services(ctx, at)
    with transaction(svc) as session:
        d = reroute_workload(
            session=session,
            grid=svc.effective_grid(session, source),
            workload_id=workload_id,
            now=svc.clock.now(),
            weights=svc.weights,
        )
    emit_json(d) if as_json else print(f"{d.outcome}: {d.reason}")
