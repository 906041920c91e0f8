"""Run the incident loop: scan for anomalies, open incidents, claim and run them durably.

Each incident runs on its own checkpoint thread with `durability="sync"`. A run interrupted by
a crash is resumed from its last checkpoint (`invoke(None, ...)`) by whichever watcher claims
the incident next; node-level checks and the per-(incident, workload) reroute record make the
resumed run repeat no write. Several watchers share one PostgreSQL database: claims use
`FOR UPDATE SKIP LOCKED` plus a lease, so no incident is handled by two at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.exc import IntegrityError

from graphs.checkpoint import incident_thread
from graphs.context import INCIDENT_RECURSION_LIMIT, Context
from graphs.incident import build_incident_graph
from store import incident_repo
from tools.incidentio import AlertDeliveryError
from tools.incidents import detect_anomalies, grid_with_overrides, reroute_view

logger = logging.getLogger(__name__)
CLAIM_LEASE = timedelta(minutes=2)


def scan(ctx: Context) -> list[str]:
    """Open an incident for each new anomaly; return the ids opened now."""
    now = ctx.clock.now()
    with ctx.sessions() as session:
        grid = grid_with_overrides(session=session, grid=ctx.grid, now=now)
        anomalies = detect_anomalies(session=session, grid=grid, now=now)
    opened: list[str] = []
    for anomaly in anomalies:
        try:
            with ctx.sessions.begin() as session:
                if incident_repo.find_open_incident(session=session, open_key=anomaly.open_key):
                    continue
                incident = incident_repo.open_incident(
                    session=session, zone=anomaly.zone, trigger=anomaly.trigger,
                    open_key=anomaly.open_key, details=anomaly.details,
                    reason=f"watcher {ctx.worker_id} scan: {anomaly.reason}", now=now,
                )  # fmt: skip
                opened.append(incident.id)
        except IntegrityError:
            logger.info("another watcher opened %s first", anomaly.open_key)
    return opened


def report(ctx: Context, incident_id: str) -> dict[str, Any]:
    """Return an incident with its states in order, transitions and reroutes (JSON-shaped)."""
    with ctx.sessions() as session:
        incident = incident_repo.get_incident(session=session, incident_id=incident_id)
        if incident is None:
            raise LookupError(f"incident {incident_id!r} does not exist")
        transitions = incident_repo.list_transitions(session=session, incident_id=incident_id)
        moves = incident_repo.list_reroutes(session=session, incident_id=incident_id)
        return {
            "id": incident.id, "zone": incident.zone, "trigger": incident.trigger,
            "state": incident.state, "states": [t.to_state for t in transitions],
            "transitions": [{"from": t.from_state, "to": t.to_state, "reason": t.reason,
                             "at": t.at.isoformat()} for t in transitions],
            "reroutes": [reroute_view(r) for r in moves],
            "summary": incident.summary, "details": incident.details,
        }  # fmt: skip


def run_incident(ctx: Context, checkpointer: BaseCheckpointSaver[Any], incident_id: str) -> None:
    """Run (or resume) one incident's graph to its end on its own thread."""
    graph = build_incident_graph(checkpointer=checkpointer)
    config: Any = {"configurable": {"thread_id": incident_thread(incident_id)},
                   "recursion_limit": INCIDENT_RECURSION_LIMIT}  # fmt: skip
    snapshot = graph.get_state(config)
    if snapshot.next:
        logger.info("resuming incident %s at %s", incident_id, snapshot.next)
        graph.invoke(None, config, context=ctx, durability="sync")
    elif not snapshot.values:
        graph.invoke({"incident_id": incident_id}, config, context=ctx, durability="sync")


def run_once(
    ctx: Context, checkpointer: BaseCheckpointSaver[Any], *, max_incidents: int = 50
) -> list[dict[str, Any]]:
    """Scan, then claim and run open incidents until none is left; return their reports."""
    scan(ctx)
    handled: list[str] = []
    for _ in range(max_incidents):
        with ctx.sessions.begin() as session:
            incident = incident_repo.claim_incident(
                session=session, worker_id=ctx.worker_id, now=ctx.clock.now(), lease=CLAIM_LEASE
            )
            claimed = incident.id if incident else None
        if claimed is None or claimed in handled:
            break
        try:
            run_incident(ctx, checkpointer, claimed)
        finally:
            with ctx.sessions.begin() as session:
                incident_repo.release_incident(session=session, incident_id=claimed,
                                               worker_id=ctx.worker_id)  # fmt: skip
        handled.append(claimed)
    return [report(ctx, i) for i in handled]


def watch(
    make_ctx: Callable[[], Context],
    checkpointer: BaseCheckpointSaver[Any],
    *,
    interval_s: float,
    iterations: int | None = None,
    on_pass: Callable[[list[dict[str, Any]]], None] | None = None,
) -> None:
    """Run `run_once` every `interval_s` seconds (forever unless `iterations` is given)."""
    done = 0
    while iterations is None or done < iterations:
        try:
            reports = run_once(make_ctx(), checkpointer)
        except AlertDeliveryError as exc:
            # The incident stays open at its checkpoint; the next pass resumes it.
            logger.error("incident pass stopped, will resume next pass: %s", exc)
            reports = []
        if on_pass is not None:
            on_pass(reports)
        done += 1
        if iterations is None or done < iterations:
            time.sleep(interval_s)
