"""ledger: accounts, append-only entries, payout intents, chain submissions, meter and webhook events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_TRIGGERS = [
    """
    CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'ledger_entries are append-only: % refused; post a reversing transaction', TG_OP;
    END $$
    """,
    """
    CREATE TRIGGER ledger_entries_no_update_delete BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()
    """,
    """
    CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only()
    """,
    """
    CREATE FUNCTION ledger_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE net bigint;
    BEGIN
      SELECT COALESCE(SUM(CASE WHEN side = 'debit' THEN amount_minor ELSE -amount_minor END), 0)
        INTO net FROM ledger_entries WHERE transaction_id = NEW.transaction_id;
      IF net <> 0 THEN
        RAISE EXCEPTION 'transaction % is unbalanced by % (debits must equal credits)',
          NEW.transaction_id, net;
      END IF;
      RETURN NULL;
    END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_transaction_balanced()
    """,
    """
    CREATE FUNCTION ledger_payable_not_negative() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE bal bigint;
    BEGIN
      SELECT COALESCE(SUM(CASE WHEN side = 'credit' THEN amount_minor ELSE -amount_minor END), 0)
        INTO bal FROM ledger_entries WHERE account_id = NEW.account_id;
      IF bal < 0 THEN
        RAISE EXCEPTION 'payout exceeds provider payable on %: balance would be %',
          NEW.account_id, bal;
      END IF;
      RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER ledger_payable_not_negative AFTER INSERT ON ledger_entries
    FOR EACH ROW WHEN (NEW.side = 'debit' AND NEW.account_id LIKE 'provider_payable:%')
    EXECUTE FUNCTION ledger_payable_not_negative()
    """,
]

_SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
    BEGIN SELECT RAISE(ABORT, 'ledger_entries are append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
    BEGIN SELECT RAISE(ABORT, 'ledger_entries are append-only: DELETE refused'); END
    """,
    """
    CREATE TRIGGER ledger_payable_not_negative AFTER INSERT ON ledger_entries
    WHEN NEW.side = 'debit' AND NEW.account_id LIKE 'provider_payable:%'
    BEGIN
      SELECT RAISE(ABORT, 'payout exceeds provider payable')
      WHERE (SELECT SUM(CASE WHEN side = 'credit' THEN amount_minor ELSE -amount_minor END)
             FROM ledger_entries WHERE account_id = NEW.account_id) < 0;
    END
    """,
]


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("party_id", sa.String(length=64), nullable=True),
        sa.Column("normal_side", sa.String(length=6), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", store.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "code IN ('customer_receivable', 'platform_revenue', 'provider_payable', "
            "'stripe_clearing', 'solana_hot_wallet')",
            name="ck_account_code",
        ),
        sa.CheckConstraint("normal_side IN ('debit', 'credit')", name="ck_account_side"),
        sa.ForeignKeyConstraint(["party_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=120), nullable=False),
        sa.Column("side", sa.String(length=6), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", store.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint("side IN ('debit', 'credit')", name="ck_entry_side"),
        sa.CheckConstraint("amount_minor > 0", name="ck_entry_amount_positive"),
        sa.ForeignKeyConstraint(["transaction_id"], ["transactions.id"]),
        sa.ForeignKeyConstraint(["account_id"], ["ledger_accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ledger_entries_transaction_id", "ledger_entries", ["transaction_id"])
    op.create_index("ix_ledger_entries_account_id", "ledger_entries", ["account_id"])
    op.create_table(
        "payout_intents",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("workload_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("wallet_address", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("lamports", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("approval_required", sa.Boolean(), nullable=False),
        sa.Column("approved_by", sa.String(length=100), nullable=True),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", store.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('awaiting_approval', 'approved', 'signed', 'sent', 'posted', 'voided', "
            "'needs_review', 'rejected')",
            name="ck_payout_status",
        ),
        sa.CheckConstraint("amount_minor > 0", name="ck_payout_amount_positive"),
        sa.ForeignKeyConstraint(["workload_id"], ["workloads.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["transaction_id"], ["transactions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workload_id"),
    )
    op.create_index("ix_payout_intents_org_id", "payout_intents", ["org_id"])
    op.create_table(
        "chain_submissions",
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("ref_id", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("signed_tx", sa.Text(), nullable=False),
        sa.Column("blockhash", sa.String(length=64), nullable=False),
        sa.Column("last_valid_block_height", sa.BigInteger(), nullable=False),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", store.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.models.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('signed', 'sent', 'finalized', 'failed', 'expired')",
            name="ck_submission_status",
        ),
        sa.CheckConstraint("purpose IN ('payout', 'receipt')", name="ck_submission_purpose"),
        sa.PrimaryKeyConstraint("signature"),
    )
    op.create_index("ix_chain_submissions_ref_id", "chain_submissions", ["ref_id"])
    op.create_table(
        "meter_events",
        sa.Column("identifier", sa.String(length=100), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("event_name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("created_at", store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["transaction_id"], ["transactions.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("identifier"),
        sa.UniqueConstraint("transaction_id"),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["transaction_id"], ["transactions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    dialect = op.get_bind().dialect.name
    for statement in _PG_TRIGGERS if dialect == "postgresql" else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_table("webhook_events")
    op.drop_table("meter_events")
    op.drop_table("chain_submissions")
    op.drop_table("payout_intents")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_accounts")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_entries_append_only()")
        op.execute("DROP FUNCTION IF EXISTS ledger_transaction_balanced()")
        op.execute("DROP FUNCTION IF EXISTS ledger_payable_not_negative()")
