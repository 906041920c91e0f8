"""Repository functions for the incident outbox: enqueue, claim, finish, retry, give up.

Keyword-only, session first; they flush and never commit (the caller owns the transaction).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.incident_models import IncidentOutbox


def find_outbox(*, session: Session, key: str) -> IncidentOutbox | None:
    """Return the outbox row with this key, or None."""
    return session.scalars(select(IncidentOutbox).where(IncidentOutbox.key == key)).one_or_none()


def enqueue(
    *,
    session: Session,
    incident_id: str,
    kind: str,
    key: str,
    payload: dict[str, Any],
    now: datetime,
) -> IncidentOutbox:
    """Add a pending row due now, unless one with this key exists (then return that one).

    Call it in the transaction that holds the incident's row lock, so the check and the insert
    cannot race with another writer of the same incident.
    """
    row = find_outbox(session=session, key=key)
    if row is not None:
        return row
    row = IncidentOutbox(
        incident_id=incident_id,
        kind=kind,
        key=key,
        payload=payload,
        status="pending",
        attempts=0,
        due_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def claim_next(
    *, session: Session, now: datetime, lease: timedelta, kinds: Collection[str]
) -> IncidentOutbox | None:
    """Claim the oldest due pending row of `kinds`: count the attempt, push `due_at` by `lease`.

    `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several watchers never claim the same row; the
    lease makes a row whose deliverer died due again later.
    """
    if not kinds:
        return None
    stmt = (
        select(IncidentOutbox)
        .where(
            IncidentOutbox.status == "pending",
            IncidentOutbox.due_at <= now,
            IncidentOutbox.kind.in_(list(kinds)),
        )
        .order_by(IncidentOutbox.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    row = session.scalars(stmt).one_or_none()
    if row is not None:
        row.attempts += 1
        row.due_at = now + lease
        session.flush()
    return row


def finish(*, session: Session, row_id: int, now: datetime) -> None:
    """Mark a row delivered."""
    row = session.get(IncidentOutbox, row_id, with_for_update=True)
    if row is not None and row.status == "pending":
        row.status, row.done_at, row.last_error = "done", now, None
        session.flush()


def retry_later(*, session: Session, row_id: int, due_at: datetime, error: str) -> None:
    """Keep a row pending until `due_at`, noting why this attempt failed."""
    row = session.get(IncidentOutbox, row_id, with_for_update=True)
    if row is not None and row.status == "pending":
        row.due_at, row.last_error = due_at, error[:2000]
        session.flush()


def give_up(*, session: Session, row_id: int, now: datetime, error: str) -> None:
    """Mark a row failed for good (nothing will try it again)."""
    row = session.get(IncidentOutbox, row_id, with_for_update=True)
    if row is not None and row.status == "pending":
        row.status, row.done_at, row.last_error = "failed", now, error[:2000]
        session.flush()


def list_outbox(
    *, session: Session, incident_id: str | None = None, status: str | None = None
) -> Sequence[IncidentOutbox]:
    """Return outbox rows in order, of one incident and/or status when given."""
    stmt = select(IncidentOutbox)
    if incident_id is not None:
        stmt = stmt.where(IncidentOutbox.incident_id == incident_id)
    if status is not None:
        stmt = stmt.where(IncidentOutbox.status == status)
    return session.scalars(stmt.order_by(IncidentOutbox.id)).all()
