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
from typing import TypedDict, TypeGuard

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from store.ledger_models import (
    ACCOUNT_NORMAL_SIDE,
    OPEN_PAYOUT_STATUSES,
    PAYOUT_STATUSES,
    PER_PARTY,
    SUBMISSION_STATUSES,
    AccountCode,
    ChainSubmission,
    LedgerAccount,
    LedgerEntry,
    MeterEventRecord,
    PayoutIntent,
    Side,
    WebhookEvent,
)
from store.models import Organization, Transaction

__all__ = [
    "ACCOUNT_NORMAL_SIDE",
    "OPEN_PAYOUT_STATUSES",
    "PAYOUT_STATUSES",
    "PER_PARTY",
    "SUBMISSION_STATUSES",
    "AccountBalance",
    "AccountCode",
    "ChainSubmission",
    "LedgerAccount",
    "LedgerEntry",
    "Leg",
    "MeterEventRecord",
    "PayoutIntent",
    "Side",
    "TrialBalance",
    "UnbalancedTransactionError",
    "WebhookEvent",
    "account_balance",
    "account_id",
    "ensure_account",
    "find_meter_event",
    "find_org_by_customer",
    "find_transaction",
    "lock_account",
    "open_payout_total",
    "post_transaction",
    "record_empty_transaction",
    "transaction_id_for",
    "trial_balance",
    "usage_transactions",
    "validate_legs",
]


@dataclass(frozen=True)
class Leg:
    """One side of a posting: `side` the `account_id` by `amount_minor` (> 0)."""

    account_id: str
    side: Side
    amount_minor: int


class AccountBalance(TypedDict):
    """One account in `trial_balance`: its totals and balance on its normal side (minor units)."""

    account: str
    currency: str
    debits: int
    credits: int
    balance: int


class TrialBalance(TypedDict):
    """What `trial_balance` returns."""

    trial_balance: int
    """Total debits minus total credits: zero for a sound ledger."""
    total_debits: int
    total_credits: int
    transactions: int
    unbalanced_transactions: list[str]
    accounts: list[AccountBalance]


class UnbalancedTransactionError(ValueError):
    """A posting whose debits and credits differ, or with a non-positive or non-integer leg."""


def account_id(code: AccountCode, party_id: str | None = None) -> str:
    """Return the account id for `code` (and the organisation for per-party accounts)."""
    if code not in ACCOUNT_NORMAL_SIDE:
        raise ValueError(f"unknown account code {code!r}; use one of {sorted(ACCOUNT_NORMAL_SIDE)}")
    if (code in PER_PARTY) != (party_id is not None):
        raise ValueError(f"account {code!r} with party {party_id!r}: per-party accounts need one")
    return f"{code}:{party_id}" if party_id else code


def _is_account_code(code: str) -> TypeGuard[AccountCode]:
    """Tell whether `code` is one of the ledger's account codes."""
    return code in ACCOUNT_NORMAL_SIDE


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
    if not _is_account_code(code):
        raise ValueError(f"unknown account code {code!r}; use one of {sorted(ACCOUNT_NORMAL_SIDE)}")
    account_id(code, party or None)  # validates the party
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
    net = int(
        session.execute(select(_signed_sum()).where(LedgerEntry.account_id == account)).scalar_one()
    )
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
        session.execute(
            select(func.coalesce(func.sum(PayoutIntent.amount_minor), 0)).where(
                PayoutIntent.org_id == org_id, PayoutIntent.status.in_(OPEN_PAYOUT_STATUSES)
            )
        ).scalar_one()
    )


def trial_balance(*, session: Session) -> TrialBalance:
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
        select(LedgerEntry.account_id, LedgerEntry.currency, debit, credit)
        .group_by(LedgerEntry.account_id, LedgerEntry.currency)
        .order_by(LedgerEntry.account_id, LedgerEntry.currency)
    ).all()
    accounts: list[AccountBalance] = []
    for acc, currency, d, c in rows:
        code = acc.partition(":")[0]
        balance = int(d) - int(c) if ACCOUNT_NORMAL_SIDE[code] == "debit" else int(c) - int(d)
        accounts.append(
            {
                "account": acc,
                "currency": currency,
                "debits": int(d),
                "credits": int(c),
                "balance": balance,
            }
        )
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
        "transactions": session.execute(select(func.count()).select_from(Transaction)).scalar_one(),
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
