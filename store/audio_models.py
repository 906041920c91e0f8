"""Define the audio alert table: spoken alerts of curtailment events and incidents.

Rows are never updated: an event whose text changes gets a new row, its next revision.
Registered on the shared `Base.metadata`; created by migration 0004, revisions by 0010.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, _in

AUDIO_ALERT_KINDS = ("curtailment", "incident")


class AudioAlert(Base):
    """A spoken alert stored as a WAV under the data directory."""

    __tablename__ = "audio_alerts"
    __table_args__ = (
        CheckConstraint(_in("kind", AUDIO_ALERT_KINDS), name="ck_audio_alert_kind"),
        UniqueConstraint("kind", "ref", "revision", name="uq_audio_alert_kind_ref_revision"),
        Index("ix_audio_alerts_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(64))
    """Curtailment event id (as text) or incident id."""
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """1 for the first alert of an event; a changed event is spoken again as the next revision."""
    zone: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    """What is spoken: built from a fixed template, never from free text."""
    text_hash: Mapped[str] = mapped_column(String(64))
    """sha256 of engine, voice and text; also the WAV file name (the cache key)."""
    engine: Mapped[str] = mapped_column(String(20))
    voice: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(500))
    """WAV path relative to the data directory."""
    duration_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]
