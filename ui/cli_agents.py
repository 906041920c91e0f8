"""`tgtg chat`, `tgtg incidents …` and `tgtg grid spike`: the agent commands."""

from __future__ import annotations

import getpass
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from store import repo
from store.seed import seed_fleet
from ui.cli_common import (
    AT_OPTION,
    JSON_OPTION,
    domain_errors,
    emit_json,
    fail,
    services,
    transaction,
)
from ui.services import Services

if TYPE_CHECKING:
    from graphs.context import Context
    from tools.incidents.ports import AlertSink

# Model, graph and checkpoint libraries load inside the commands that use them, so that the
# other `tgtg` commands start quickly. Same value as graphs.context.DEFAULT_ORG_ID (tested).
DEFAULT_ORG_ID = "acme-ai"

logger = logging.getLogger(__name__)
incidents_app = typer.Typer(help="Incident response: scan, run and watch incidents.")


def _alert_sink(svc: Services) -> AlertSink:
    from graphs.wiring import make_alert_sink

    return make_alert_sink(svc.settings)


WORKER_ID_HELP = "Names this watcher in incident claims; default host name + random suffix."


def _worker_id(given: str | None) -> str:
    from graphs.context import new_worker_id

    return given or new_worker_id()


def _context(
    svc: Services, *, org_id: str, worker_id: str | None = None, alerts: AlertSink | None = None
) -> Context:
    from agents.models import ModelEndpointError, make_chat_model
    from agents.offline import is_offline
    from graphs.context import Context

    try:
        model = make_chat_model(svc.settings.model_endpoint(), clock=svc.clock, org_id=org_id)
    except ModelEndpointError as exc:
        raise fail(str(exc)) from None
    now = svc.clock.now()
    with transaction(svc) as session:
        if not repo.list_nodes(session=session):
            seed_fleet(session=session, now=now)
            print("store had no compute nodes: seeded the demo fleet", file=sys.stderr)
        grid = svc.effective_grid(session)
    return Context(
        model=model,
        sessions=svc.sessions,
        grid=grid,
        clock=svc.clock,
        weights=svc.weights,
        org_id=org_id,
        forecasts=svc.forecasts(),
        alerts=alerts or _alert_sink(svc),
        worker_id=_worker_id(worker_id),
        model_summaries=not is_offline(model),
        move_running_work=svc.settings.move_running_work,
    )


@contextmanager
def _checkpointer(svc: Services) -> Iterator[Any]:
    from graphs.checkpoint import open_checkpointer

    with open_checkpointer(svc.engine) as saver:
        yield saver


def _operator() -> str:
    """Return who decides at this terminal: the login name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _print_turn(result: dict[str, Any]) -> None:
    print(result["answer"])
    pending = result.get("pending_approval")
    if pending:
        thread = result["thread"]
        print(f"  waiting for approval: {pending['tool']} {json.dumps(pending['args'])}")
        print(f"  approve: tgtg chat --thread {thread} --approve")
        print(f"  reject:  tgtg chat --thread {thread} --reject 'reason'")
    print(f"(thread {result['thread']}; tools: {', '.join(result['tool_calls']) or 'none'})")


@domain_errors
def chat(
    ctx: typer.Context,
    text: Annotated[
        str | None,
        typer.Argument(help="What to ask, e.g. 'where should 4xH100 run?'; with --reject, why."),
    ] = None,
    thread: Annotated[
        str | None, typer.Option("--thread", help="Continue this conversation.")
    ] = None,
    org: Annotated[str, typer.Option("--org", help="Organisation to act for.")] = DEFAULT_ORG_ID,
    approve: Annotated[
        bool, typer.Option("--approve", help="Approve the write waiting on --thread.")
    ] = False,
    reject: Annotated[
        bool, typer.Option("--reject", help="Reject the write waiting on --thread (TEXT: why).")
    ] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Who decides (default: your login name).")
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Ask the agents (broker, billing clerk); every write waits for --approve on its --thread."""
    from graphs.chat import chat_turn, decide_turn

    deciding = approve or reject
    if approve and reject:
        raise fail("give --approve or --reject, not both")
    if deciding and not thread:
        raise fail("--approve and --reject need --thread: the conversation whose write waits")
    if approve and text:
        raise fail(f"--approve takes no text, got {text!r}; to reject with a reason use --reject")
    if not deciding and not (text or "").strip():
        raise fail(f"chat text {text or ''!r} is empty: say what you need, e.g. 'compare zones'")
    svc = services(ctx)
    context = _context(svc, org_id=org)
    who = by or _operator()
    with _checkpointer(svc) as saver:
        if deciding:
            result = decide_turn(
                context, saver, thread_id=thread or "", approve=approve, by=who, reason=text
            )
        else:
            result = chat_turn(
                context, saver, text or "", thread_id=thread or uuid.uuid4().hex[:12]
            )
        if result.get("pending_approval") and not as_json and sys.stdin.isatty():
            _print_turn(result)
            yes = typer.confirm("Approve this write?", default=False)
            result = decide_turn(
                context,
                saver,
                thread_id=result["thread"],
                approve=yes,
                by=who,
                reason=None if yes else "declined at the prompt",
            )
    if as_json:
        emit_json(result)
    else:
        _print_turn(result)


