"""Keep the append-only double-entry ledger and the money outbox tables.

Every money movement is one `transactions` row (its idempotency key makes the movement happen at
most once) plus two or more `ledger_entries`, each a debit or a credit of a positive integer
amount in minor units on one account. Per transaction the debits equal the credits; entries are
never updated or deleted (a trigger refuses it on SQLite and PostgreSQL); a provider's payable
balance never goes below zero (a trigger refuses the entry). Corrections are new reversing
transactions.

Accounts (`code:party`): `customer_receivable:<org>` (asset), `platform_revenue` (income),
`provider_payable:<owner>` (liability), `stripe_clearing` (asset), `solana_hot_wallet` (asset).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    case,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from store.models import Base, Organization, Transaction

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


@dataclass(frozen=True)
class Leg:
    """One side of a posting: `side` the `account_id` by `amount_minor` (> 0)."""

    account_id: str
    side: Side
    amount_minor: int


class UnbalancedTransactionError(ValueError):
    """A posting whose debits and credits differ, or with a non-positive or non-integer leg."""


def account_id(code: AccountCode, party_id: str | None = None) -> str:
    """Return the account id for `code` (and the organisation for per-party accounts)."""
    if code not in ACCOUNT_NORMAL_SIDE:
        raise ValueError(f"unknown account code {code!r}; use one of {sorted(ACCOUNT_NORMAL_SIDE)}")
    if (code in PER_PARTY) != (party_id is not None):
        raise ValueError(f"account {code!r} with party {party_id!r}: per-party accounts need one")
    return f"{code}:{party_id}" if party_id else code


def transaction_id_for(idempotency_key: str) -> str:
    """Return the deterministic transaction id of an idempotency key (stable across retries)."""
    return "txn_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


def validate_legs(legs: list[Leg]) -> int:
    """Check that `legs` balance and return the total of the debits.

    Raises:
        UnbalancedTransactionError: On a non-integer or non-positive amount, a missing side, or
            debits that differ from credits.
    """
    for leg in legs:
        if type(leg.amount_minor) is not int or leg.amount_minor <= 0:
            raise UnbalancedTransactionError(
                f"leg amount {leg.amount_minor!r} on {leg.account_id!r}: use a positive int"
            )
        if leg.side not in ("debit", "credit"):
            raise UnbalancedTransactionError(f"leg side {leg.side!r}: use 'debit' or 'credit'")
    debits = sum(leg.amount_minor for leg in legs if leg.side == "debit")
    credits = sum(leg.amount_minor for leg in legs if leg.side == "credit")
    if debits == 0 or credits == 0 or debits != credits:
        raise UnbalancedTransactionError(
            f"debits {debits!r} != credits {credits!r} (or a side is empty): balance the legs"
        )
    return debits


def ensure_account(*, session: Session, account: str, currency: str, now: datetime) -> None:
    """Create the account row for `account` (an id from `account_id`) when it is new.

    Safe against a concurrent creator: the insert runs in a savepoint and a duplicate is ignored.
    """
    if session.get(LedgerAccount, account) is not None:
        return
    code, _, party = account.partition(":")
    account_id(code, party or None)  # type: ignore[arg-type]  # validates code and party
    try:
        with session.begin_nested():
            session.add(
                LedgerAccount(
                    id=account,
                    code=code,
                    party_id=party or None,
                    normal_side=ACCOUNT_NORMAL_SIDE[code],
                    currency=currency,
                    created_at=now,
                )
            )
    except IntegrityError:
        if session.get(LedgerAccount, account) is None:
            raise


def find_transaction(*, session: Session, idempotency_key: str) -> Transaction | None:
    """Return the transaction recorded under `idempotency_key`, if any."""
    return session.scalars(
        select(Transaction).where(Transaction.idempotency_key == idempotency_key)
    ).one_or_none()


def post_transaction(
    *,
    session: Session,
    kind: str,
    idempotency_key: str,
    legs: list[Leg],
    currency: str,
    now: datetime,
    workload_id: str | None = None,
    org_id: str | None = None,
    memo: str | None = None,
    external_ref: str | None = None,
    status: str = "posted",
) -> Transaction:
    """Record a balanced transaction once; a repeat with the same key returns the first.

    Flushes, never commits: the caller's unit of work decides when it becomes durable.
    """
    total = validate_legs(legs)
    existing = find_transaction(session=session, idempotency_key=idempotency_key)
    if existing is not None:
        return existing
    txn = Transaction(
        id=transaction_id_for(idempotency_key),
        kind=kind,
        workload_id=workload_id,
        org_id=org_id,
        amount_minor=total,
        currency=currency,
        status=status,
        idempotency_key=idempotency_key,
        external_ref=external_ref,
        memo=memo,
        created_at=now,
    )
    session.add(txn)
    for leg in legs:
        ensure_account(session=session, account=leg.account_id, currency=currency, now=now)
    session.flush()
    for leg in legs:
        session.add(
            LedgerEntry(
                transaction_id=txn.id,
                account_id=leg.account_id,
                side=leg.side,
                amount_minor=leg.amount_minor,
                currency=currency,
                created_at=now,
            )
        )
    session.flush()
    return txn


def record_empty_transaction(
    *,
    session: Session,
    kind: str,
    idempotency_key: str,
    currency: str,
    now: datetime,
    workload_id: str | None = None,
    org_id: str | None = None,
    memo: str | None = None,
) -> Transaction:
    """Record a zero-amount transaction without entries (e.g. a free run), once per key."""
    existing = find_transaction(session=session, idempotency_key=idempotency_key)
    if existing is not None:
        return existing
    txn = Transaction(
        id=transaction_id_for(idempotency_key),
        kind=kind,
        workload_id=workload_id,
        org_id=org_id,
        amount_minor=0,
        currency=currency,
        status="no_charge",
        idempotency_key=idempotency_key,
        memo=memo,
        created_at=now,
    )
    session.add(txn)
    session.flush()
    return txn


def _signed_sum() -> ColumnElement[int]:
    return func.coalesce(
        func.sum(
            case(
                (LedgerEntry.side == "debit", LedgerEntry.amount_minor),
                else_=-LedgerEntry.amount_minor,
            )
        ),
        0,
    )


def account_balance(*, session: Session, account: str) -> int:
    """Return the balance of `account` on its normal side (e.g. what a payable owes)."""
    net = int(session.scalar(select(_signed_sum()).where(LedgerEntry.account_id == account)))
    code = account.partition(":")[0]
    return net if ACCOUNT_NORMAL_SIDE[code] == "debit" else -net


def lock_account(*, session: Session, account: str) -> None:
    """Lock the account row until the end of the DB transaction (FOR UPDATE on PostgreSQL)."""
    session.execute(
        select(LedgerAccount.id).where(LedgerAccount.id == account).with_for_update()
    ).all()


def open_payout_total(*, session: Session, org_id: str) -> int:
    """Return the amount reserved by the organisation's payouts that are not yet settled."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(PayoutIntent.amount_minor), 0)).where(
                PayoutIntent.org_id == org_id, PayoutIntent.status.in_(OPEN_PAYOUT_STATUSES)
            )
        )
    )


