"""scheduled work: a planned start per workload, GPU reservations per hour span

`workloads.status` gains 'scheduled' (placed on a node for a later hour, not yet holding GPUs);
`workloads.planned_start_at` says when. `gpu_reservations` holds one row per scheduled workload
(node, GPUs, [start_at, end_at)); `store.repo.reserve_gpus` writes it under the node's lock.
`routing_decisions` records the planned start and the forecast figures behind it, and gains the
kinds 'replan' and 'start' and the outcomes 'scheduled', 'rescheduled' and 'started'.

SQLite cannot alter a CHECK and the workloads table cannot be copied (other tables reference its
rows), so there the CHECK text is widened in place in the schema (SQLite's documented
`writable_schema` procedure; widening an IN list cannot invalidate stored rows).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


OLD_STATUSES = ("pending", "routed", "running", "completed", "failed", "cancelled")
NEW_STATUSES = ("pending", "scheduled", "routed", "running", "completed", "failed", "cancelled")
OLD_KINDS = ("route", "reroute")
NEW_KINDS = ("route", "reroute", "replan", "start")
OLD_OUTCOMES = ("routed", "rerouted", "kept", "no_eligible_node", "limit_reached")
NEW_OUTCOMES = (*OLD_OUTCOMES, "scheduled", "rescheduled", "started")
CHECKS = (
    ("workloads", "ck_workload_status", "status", OLD_STATUSES, NEW_STATUSES),
    ("routing_decisions", "ck_decision_kind", "kind", OLD_KINDS, NEW_KINDS),
    ("routing_decisions", "ck_decision_outcome", "outcome", OLD_OUTCOMES, NEW_OUTCOMES),
)


def _sqlite_rewrite_checks(forward: bool) -> None:
    bind = op.get_bind()
    for table, _name, _column, old, new in CHECKS:
        src, dst = (old, new) if forward else (new, old)
        sql = bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
            {"t": table},
        ).scalar_one()
        if f"IN ({_in(src)})" not in sql:
            raise RuntimeError(f"{table}: expected CHECK ... IN ({_in(src)}) in {sql!r}")
        version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
        bind.execute(sa.text("PRAGMA writable_schema = ON"))
        bind.execute(
            sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :t"),
            {"sql": sql.replace(f"IN ({_in(src)})", f"IN ({_in(dst)})"), "t": table},
        )
        bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
        bind.execute(sa.text("PRAGMA writable_schema = OFF"))


def _rewrite_checks(forward: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rewrite_checks(forward)
        return
    for table, name, column, old, new in CHECKS:
        op.drop_constraint(name, table, type_="check")
        op.create_check_constraint(name, table, f"{column} IN ({_in(new if forward else old)})")


def upgrade() -> None:
    _rewrite_checks(forward=True)
    op.add_column("workloads", sa.Column("planned_start_at", sa.DateTime(), nullable=True))
    op.add_column("routing_decisions", sa.Column("planned_start_at", sa.DateTime(), nullable=True))
    op.add_column("routing_decisions", sa.Column("plan", sa.JSON(), nullable=True))
    op.create_table(
        "gpu_reservations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("workload_id", sa.String(64), sa.ForeignKey("workloads.id"), nullable=False),
        sa.Column("node_id", sa.String(64), sa.ForeignKey("compute_nodes.id"), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=False),
        sa.Column("end_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("gpus > 0", name="ck_reservation_gpus"),
        sa.CheckConstraint("end_at > start_at", name="ck_reservation_span"),
        sa.UniqueConstraint("workload_id", name="uq_reservation_workload"),
    )
    op.create_index("ix_reservations_node_start", "gpu_reservations", ["node_id", "start_at"])


def downgrade() -> None:
    bind = op.get_bind()
    scheduled = bind.execute(
        sa.text("SELECT COUNT(*) FROM workloads WHERE status = 'scheduled'")
    ).scalar_one()
    if scheduled:
        raise RuntimeError(
            f"{scheduled} workloads are scheduled; start or cancel them before downgrading"
        )
    planned = bind.execute(
        sa.text(
            "SELECT COUNT(*) FROM routing_decisions WHERE kind NOT IN "
            f"({_in(OLD_KINDS)}) OR outcome NOT IN ({_in(OLD_OUTCOMES)})"
        )
    ).scalar_one()
    if planned:
        raise RuntimeError(
            f"{planned} routing decisions record schedules; the older schema cannot hold them"
        )
    op.drop_index("ix_reservations_node_start", table_name="gpu_reservations")
    op.drop_table("gpu_reservations")
    with op.batch_alter_table("routing_decisions", schema=None) as batch_op:
        batch_op.drop_column("plan")
        batch_op.drop_column("planned_start_at")
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.drop_column("planned_start_at")
    _rewrite_checks(forward=False)
