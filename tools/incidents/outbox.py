"""Deliver what incident transitions owe the outside world, after their transaction commits.

Incident nodes never call a model or the network. The transaction that records a transition
also writes outbox rows (`store.incident_models.IncidentOutbox`), and `deliver_due` sends them
later, committing before every call so that no row lock (PostgreSQL) or write transaction
(SQLite) is held while it waits:

* `alert`: an incident.io event, one row per (deduplication key, status, revision). On success
  its `alert_events` record and the row's `done` commit together, so each (key, status,
  revision) is recorded once; the event is posted again only when a deliverer died between
  incident.io's answer and that commit, which incident.io absorbs (the same deduplication key
  updates the same alert). A failed delivery stays pending and is retried with backoff; alerts
  are never given up.
* `summary`: a model-written summary of the attempt that just ended. The transition already
  stored the template summary (`template_summary`), which the alert carries; the model's text
  replaces it on the incident when it arrives. A slow or failing model is retried with backoff
  up to `MAX_SUMMARY_ATTEMPTS` times, then the template stays for good.

Rows are claimed one at a time with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so
several watchers share them and a row whose deliverer died is due again after the lease. When
one delivery of a kind fails, the rest of that kind waits for the next pass. Nothing here raises
because a model or the alert service is slow or down.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import incident_outbox_repo as outbox_repo
from store import incident_repo
from store.incident_models import AlertEvent, Incident
from tools.incidents.ports import (
    AlertDeliveryError,
    AlertEventIn,
    AlertSink,
    IncidentSummarizer,
    SummaryFacts,
    SummaryUnavailableError,
)

logger = logging.getLogger(__name__)

DELIVERY_LEASE = timedelta(minutes=5)
"""How long a claimed row is left to its deliverer before another may take it."""
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(minutes=30)
MAX_SUMMARY_ATTEMPTS = 5
"""Model calls per summary before the template summary stays for good."""
MAX_PER_PASS = 20


class OutboxReport(BaseModel):
    """What one delivery pass did."""

    delivered: list[str] = Field(default_factory=list)
    retrying: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


def retry_delay(attempts: int) -> timedelta:
    """Return the wait after the `attempts`-th failed try: 30 s, doubling, at most 30 min."""
    doublings = min(max(attempts - 1, 0), 16)
    return min(FIRST_RETRY * (1 << doublings), MAX_RETRY)


def alert_event(
    incident: Incident, status: Literal["firing", "resolved"], text: str, revision: int = 0
) -> AlertEventIn:
    """Return the alert event of an incident; revision > 0 updates a firing escalated alert."""
    suffix = ": escalated, work cannot move" if revision else ""
    return AlertEventIn(
        title=f"Too Green To Go: {incident.trigger.replace('_', ' ')} in {incident.zone}{suffix}",
        status=status,
        deduplication_key=incident.id,
        description=text[:2000],
        metadata={
            "zone": incident.zone,
            "trigger": incident.trigger,
            "incident_id": incident.id,
            "state": "ESCALATED" if revision else incident.state,
        },
    )


def enqueue_alert(
    *,
    session: Session,
    incident: Incident,
    status: Literal["firing", "resolved"],
    text: str,
    now: datetime,
    revision: int = 0,
) -> None:
    """Owe an alert event, once per (incident, status, revision); call in the transition's tx."""
    event = alert_event(incident, status, text, revision)
    outbox_repo.enqueue(
        session=session,
        incident_id=incident.id,
        kind="alert",
        key=f"alert:{incident.id}:{status}:{revision}",
        payload={"event": event.model_dump(mode="json"), "revision": revision},
        now=now,
    )


def enqueue_summary(*, session: Session, incident: Incident, now: datetime) -> None:
    """Owe a model summary of the attempt that just ended (RESOLVED or ESCALATED)."""
    outbox_repo.enqueue(
        session=session,
        incident_id=incident.id,
        kind="summary",
        key=f"summary:{incident.id}:{incident.attempt}:{incident.state}",
        payload={"attempt": incident.attempt, "state": incident.state},
        now=now,
    )


REPLANNED = ("rescheduled", "started", "routed", "scheduled")
"""Outcomes of a re-plan of free work that placed or moved it (`kept` and unplaced did not)."""


def template_summary(*, session: Session, incident: Incident, escalation: str = "") -> str:
    """Return the summary written without a model: counts from the store, and why it escalated."""
    moves = incident_repo.list_reroutes(session=session, incident_id=incident.id)
    moved = len({r.workload_id for r in moves if r.outcome == "rerouted"})
    replanned = len({r.workload_id for r in moves if r.outcome in REPLANNED})
    kind = incident.trigger.replace("_", " ")
    text = (
        f"{kind} in {incident.zone}: {len({r.workload_id for r in moves})} workload(s) "
        f"evaluated, {moved} rerouted."
    )
    if replanned:
        text += f" {replanned} free workload(s) re-planned."
    return f"{text} Escalated: {escalation}" if escalation else text


