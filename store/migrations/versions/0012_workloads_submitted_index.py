"""an index on workloads.submitted_at

Every route plan and every hourly re-plan reads the large workloads submitted in the last week
(`store.repo.workloads_submitted`, the blocking charge's evidence); without an index that read
scans the whole workloads table, which only grows.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 20:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_workloads_submitted_at", "workloads", ["submitted_at"])


def downgrade() -> None:
    op.drop_index("ix_workloads_submitted_at", table_name="workloads")
