"""audio alerts: one spoken WAV per curtailment event or incident

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audio_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("zone", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("engine", sa.String(length=20), nullable=False),
        sa.Column("voice", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("created_at", store.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('curtailment', 'incident')", name="ck_audio_alert_kind"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "ref", name="uq_audio_alert_kind_ref"),
    )
    with op.batch_alter_table("audio_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_audio_alerts_created", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audio_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_audio_alerts_created")
    op.drop_table("audio_alerts")
