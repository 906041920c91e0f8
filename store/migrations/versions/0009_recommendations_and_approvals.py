"""stored recommendations, one workload per recommendation, recorded write approvals

`recommendations` keeps each placement quote with an expiry; `workloads.recommendation_id`
links the workload that commits a quote, unique so a quote routes at most once.
`write_approvals` records who approved or rejected an agent's proposed write, when, and what.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recommendations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("node_id", sa.String(64), sa.ForeignKey("compute_nodes.id"), nullable=False),
        sa.Column("zone", sa.String(32), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("energy_kwh", sa.Float(), nullable=False),
        sa.Column("co2_kg", sa.Float(), nullable=False),
        sa.Column("baseline_co2_kg", sa.Float(), nullable=True),
        sa.Column("price_per_gpu_hour_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("grid_source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_recommendations_org_created", "recommendations", ["org_id", "created_at"])
    if op.get_bind().dialect.name == "sqlite":
        # No table copy on SQLite: other tables reference workloads rows.
        op.execute(
            "ALTER TABLE workloads ADD COLUMN recommendation_id VARCHAR(64) "
            "CONSTRAINT fk_workloads_recommendation REFERENCES recommendations (id)"
        )
    else:
        op.add_column("workloads", sa.Column("recommendation_id", sa.String(64), nullable=True))
        op.create_foreign_key(
            "fk_workloads_recommendation",
            "workloads",
            "recommendations",
            ["recommendation_id"],
            ["id"],
        )
    op.create_index(
        "uq_workloads_recommendation", "workloads", ["recommendation_id"], unique=True
    )
    op.create_table(
        "write_approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("thread_id", sa.String(200), nullable=False),
        sa.Column("tool_call_id", sa.String(200), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("thread_id", "tool_call_id", name="uq_write_approvals_call"),
    )
    op.create_index("ix_write_approvals_thread", "write_approvals", ["thread_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_write_approvals_thread", table_name="write_approvals")
    op.drop_table("write_approvals")
    op.drop_index("uq_workloads_recommendation", table_name="workloads")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_workloads_recommendation", "workloads", type_="foreignkey")
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.drop_column("recommendation_id")
    op.drop_index("ix_recommendations_org_created", table_name="recommendations")
    op.drop_table("recommendations")
