"""Run the incident loop: scan for anomalies, open incidents, claim and run them durably.

Each pass handles incidents first, then runs the schedule (`run_schedule`): scheduled work whose
planned hour has come starts, and all pending and scheduled-not-started work is re-planned
jointly once an hour on the newest forecast of the context's provider (`Context.forecasts`, the
same one routes use; `tools.broker.replan`). Free work an incident affects does not wait for the
next hour: the incident's ADAPTING re-plans it at once through the same planner
(`tools.incidents.response`), and the schedule then leaves it alone for the hour.

One incident per anomaly episode. An anomaly is identified by its open key (`zone:trigger`, or
`zone:node_offline:<node>`, see `tools.incidents.detection`). An episode starts on the first
pass that detects the anomaly while no incident holds its key; `scan` then opens one incident,
which holds the key. The episode is *cleared*, and the key released, when a pass observes the
anomaly absent: either `scan`'s detection does not report it (for an incident already RESOLVED),
or the incident's own run finds it gone (MONITORING resolves "anomaly cleared"). Until then no
second incident opens for it, also after the incident RESOLVED while the condition still holds
(e.g. surplus work that stayed because no move was better): the next pass sees the same episode.
Work that arrives during a held episode is placed by the broker, which reads the same grid. An
ESCALATED incident keeps its key as well; each pass re-examines it read-only
(`review_escalation`) and only when something changed starts the next attempt (ESCALATED ->
MONITORING) on its own thread (`incident:<id>:attempt-<n>`).

Each incident runs on its own checkpoint thread with `durability="sync"`. A run interrupted by
a crash is resumed from its last checkpoint (`invoke(None, ...)`) by whichever watcher claims
the incident next; node-level checks and the per-(incident, workload) reroute record make the
resumed run repeat no write. Several watchers share one database: a claim is `FOR UPDATE SKIP
LOCKED` (PostgreSQL) plus a lease of `CLAIM_LEASE` in the name of a worker id unique to the
process (`graphs.context.new_worker_id`). Every node transaction renews the lease and checks the
claim is still ours, so a watcher whose lease ran out and whose incident another watcher took
stops before writing anything (`ClaimLostError`; both in `graphs.incident_claims`).

Alerts and model summaries are outbox rows delivered after the incident run committed
(`deliver_outbox`, `tools.incidents.outbox`): a slow or failing model or alert service delays
them, never fails the pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.exc import IntegrityError

from graphs.checkpoint import incident_thread
from graphs.context import INCIDENT_RECURSION_LIMIT, Context
from graphs.incident import build_incident_graph, model_summarizer
from graphs.incident_claims import CLAIM_LEASE, ClaimLostError, load_claimed
from store import incident_repo
from tools.broker import windows
from tools.broker.replan import plan_horizon, plan_jointly
from tools.broker.replan_apply import apply_order, apply_slot
from tools.broker.scheduling import (
    SchedulePass,
    due_for_start,
    start_workload,
)
from tools.errors import DomainError
from tools.grid.models import floor_hour
from tools.incidents.detection import detect_anomalies, grid_with_overrides
from tools.incidents.outbox import OutboxReport, deliver_due
from tools.incidents.response import reroute_view, review_escalation

logger = logging.getLogger(__name__)


def scan(ctx: Context) -> list[str]:
    """End the episodes whose anomaly is gone, open an incident per new one; return ids opened."""
    now = ctx.clock.now()
    with ctx.sessions() as session:
        grid = grid_with_overrides(session=session, grid=ctx.grid, now=now)
        anomalies = detect_anomalies(session=session, grid=grid, now=now)
    with ctx.sessions.begin() as session:
        ended = incident_repo.end_episodes(session=session, present=[a.open_key for a in anomalies])
    if ended:
        logger.info("anomaly episodes over: %s", ", ".join(ended))
    opened: list[str] = []
    for anomaly in anomalies:
        try:
            with ctx.sessions.begin() as session:
                if incident_repo.find_open_incident(session=session, open_key=anomaly.open_key):
                    continue  # the same episode: its incident holds the key
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
        incident = load_claimed(ctx, session, incident_id)
        if incident.state != "ESCALATED":
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


def run_schedule(ctx: Context) -> SchedulePass:
    """Start scheduled work whose planned hour has come; re-plan all free work jointly hourly.

    The re-plan (`tools.broker.replan`) plans every pending and scheduled-not-started workload
    not yet decided on this hour in one call of the planner, against running work, then applies
    it workload by workload. Each workload is its own transaction, so one that fails (logged)
    never holds up the others; the workload row lock makes a second watcher's attempt on the
    same work a refused no-op.
    """
    now = ctx.clock.now()
    with ctx.sessions() as session:
        due = due_for_start(session=session, now=now)
    done = SchedulePass(started=[], rescheduled=[], kept=[])
    for workload_id in due:
        try:
            with ctx.sessions.begin() as session:
                grid = grid_with_overrides(session=session, grid=ctx.grid, now=now)
                d = start_workload(
                    session=session,
                    grid=grid,
                    workload_id=workload_id,
                    now=now,
                    weights=ctx.weights,
                    by_operator=False,
                )
        except DomainError as exc:
            logger.warning("scheduled workload %s: %s", workload_id, exc)
            continue
        _tally(done, d.outcome, workload_id)
    with ctx.sessions() as session:
        grid = grid_with_overrides(session=session, grid=ctx.grid, now=now)
        slots = plan_jointly(
            session=session,
            grid=grid,
            now=now,
            weights=ctx.weights,
            forecasts=ctx.forecasts,
            move_running=ctx.move_running_work,
        )
    for slot in apply_order(slots, now):
        try:
            with ctx.sessions.begin() as session:
                grid = grid_with_overrides(session=session, grid=ctx.grid, now=now)
                applied = apply_slot(
                    session=session, grid=grid, slot=slot, now=now, weights=ctx.weights
                )
        except DomainError as exc:
            logger.warning("re-planning workload %s: %s", slot.workload_id, exc)
            continue
        if applied is not None:
            _tally(done, applied.outcome, slot.workload_id)
    return done


def _tally(done: SchedulePass, outcome: str, workload_id: str) -> None:
    buckets = {
        "started": done.started,
        "rescheduled": done.rescheduled,
        "routed": done.routed,
        "scheduled": done.scheduled,
        "no_eligible_node": done.unplaced,
    }
    buckets.get(outcome, done.kept).append(workload_id)


def warm_forecasts(ctx: Context) -> datetime | None:
    """Ask the process's forecast provider for every zone's next hours before any transaction.

    The pass's plans then read them from memory, not from the network under the database
    locks they hold (`tools.broker.windows.warm_forecasts`). The hours are those of the
    longest joint plan the pass may make (`tools.broker.replan.plan_horizon`). Returns the
    issue hour warmed (None without a provider).
    """
    if ctx.forecasts is None:
        return None
    now = ctx.clock.now()
    with ctx.sessions() as session:
        horizon = plan_horizon(session=session, now=now)
    windows.warm_forecasts(ctx.forecasts, now=now, horizon=horizon)
    return floor_hour(now)


def run_incidents(
    ctx: Context, checkpointer: BaseCheckpointSaver[Any], *, max_incidents: int = 50
) -> list[str]:
    """Scan, claim and run unresolved incidents once each, then run the schedule (`run_schedule`).

    Incidents go first: the free work an incident affects is re-planned by its ADAPTING step,
    and the schedule's joint re-plan then leaves it alone this hour (it was decided this hour),
    so no workload is re-planned twice in one pass.

    Returns the incident ids that moved. ESCALATED incidents where nothing changed are claimed,
    re-examined and left out. An incident whose claim another watcher took over meanwhile is
    left to that watcher.
    """
    warmed = warm_forecasts(ctx)
    scan(ctx)
    seen: list[str] = []
    handled: list[str] = []
    for _ in range(max_incidents):
        warmed = _rewarm(ctx, warmed)  # before the claim, so its lease is not spent waiting
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
        except ClaimLostError as exc:
            logger.warning("%s", exc)
            ran = False
        finally:
            with ctx.sessions.begin() as session:
                incident_repo.release_incident(
                    session=session, incident_id=claimed, worker_id=ctx.worker_id
                )
        if ran:
            handled.append(claimed)
    _rewarm(ctx, warmed)
    run_schedule(ctx)
    return handled


def _rewarm(ctx: Context, warmed: datetime | None) -> datetime | None:
    """Warm the forecasts again when a long pass has crossed the hour `warmed` was for."""
    if warmed is not None and floor_hour(ctx.clock.now()) != warmed:
        return warm_forecasts(ctx)
    return warmed


def deliver_outbox(ctx: Context) -> OutboxReport:
    """Deliver the alerts and model summaries that are due (never raises for a slow service)."""
    with ctx.sessions() as session:
        return deliver_due(
            session=session,
            sink=ctx.alerts,
            summarizer=model_summarizer(ctx.model, enabled=ctx.model_summaries),
            now=ctx.clock.now(),
        )


def run_once(
    ctx: Context, checkpointer: BaseCheckpointSaver[Any], *, max_incidents: int = 50
) -> list[dict[str, Any]]:
    """Run the incidents (`run_incidents`), deliver the outbox; report the incidents that moved."""
    handled = run_incidents(ctx, checkpointer, max_incidents=max_incidents)
    deliver_outbox(ctx)
    return [report(ctx, i) for i in handled]


def watch(
    make_ctx: Callable[[], Context],
    checkpointer: BaseCheckpointSaver[Any],
    *,
    interval_s: float,
    iterations: int | None = None,
    on_pass: Callable[[list[dict[str, Any]]], None] | None = None,
) -> None:
    """Run `run_once` every `interval_s` seconds (forever unless `iterations` is given).

    A pass that fails (e.g. the database is unreachable) is logged and the loop goes on; an
    interrupted incident resumes from its checkpoint on a later pass.
    """
    done = 0
    while iterations is None or done < iterations:
        try:
            reports = run_once(make_ctx(), checkpointer)
        except Exception:  # noqa: BLE001 - unattended: log it, try again next pass
            logger.exception("incident pass failed; the next pass resumes")
            reports = []
        if on_pass is not None:
            on_pass(reports)
        done += 1
        if iterations is None or done < iterations:
            time.sleep(interval_s)
