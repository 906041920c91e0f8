"""audio alert revisions; grid overrides that inject a renewable surplus

A curtailment window that grows, or an incident whose text changes, gets a new audio alert with
the next revision of the same (kind, ref) instead of overwriting the one already spoken.
`grid_overrides.surplus` marks an override whose zone has spare renewables: every router, the
map and the header then read surplus and curtailment for its hours.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("grid_overrides", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("surplus", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("audio_alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
        batch_op.drop_constraint("uq_audio_alert_kind_ref", type_="unique")
        batch_op.create_unique_constraint(
            "uq_audio_alert_kind_ref_revision", ["kind", "ref", "revision"]
        )


def downgrade() -> None:
    op.execute(
        "DELETE FROM audio_alerts WHERE revision < "
        "(SELECT MAX(a.revision) FROM audio_alerts a "
        "WHERE a.kind = audio_alerts.kind AND a.ref = audio_alerts.ref)"
    )
    with op.batch_alter_table("audio_alerts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_audio_alert_kind_ref_revision", type_="unique")
        batch_op.create_unique_constraint("uq_audio_alert_kind_ref", ["kind", "ref"])
        batch_op.drop_column("revision")
    with op.batch_alter_table("grid_overrides", schema=None) as batch_op:
        batch_op.drop_column("surplus")