def trial_balance(*, session: Session) -> dict[str, object]:
    """Return totals, per-account balances and any unbalanced transaction ids.

    `trial_balance` is total debits minus total credits: zero for a sound ledger.
    """
    debit = func.coalesce(
        func.sum(case((LedgerEntry.side == "debit", LedgerEntry.amount_minor), else_=0)), 0
    )
    credit = func.coalesce(
        func.sum(case((LedgerEntry.side == "credit", LedgerEntry.amount_minor), else_=0)), 0
    )
    rows = session.execute(
        select(LedgerEntry.account_id, debit, credit)
        .group_by(LedgerEntry.account_id)
        .order_by(LedgerEntry.account_id)
    ).all()
    accounts = []
    for acc, d, c in rows:
        code = acc.partition(":")[0]
        balance = int(d) - int(c) if ACCOUNT_NORMAL_SIDE[code] == "debit" else int(c) - int(d)
        accounts.append({"account": acc, "debits": int(d), "credits": int(c), "balance": balance})
    unbalanced = session.scalars(
        select(LedgerEntry.transaction_id)
        .group_by(LedgerEntry.transaction_id)
        .having(_signed_sum() != 0)
    ).all()
    total_d = sum(a["debits"] for a in accounts)
    total_c = sum(a["credits"] for a in accounts)
    return {
        "trial_balance": total_d - total_c,
        "total_debits": total_d,
        "total_credits": total_c,
        "transactions": int(session.scalar(select(func.count()).select_from(Transaction))),
        "unbalanced_transactions": list(unbalanced),
        "accounts": accounts,
    }


def find_meter_event(*, session: Session, transaction_id: str) -> MeterEventRecord | None:
    """Return the meter event recorded for a usage transaction, if any."""
    return session.scalars(
        select(MeterEventRecord).where(MeterEventRecord.transaction_id == transaction_id)
    ).one_or_none()


def find_org_by_customer(*, session: Session, customer_id: str) -> Organization | None:
    """Return the organisation whose Stripe customer id is `customer_id`, if any."""
    return session.scalars(
        select(Organization).where(Organization.stripe_customer_id == customer_id)
    ).one_or_none()


def usage_transactions(
    *, session: Session, org_id: str, start: datetime, end: datetime
) -> list[Transaction]:
    """Return an organisation's usage transactions booked in [start, end), oldest first."""
    return list(
        session.scalars(
            select(Transaction)
            .where(
                Transaction.kind == "usage",
                Transaction.org_id == org_id,
                Transaction.created_at >= start,
                Transaction.created_at < end,
            )
            .order_by(Transaction.created_at, Transaction.id)
        )
    )
