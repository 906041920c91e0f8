"""workloads.movable: whether running work may move to make room for other work

A workload that cannot checkpoint (`movable` false) moves only when its node can no longer run
it: the hourly and incident re-plans never move it to make room for other work
(`tools.broker.make_room`), a reroute keeps it (`tools.broker.rerouting.reroute_workload`), and
its blocking charge is not capped by a move it cannot make.
Every existing workload stays movable, as before.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "workloads",
        sa.Column("movable", sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    op.drop_column("workloads", "movable")