@incidents_app.command("run-once")
@domain_errors
def incidents_run_once(
    ctx: typer.Context,
    worker_id: Annotated[str | None, typer.Option("--worker-id", help=WORKER_ID_HELP)] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Scan for anomalies once, run open incidents to RESOLVED or ESCALATED; list those that moved.

    ESCALATED incidents (work that cannot move) are re-examined and listed only when they change.
    Each pass first starts scheduled work whose planned hour has come and re-plans the rest
    (once an hour), recording every decision.
    """
    from graphs.incident_watch import run_once

    svc = services(ctx)
    context = _context(svc, org_id=DEFAULT_ORG_ID, worker_id=worker_id)
    with _checkpointer(svc) as saver:
        reports = run_once(context, saver)
    _print_reports(reports, as_json)


def _print_reports(reports: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json(reports)
        return
    if not reports:
        print("no incident changed")
    for r in reports:
        moves = (
            ", ".join(
                f"{m['workload_id']} {m['outcome']} {m['from_node_id']}->{m['to_node_id']}"
                for m in r["reroutes"]
            )
            or "no reroutes"
        )
        print(f"{r['id']} {r['zone']} {r['trigger']}: {' -> '.join(r['states'])}; {moves}")


@incidents_app.command("watch")
@domain_errors
def incidents_watch(
    ctx: typer.Context,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.1, help="Seconds between scans."),
    ] = 60.0,
    iterations: Annotated[int | None, typer.Option("--iterations", min=1)] = None,
    worker_id: Annotated[str | None, typer.Option("--worker-id", help=WORKER_ID_HELP)] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Start and re-plan scheduled work, scan and handle incidents every --interval seconds.

    Safe to kill and restart.
    """
    from graphs.incident_watch import watch

    svc = services(ctx)
    alerts = _alert_sink(svc)
    worker_id = _worker_id(worker_id)  # one id for every pass of this process
    with _checkpointer(svc) as saver:
        watch(
            lambda: _context(svc, org_id=DEFAULT_ORG_ID, worker_id=worker_id, alerts=alerts),
            saver,
            interval_s=interval,
            iterations=iterations,
            on_pass=lambda reports: _print_reports(reports, as_json),
        )


@incidents_app.command("list")
@domain_errors
def incidents_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List incidents, newest first, with their states."""
    from graphs.incident_watch import report
    from store import incident_repo

    svc = services(ctx)
    context = _context(svc, org_id=DEFAULT_ORG_ID)
    with svc.sessions() as session:
        ids = [i.id for i in incident_repo.list_incidents(session=session, limit=50)]
    _print_reports([report(context, i) for i in ids], as_json)


@domain_errors
def grid_spike(
    ctx: typer.Context,
    zone: Annotated[str, typer.Option("--zone", help="Zone code, e.g. FR.")],
    factor: Annotated[float, typer.Option("--factor", help="Carbon multiplier (0-20].")] = 3.0,
    price_factor: Annotated[
        float | None,
        typer.Option("--price-factor", help="Price multiplier; default the carbon factor."),
    ] = None,
    hours: Annotated[float, typer.Option("--hours", help="How long it lasts.")] = 6.0,
    at: str | None = AT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Inject a carbon and price spike in a zone, from this hour, for the demo or a drill.

    Fossil peakers set both the carbon intensity and the price, so by default the price moves
    by the same factor as the carbon intensity.
    """
    from tools.incidents.detection import add_spike

    svc = services(ctx, at)
    price_factor = factor if price_factor is None else price_factor
    with transaction(svc) as session:
        o = add_spike(
            session=session,
            zone=zone,
            carbon_factor=factor,
            price_factor=price_factor,
            hours=hours,
            reason=f"injected by tgtg grid spike x{factor:g}",
            now=svc.clock.now(),
        )
        data = {
            "zone": o.zone,
            "carbon_factor": o.carbon_factor,
            "price_factor": o.price_factor,
            "starts_at": o.starts_at.isoformat(),
            "ends_at": o.ends_at.isoformat(),
        }
    if as_json:
        emit_json(data)
    else:
        print(f"spike in {o.zone}: carbon x{factor:g}, price x{price_factor:g} until {o.ends_at}")


def register(app: typer.Typer, grid_app: typer.Typer) -> None:
    """Add the agent commands to the `tgtg` app and its `grid` group."""
    app.command("chat")(chat)
    app.add_typer(incidents_app, name="incidents")
    grid_app.command("spike")(grid_spike)