def summary_facts(*, session: Session, incident: Incident) -> SummaryFacts:
    """Return the facts a model summary may use: transitions and reroutes as stored."""
    transitions = incident_repo.list_transitions(session=session, incident_id=incident.id)
    moves = incident_repo.list_reroutes(session=session, incident_id=incident.id)
    return SummaryFacts(
        incident_id=incident.id,
        zone=incident.zone,
        trigger=incident.trigger,
        opened_at=incident.opened_at.isoformat(),
        transitions="\n".join(
            f"- {t.at.isoformat()} {t.from_state} -> {t.to_state}: {t.reason}" for t in transitions
        ),
        reroutes="\n".join(
            f"- {r.workload_id}: {r.outcome} {r.from_node_id} -> {r.to_node_id}" for r in moves
        )
        or "- none",
    )


def alert_recorded(*, session: Session, event: AlertEventIn, revision: int) -> bool:
    """Return True when this (key, status, revision) was already delivered and recorded."""
    found = incident_repo.find_alert(
        session=session,
        deduplication_key=event.deduplication_key,
        status=event.status,
        revision=revision,
    )
    return found is not None


def record_alert(
    *, session: Session, event: AlertEventIn, delivery: str, now: datetime, revision: int
) -> None:
    """Record a delivered alert event ('sent' or 'demo')."""
    incident_repo.add_alert(
        session=session,
        alert=AlertEvent(
            deduplication_key=event.deduplication_key,
            status=event.status,
            title=event.title,
            revision=revision,
            payload=event.model_dump(mode="json"),
            delivery=delivery,
            created_at=now,
        ),
    )


def _alert(
    session: Session, sink: AlertSink, payload: dict[str, object], now: datetime
) -> str | None:
    """Deliver one alert row; return None when done, else why not (the caller retries later)."""
    event = AlertEventIn.model_validate(payload["event"])
    revision = int(str(payload.get("revision", 0)))
    if alert_recorded(session=session, event=event, revision=revision):
        return None
    session.commit()  # no transaction of ours stays open across the network call
    try:
        delivery = sink.deliver(event)
    except AlertDeliveryError as exc:
        return str(exc)
    try:
        with session.begin_nested():
            record_alert(
                session=session, event=event, delivery=delivery, now=now, revision=revision
            )
    except IntegrityError:  # a deliverer whose lease ran out recorded it meanwhile
        logger.info("alert %s %s was recorded already", event.deduplication_key, event.status)
    return None


def _summary(
    session: Session, summarizer: IncidentSummarizer, incident_id: str, payload: dict[str, object]
) -> str | None:
    """Ask for one summary and store it on the incident; return None when done, else why not."""
    incident = incident_repo.get_incident(session=session, incident_id=incident_id)
    if incident is None:
        return None
    facts = summary_facts(session=session, incident=incident)
    session.commit()  # no transaction of ours stays open across the model call
    try:
        text = summarizer(facts)
    except SummaryUnavailableError as exc:
        return str(exc)
    incident = incident_repo.get_incident(session=session, incident_id=incident_id, for_update=True)
    owed = (payload.get("attempt"), payload.get("state"))
    if incident is not None and (incident.attempt, incident.state) == owed:
        incident.summary = text[:2000]  # unless a later attempt began: it owes its own
        session.flush()
    return None


def deliver_due(
    *,
    session: Session,
    sink: AlertSink | None,
    summarizer: IncidentSummarizer | None,
    now: datetime,
    limit: int = MAX_PER_PASS,
) -> OutboxReport:
    """Deliver due outbox rows one at a time, committing around every call; never raises for them.

    Rows of a kind nobody here can deliver (no sink, no summarizer) are left for a process that
    can. `session` must have no transaction open; it is committed after every step.
    """
    report = OutboxReport()
    kinds = {k for k, able in (("alert", sink), ("summary", summarizer)) if able is not None}
    for _ in range(limit):
        row = outbox_repo.claim_next(session=session, now=now, lease=DELIVERY_LEASE, kinds=kinds)
        if row is None:
            break
        row_id, kind, key, attempts = row.id, row.kind, row.key, row.attempts
        incident_id, payload = row.incident_id, dict(row.payload)
        session.commit()
        if kind == "alert" and sink is not None:
            problem = _alert(session, sink, payload, now)
        elif kind == "summary" and summarizer is not None:
            problem = _summary(session, summarizer, incident_id, payload)
        else:  # unreachable: `kinds` holds only what this pass can deliver
            continue
        if problem is None:
            outbox_repo.finish(session=session, row_id=row_id, now=now)
            report.delivered.append(key)
        elif kind == "summary" and attempts >= MAX_SUMMARY_ATTEMPTS:
            outbox_repo.give_up(session=session, row_id=row_id, now=now, error=problem)
            report.failed.append(key)
            logger.warning("%s: gave up after %d tries, template kept: %s", key, attempts, problem)
        else:
            due = now + retry_delay(attempts)
            outbox_repo.retry_later(session=session, row_id=row_id, due_at=due, error=problem)
            report.retrying.append(key)
            kinds.discard(kind)  # the service is struggling: the rest of this kind waits
            logger.warning("%s: try %d failed, next at %s: %s", key, attempts, due, problem)
        session.commit()
    session.commit()
    return report
