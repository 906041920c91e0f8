"""Define the ledger tables: accounts, append-only entries and the money outbox rows.

The rules that keep them sound (balanced postings, no updates, payables never negative) live in
`store.ledger` and in the database triggers of migration 0002.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base

Side = Literal["debit", "credit"]
AccountCode = Literal[
    "customer_receivable",
    "platform_revenue",
    "provider_payable",
    "stripe_clearing",
    "solana_hot_wallet",
]
ACCOUNT_NORMAL_SIDE: dict[str, Side] = {
    "customer_receivable": "debit",
    "platform_revenue": "credit",
    "provider_payable": "credit",
    "stripe_clearing": "debit",
    "solana_hot_wallet": "debit",
}
PER_PARTY = {"customer_receivable", "provider_payable"}
PAYOUT_STATUSES = (
    "awaiting_approval",
    "approved",
    "signed",
    "sent",
    "posted",
    "voided",
    "needs_review",
    "rejected",
)
OPEN_PAYOUT_STATUSES = ("awaiting_approval", "approved", "signed", "sent")
SUBMISSION_STATUSES = ("signed", "sent", "finalized", "failed", "expired")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class LedgerAccount(Base):
    """An account of the chart: one per code, or one per code and organisation."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(_in("code", tuple(ACCOUNT_NORMAL_SIDE)), name="ck_account_code"),
        CheckConstraint(_in("normal_side", ("debit", "credit")), name="ck_account_side"),
    )

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    party_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id"))
    normal_side: Mapped[str] = mapped_column(String(6))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime]


class LedgerEntry(Base):
    """One immutable debit or credit of a positive amount on one account."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(_in("side", ("debit", "credit")), name="ck_entry_side"),
        CheckConstraint("amount_minor > 0", name="ck_entry_amount_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("transactions.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    side: Mapped[str] = mapped_column(String(6))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime]


class PayoutIntent(Base):
    """A provider payout for one workload, persisted before anything is signed or sent."""

    __tablename__ = "payout_intents"
    __table_args__ = (
        CheckConstraint(_in("status", PAYOUT_STATUSES), name="ck_payout_status"),
        CheckConstraint("amount_minor > 0", name="ck_payout_amount_positive"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    wallet_address: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    lamports: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    approval_required: Mapped[bool] = mapped_column(Boolean, default=False)
    approved_by: Mapped[str | None] = mapped_column(String(100))
    transaction_id: Mapped[str | None] = mapped_column(ForeignKey("transactions.id"))
    """The ledger posting (payable -> hot wallet), set once the transfer is finalized."""
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ChainSubmission(Base):
    """One signed on-chain attempt for a payout or a receipt; the signature is its identity."""

    __tablename__ = "chain_submissions"
    __table_args__ = (
        CheckConstraint(_in("status", SUBMISSION_STATUSES), name="ck_submission_status"),
        CheckConstraint(_in("purpose", ("payout", "receipt")), name="ck_submission_purpose"),
    )

    signature: Mapped[str] = mapped_column(String(128), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(10))
    ref_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    signed_tx: Mapped[str] = mapped_column(Text)
    """Base64 of the exact signed bytes; rebroadcast these, never re-sign while valid."""
    blockhash: Mapped[str] = mapped_column(String(64))
    last_valid_block_height: Mapped[int] = mapped_column(BigInteger)
    chain: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class MeterEventRecord(Base):
    """A usage meter event sent to Stripe (or recorded locally in demo mode)."""

    __tablename__ = "meter_events"

    identifier: Mapped[str] = mapped_column(String(100), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("transactions.id"), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    customer_id: Mapped[str] = mapped_column(String(100))
    event_name: Mapped[str] = mapped_column(String(100))
    value: Mapped[int] = mapped_column(BigInteger)
    mode: Mapped[str] = mapped_column(String(10))
    """`stripe` when Stripe accepted it, `demo` when recorded locally without a key."""
    created_at: Mapped[datetime]


class WebhookEvent(Base):
    """A processed Stripe webhook event id; inserted with its ledger effect, so applied once."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    transaction_id: Mapped[str | None] = mapped_column(ForeignKey("transactions.id"))
    received_at: Mapped[datetime]
