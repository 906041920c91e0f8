"""incident escalation: ESCALATED state, attempts on incidents, transitions and reroutes

An ESCALATED incident is re-examined by later watcher passes; when something changed it runs
again on the same incident as a new attempt, so transitions and reroutes are unique per
(incident, attempt, ...) instead of per incident.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATES = "'MONITORING', 'ANOMALY_DETECTED', 'EVALUATING', 'ADAPTING', 'RESOLVED'"
NEW_STATES = f"{OLD_STATES}, 'ESCALATED'"


def _attempt() -> sa.Column[int]:
    return sa.Column("attempt", sa.Integer(), nullable=False, server_default="0")


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(_attempt())
        batch_op.drop_constraint("ck_incident_state", type_="check")
        batch_op.create_check_constraint("ck_incident_state", f"state IN ({NEW_STATES})")
    with op.batch_alter_table("incident_transitions", schema=None) as batch_op:
        batch_op.add_column(_attempt())
        batch_op.drop_constraint("uq_incident_transition_state", type_="unique")
        batch_op.create_unique_constraint(
            "uq_incident_transition_attempt_state", ["incident_id", "attempt", "to_state"]
        )
    with op.batch_alter_table("incident_reroutes", schema=None) as batch_op:
        batch_op.add_column(_attempt())
        batch_op.drop_constraint("uq_incident_reroute_workload", type_="unique")
        batch_op.create_unique_constraint(
            "uq_incident_reroute_attempt_workload", ["incident_id", "attempt", "workload_id"]
        )


def downgrade() -> None:
    # Later attempts cannot be represented in the old schema: keep only the first one.
    op.execute("DELETE FROM incident_reroutes WHERE attempt > 0")
    op.execute("DELETE FROM incident_transitions WHERE attempt > 0")
    op.execute(
        "UPDATE incidents SET state = 'ADAPTING' "
        "WHERE state = 'ESCALATED' OR (attempt > 0 AND state != 'RESOLVED')"
    )
    with op.batch_alter_table("incident_reroutes", schema=None) as batch_op:
        batch_op.drop_constraint("uq_incident_reroute_attempt_workload", type_="unique")
        batch_op.create_unique_constraint(
            "uq_incident_reroute_workload", ["incident_id", "workload_id"]
        )
        batch_op.drop_column("attempt")
    with op.batch_alter_table("incident_transitions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_incident_transition_attempt_state", type_="unique")
        batch_op.create_unique_constraint(
            "uq_incident_transition_state", ["incident_id", "to_state"]
        )
        batch_op.drop_column("attempt")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_constraint("ck_incident_state", type_="check")
        batch_op.create_check_constraint("ck_incident_state", f"state IN ({OLD_STATES})")
        batch_op.drop_column("attempt")
