"""Run the incident loop: scan for anomalies, open incidents, claim and run them durably.

Each incident runs on its own checkpoint thread with `durability="sync"`. A run interrupted by
a crash is resumed from its last checkpoint (`invoke(None, ...)`) by whichever watcher claims
the incident next; node-level checks and the per-(incident, workload) reroute record make the
resumed run repeat no write. Several watchers share one PostgreSQL database: claims use
`FOR UPDATE SKIP LOCKED` plus a lease, so no incident is handled by two at once.

One incident per anomaly episode: an ESCALATED incident keeps its open key, so `scan` opens no
second one. Each pass re-examines it read-only (`review_escalation`); only when something
changed does it start the next attempt (ESCALATED -> MONITORING) on its own thread
(`incident:<id>:attempt-<n>`); otherwise nothing is written and the pass does not report it.
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
from tools.incidents.detection import detect_anomalies, grid_with_overrides
from tools.incidents.ports import AlertDeliveryError
from tools.incidents.response import reroute_view, review_escalation

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
                    session=session,
                    zone=anomaly.zone,
                    trigger=anomaly.trigger,
                    open_key=anomaly.open_key,
                    details=anomaly.details,
                    reason=f"watcher {ctx.worker_id} scan: {anomaly.reason}",
                    now=now,
                )
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
            "id": incident.id,
            "zone": incident.zone,
            "trigger": incident.trigger,
            "state": incident.state,
            "attempt": incident.attempt,
            "states": [t.to_state for t in transitions],
            "transitions": [
                {
                    "from": t.from_state,
                    "to": t.to_state,
                    "reason": t.reason,
                    "at": t.at.isoformat(),
                    "attempt": t.attempt,
                }
                for t in transitions
            ],
            "reroutes": [reroute_view(r) for r in moves],
            "summary": incident.summary,
            "details": incident.details,
        }


def attempt_thread(incident_id: str, attempt: int) -> str:
    """Return the checkpoint thread of one attempt (the first keeps the incident's thread)."""
    base = incident_thread(incident_id)
    return base if attempt == 0 else f"{base}:attempt-{attempt}"


def _config(incident_id: str, attempt: int) -> Any:
    return {
        "configurable": {"thread_id": attempt_thread(incident_id, attempt)},
        "recursion_limit": INCIDENT_RECURSION_LIMIT,
    }


def reopen_escalated(ctx: Context, incident_id: str) -> bool:
    """Start the next attempt of an ESCALATED incident if something changed; True if so."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        incident = incident_repo.get_incident(
            session=session, incident_id=incident_id, for_update=True
        )
        if incident is None or incident.state != "ESCALATED":
            return False
        grid = grid_with_overrides(session=session, grid=ctx.grid, now=now)
        why = review_escalation(
            session=session, grid=grid, incident=incident, now=now, weights=ctx.weights
        )
        if why is None:
            return False
        incident_repo.record_transition(
            session=session,
            incident=incident,
            to_state="MONITORING",
            reason=f"watcher {ctx.worker_id} re-examined: {why}",
            now=now,
        )
        return True


def run_incident(ctx: Context, checkpointer: BaseCheckpointSaver[Any], incident_id: str) -> bool:
    """Run (or resume) one incident's current attempt on its own thread; False if idle.

    A finished attempt that ended ESCALATED is re-examined and, when something changed, the
    next attempt runs now.
    """
    graph = build_incident_graph(checkpointer=checkpointer)
    with ctx.sessions() as session:
        incident = incident_repo.get_incident(session=session, incident_id=incident_id)
        if incident is None:
            raise LookupError(f"incident {incident_id!r} does not exist")
        attempt = incident.attempt
    config = _config(incident_id, attempt)
    snapshot = graph.get_state(config)
    if snapshot.next:
        logger.info("resuming incident %s at %s", incident_id, snapshot.next)
        graph.invoke(None, config, context=ctx, durability="sync")
        return True
    if snapshot.values and not reopen_escalated(ctx, incident_id):
        return False
    if snapshot.values:
        config = _config(incident_id, attempt + 1)
    graph.invoke({"incident_id": incident_id}, config, context=ctx, durability="sync")
    return True


def run_once(
    ctx: Context, checkpointer: BaseCheckpointSaver[Any], *, max_incidents: int = 50
) -> list[dict[str, Any]]:
    """Scan, then claim and run unresolved incidents once each; return those that moved.

    ESCALATED incidents where nothing changed are claimed, re-examined and left out.
    """
    scan(ctx)
    seen: list[str] = []
    handled: list[str] = []
    for _ in range(max_incidents):
        with ctx.sessions.begin() as session:
            incident = incident_repo.claim_incident(
                session=session,
                worker_id=ctx.worker_id,
                now=ctx.clock.now(),
                lease=CLAIM_LEASE,
                exclude=seen,
            )
            claimed = incident.id if incident else None
        if claimed is None:
            break
        seen.append(claimed)
        try:
            ran = run_incident(ctx, checkpointer, claimed)
        finally:
            with ctx.sessions.begin() as session:
                incident_repo.release_incident(
                    session=session, incident_id=claimed, worker_id=ctx.worker_id
                )
        if ran:
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
