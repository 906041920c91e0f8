"""Repository functions for incidents, their transitions and reroutes, grid overrides, alerts.

Keyword-only, session first; they flush and never commit (the caller owns the transaction).
Outbox rows (alerts and summaries owed by a transition): `store.incident_outbox_repo`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from store.incident_models import (
    INCIDENT_TRANSITIONS,
    AlertEvent,
    GridOverride,
    Incident,
    IncidentReroute,
    IncidentTransition,
)

INCIDENT_ORDER = ("MONITORING", "ANOMALY_DETECTED", "EVALUATING", "ADAPTING", "RESOLVED")
"""The path of one attempt; an attempt ends in RESOLVED or ESCALATED (same rank)."""


def open_incident(
    *,
    session: Session,
    zone: str,
    trigger: str,
    open_key: str,
    details: dict[str, Any],
    reason: str,
    now: datetime,
) -> Incident:
    """Insert an incident in MONITORING with its first transition (unique per `open_key`)."""
    incident = Incident(
        id=f"inc_{uuid.uuid4().hex[:12]}",
        zone=zone,
        trigger=trigger,
        state="MONITORING",
        attempt=0,
        open_key=open_key,
        details=details,
        opened_at=now,
        updated_at=now,
    )
    session.add(incident)
    session.flush()
    session.add(
        IncidentTransition(
            incident_id=incident.id, from_state=None, to_state="MONITORING", reason=reason, at=now
        )
    )
    session.flush()
    return incident


def get_incident(
    *, session: Session, incident_id: str, for_update: bool = False
) -> Incident | None:
    """Return the incident (locked when asked), or None."""
    stmt = select(Incident).where(Incident.id == incident_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def find_open_incident(*, session: Session, open_key: str) -> Incident | None:
    """Return the incident holding an anomaly key (its episode still lasts), or None.

    That is an unresolved (open or ESCALATED) incident, or a RESOLVED one whose anomaly has not
    been seen absent since.
    """
    return session.scalars(select(Incident).where(Incident.open_key == open_key)).one_or_none()


def end_episodes(*, session: Session, present: Sequence[str]) -> list[str]:
    """Release the keys of RESOLVED incidents whose anomaly is not in `present`; return them.

    Unresolved incidents keep their key: their own run decides when the anomaly cleared.
    """
    stmt = select(Incident).where(
        Incident.state == "RESOLVED",
        Incident.open_key.is_not(None),
        Incident.open_key.not_in(list(present)),
    )
    ended = []
    for incident in session.scalars(stmt.with_for_update()).all():
        ended.append(str(incident.open_key))
        incident.open_key = None
    session.flush()
    return ended


def list_incidents(
    *, session: Session, open_only: bool = False, limit: int | None = None
) -> Sequence[Incident]:
    """Return incidents, newest first."""
    stmt = select(Incident).order_by(Incident.opened_at.desc(), Incident.id)
    if open_only:
        stmt = stmt.where(Incident.state != "RESOLVED")
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all()


def claim_incident(
    *,
    session: Session,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    exclude: Sequence[str] = (),
) -> Incident | None:
    """Claim one unresolved incident nobody holds (or whose lease expired); skip locked rows.

    On PostgreSQL this is `SELECT … FOR UPDATE SKIP LOCKED`, so several watchers share the
    open incidents without taking the same one; SQLite has one writer at a time anyway. A claim
    still within its lease is never taken, not even by the same worker id (ids are unique per
    process, and a second claim would run the incident twice). ESCALATED incidents are claimed
    too (to be re-examined); `exclude` skips the ids this pass already handled.
    """
    stmt = (
        select(Incident)
        .where(
            Incident.state != "RESOLVED",
            Incident.id.not_in(list(exclude)),
            or_(Incident.claimed_until.is_(None), Incident.claimed_until < now),
        )
        # Open incidents before ESCALATED ones, so many long-lived escalations never starve
        # a new incident out of a pass.
        .order_by(Incident.state == "ESCALATED", Incident.opened_at, Incident.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    incident = session.scalars(stmt).one_or_none()
    if incident is not None:
        incident.claimed_by = worker_id
        incident.claimed_until = now + lease
        session.flush()
    return incident


def renew_claim(
    *, session: Session, incident_id: str, worker_id: str, now: datetime, lease: timedelta
) -> bool:
    """Extend this worker's claim to `now + lease`; False if another worker holds it now.

    One conditional UPDATE, so it also takes the row's write lock first: the caller's
    transaction then writes only while it still holds the claim. A claim whose lease ran out
    is still ours to renew as long as nobody else took it.
    """
    result = session.connection().execute(
        update(Incident)
        .where(Incident.id == incident_id, Incident.claimed_by == worker_id)
        .values(claimed_until=now + lease)
    )
    return result.rowcount == 1


def release_incident(*, session: Session, incident_id: str, worker_id: str) -> None:
    """Drop this worker's claim on an incident."""
    incident = get_incident(session=session, incident_id=incident_id, for_update=True)
    if incident is not None and incident.claimed_by == worker_id:
        incident.claimed_by = None
        incident.claimed_until = None
        session.flush()


