"""Repository functions for audio alerts (keyword-only, session first; flush, never commit)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.audio_models import AudioAlert


def find_audio_alert(*, session: Session, kind: str, ref: str) -> AudioAlert | None:
    """Return the latest revision of one curtailment event's or incident's alert, or None."""
    stmt = (
        select(AudioAlert)
        .where(AudioAlert.kind == kind, AudioAlert.ref == ref)
        .order_by(AudioAlert.revision.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def get_audio_alert(*, session: Session, alert_id: int) -> AudioAlert | None:
    """Return one audio alert by id, or None."""
    return session.get(AudioAlert, alert_id)


def save_audio_alert(*, session: Session, alert: AudioAlert) -> AudioAlert:
    """Insert a new audio alert (spoken alerts are never updated)."""
    session.add(alert)
    session.flush()
    return alert


def list_audio_alerts(
    *, session: Session, kind: str | None = None, limit: int | None = None
) -> Sequence[AudioAlert]:
    """Return audio alerts, newest first, optionally of one kind."""
    stmt = select(AudioAlert).order_by(AudioAlert.created_at.desc(), AudioAlert.id.desc())
    if kind is not None:
        stmt = stmt.where(AudioAlert.kind == kind)
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all()
