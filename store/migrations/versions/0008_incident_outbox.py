"""incident outbox: alerts and model summaries owed by a transition, delivered after commit

Rows are written in the transaction that records an incident transition and delivered after it
commits, so no row lock or write transaction is held across a model or network call. Incidents
also keep their open key after RESOLVED until the anomaly is seen absent (one incident per
anomaly episode); that needs no schema change.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("due_at", store.models.UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", store.models.UTCDateTime(), nullable=False),
        sa.Column("done_at", store.models.UTCDateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('alert', 'summary')", name="ck_incident_outbox_kind"),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'failed')", name="ck_incident_outbox_status"
        ),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", name="uq_incident_outbox_key"),
    )
    with op.batch_alter_table("incident_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_incident_outbox_due", ["status", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("incident_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_outbox_due")
    op.drop_table("incident_outbox")