def record_transition(
    *, session: Session, incident: Incident, to_state: str, reason: str, now: datetime
) -> bool:
    """Move `incident` to `to_state` and store the transition; False if it is already there.

    Only transitions in `INCIDENT_TRANSITIONS` are legal. ESCALATED -> MONITORING starts a new
    attempt on the same incident (the transition is stored under the new attempt number).

    Raises:
        ValueError: `to_state` is not a legal next state; the message lists the legal ones.
    """
    if to_state == incident.state:
        return False
    allowed = INCIDENT_TRANSITIONS.get(incident.state, frozenset())
    if to_state not in allowed:
        raise ValueError(
            f"incident {incident.id!r} cannot go from {incident.state!r} to {to_state!r}; "
            f"legal next: {', '.join(sorted(allowed)) or 'none (final)'}"
        )
    if incident.state == "ESCALATED":
        incident.attempt += 1
    session.add(
        IncidentTransition(
            incident_id=incident.id,
            attempt=incident.attempt,
            from_state=incident.state,
            to_state=to_state,
            reason=reason,
            at=now,
        )
    )
    incident.state = to_state
    incident.updated_at = now
    if to_state == "RESOLVED":
        incident.resolved_at = now  # the open key stays until the anomaly is seen absent
    session.flush()
    return True


def list_transitions(*, session: Session, incident_id: str) -> Sequence[IncidentTransition]:
    """Return the incident's transitions in order."""
    stmt = select(IncidentTransition).where(IncidentTransition.incident_id == incident_id)
    return session.scalars(stmt.order_by(IncidentTransition.id)).all()


def find_reroute(
    *, session: Session, incident_id: str, workload_id: str, attempt: int = 0
) -> IncidentReroute | None:
    """Return the reroute this incident's attempt already made for the workload, or None."""
    stmt = select(IncidentReroute).where(
        IncidentReroute.incident_id == incident_id,
        IncidentReroute.attempt == attempt,
        IncidentReroute.workload_id == workload_id,
    )
    return session.scalars(stmt).one_or_none()


def add_reroute(*, session: Session, reroute: IncidentReroute) -> IncidentReroute:
    """Store a reroute attempt (unique per incident and workload)."""
    session.add(reroute)
    session.flush()
    return reroute


def list_reroutes(
    *, session: Session, incident_id: str, attempt: int | None = None
) -> Sequence[IncidentReroute]:
    """Return the incident's reroute attempts in order (of one attempt when given)."""
    stmt = select(IncidentReroute).where(IncidentReroute.incident_id == incident_id)
    if attempt is not None:
        stmt = stmt.where(IncidentReroute.attempt == attempt)
    return session.scalars(stmt.order_by(IncidentReroute.id)).all()


def add_grid_override(*, session: Session, override: GridOverride) -> GridOverride:
    """Store a grid override."""
    session.add(override)
    session.flush()
    return override


def active_grid_overrides(
    *, session: Session, start: datetime, end: datetime
) -> Sequence[GridOverride]:
    """Return overrides overlapping `[start, end)`."""
    stmt = select(GridOverride).where(GridOverride.starts_at < end, GridOverride.ends_at > start)
    return session.scalars(stmt.order_by(GridOverride.id)).all()


def find_alert(
    *, session: Session, deduplication_key: str, status: str, revision: int = 0
) -> AlertEvent | None:
    """Return the alert event already recorded for this key, status and revision, or None."""
    stmt = select(AlertEvent).where(
        AlertEvent.deduplication_key == deduplication_key,
        AlertEvent.status == status,
        AlertEvent.revision == revision,
    )
    return session.scalars(stmt).one_or_none()


def add_alert(*, session: Session, alert: AlertEvent) -> AlertEvent:
    """Store an alert event."""
    session.add(alert)
    session.flush()
    return alert
