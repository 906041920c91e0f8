"""alert revisions: an escalated incident re-sends its firing alert with the stuck work

incident.io updates an alert when the same deduplication key fires again; locally each
(key, status, revision) is recorded once so a resumed incident never sends an update twice.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 12:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_constraint("uq_alert_event_key_status", type_="unique")
        batch_op.create_unique_constraint(
            "uq_alert_event_key_status_revision", ["deduplication_key", "status", "revision"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM alert_events WHERE revision > 0")
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_alert_event_key_status_revision", type_="unique")
        batch_op.create_unique_constraint(
            "uq_alert_event_key_status", ["deduplication_key", "status"]
        )
        batch_op.drop_column("revision")
