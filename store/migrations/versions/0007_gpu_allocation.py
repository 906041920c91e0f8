"""gpu allocation as a database invariant; workload row versions

`compute_nodes.allocated_gpus` holds the GPUs of routed and running workloads, changed only by
one conditional UPDATE, with CHECK (allocated_gpus >= 0 AND allocated_gpus + reserved_gpus <=
gpu_count). `workloads.version` makes every ORM update compare-and-set. Existing allocations are
backfilled; a database that is already oversubscribed is refused with the nodes named.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 02:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "allocated_gpus >= 0 AND allocated_gpus + reserved_gpus <= gpu_count"
HELD = (
    "SELECT COALESCE(SUM(w.gpu_count), 0) FROM workloads w WHERE w.node_id = compute_nodes.id "
    "AND w.status IN ('routed', 'running')"
)


def upgrade() -> None:
    bind = op.get_bind()
    over = bind.execute(
        sa.text(
            f"SELECT id, gpu_count - reserved_gpus, ({HELD}) FROM compute_nodes "
            f"WHERE ({HELD}) > gpu_count - reserved_gpus"
        )
    ).all()
    if over:
        named = ", ".join(f"{node} holds {held} of {free} GPUs" for node, free, held in over)
        raise RuntimeError(
            f"cannot add the GPU allocation invariant: {named}; cancel or complete the excess "
            "routed/running workloads on those nodes, then upgrade again"
        )
    if bind.dialect.name == "sqlite":
        # SQLite cannot add a table constraint; a column CHECK holds the same rule.
        op.execute(
            "ALTER TABLE compute_nodes ADD COLUMN allocated_gpus INTEGER NOT NULL DEFAULT 0 "
            f"CONSTRAINT ck_node_allocated CHECK ({CHECK})"
        )
        op.execute(f"UPDATE compute_nodes SET allocated_gpus = ({HELD})")
    else:
        op.add_column(
            "compute_nodes",
            sa.Column("allocated_gpus", sa.Integer(), nullable=False, server_default="0"),
        )
        op.execute(f"UPDATE compute_nodes SET allocated_gpus = ({HELD})")
        op.create_check_constraint("ck_node_allocated", "compute_nodes", CHECK)
    op.add_column(
        "workloads", sa.Column("version", sa.Integer(), nullable=False, server_default="1")
    )


def downgrade() -> None:
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.drop_column("version")
    with op.batch_alter_table("compute_nodes", schema=None) as batch_op:
        batch_op.drop_constraint("ck_node_allocated", type_="check")
        batch_op.drop_column("allocated_gpus")
