"""Repository functions for write approvals: a person's recorded decision on a proposed write.

Keyword-only, session first; they add and flush, the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import WriteApproval


def record_approval(
    *,
    session: Session,
    thread_id: str,
    tool_call_id: str,
    org_id: str,
    tool: str,
    args: dict[str, Any],
    summary: dict[str, Any],
    approved: bool,
    decided_by: str,
    decided_at: datetime,
    reason: str | None,
) -> WriteApproval:
    """Store one decision on a proposed write and return it."""
    row = WriteApproval(
        thread_id=thread_id,
        tool_call_id=tool_call_id,
        org_id=org_id,
        tool=tool,
        args=args,
        summary=summary,
        approved=approved,
        decided_by=decided_by,
        decided_at=decided_at,
        reason=reason,
    )
    session.add(row)
    session.flush()
    return row


def latest_approval(*, session: Session, thread_id: str) -> WriteApproval | None:
    """Return the newest decision taken on conversation `thread_id`, or None."""
    stmt = (
        select(WriteApproval)
        .where(WriteApproval.thread_id == thread_id)
        .order_by(WriteApproval.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).one_or_none()


def list_approvals(*, session: Session, thread_id: str | None = None) -> list[WriteApproval]:
    """Return decisions, oldest first, optionally of one conversation."""
    stmt = select(WriteApproval).order_by(WriteApproval.id)
    if thread_id is not None:
        stmt = stmt.where(WriteApproval.thread_id == thread_id)
    return list(session.scalars(stmt).all())
