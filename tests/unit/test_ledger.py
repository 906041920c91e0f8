from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from store.ledger import (
    Leg,
    UnbalancedTransactionError,
    account_balance,
    account_id,
    post_transaction,
    trial_balance,
    validate_legs,
)
from store.models import Organization

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
AR = account_id("customer_receivable", "acme")
PAY = account_id("provider_payable", "gamer")
REV = account_id("platform_revenue")
HOT = account_id("solana_hot_wallet")


def _orgs(session):
    session.add_all(
        [
            Organization(id="acme", name="Acme", kind="enterprise", created_at=NOW),
            Organization(id="gamer", name="G", kind="gamer", created_at=NOW),
        ]
    )
    session.commit()


def _bill(session, key="usage:w1", gross=1000):
    fee = gross * 15 // 100
    return post_transaction(
        session=session,
        kind="usage",
        idempotency_key=key,
        currency="EUR",
        now=NOW,
        legs=[
            Leg(AR, "debit", gross),
            Leg(REV, "credit", fee),
            Leg(PAY, "credit", gross - fee),
        ],
    )


def test_posting_balances_and_is_idempotent(session):
    _orgs(session)
    first = _bill(session)
    again = _bill(session)
    session.commit()
    assert first.id == again.id and first.amount_minor == 1000
    assert account_balance(session=session, account=AR) == 1000
    assert account_balance(session=session, account=PAY) == 850
    assert account_balance(session=session, account=REV) == 150
    tb = trial_balance(session=session)
    assert tb["trial_balance"] == 0 and tb["total_debits"] == 1000
    assert tb["unbalanced_transactions"] == [] and tb["transactions"] == 1


@pytest.mark.parametrize(
    "legs",
    [
        [Leg(AR, "debit", 10), Leg(REV, "credit", 9)],
        [Leg(AR, "debit", 10)],
        [Leg(AR, "debit", 0), Leg(REV, "credit", 0)],
        [Leg(AR, "debit", -5), Leg(REV, "credit", -5)],
        [Leg(AR, "debit", 1.5), Leg(REV, "credit", 1.5)],
        [Leg(AR, "debit", True), Leg(REV, "credit", True)],
    ],
)
def test_unbalanced_or_bad_legs_are_refused_in_code(legs):
    with pytest.raises(UnbalancedTransactionError):
        validate_legs(legs)


def test_bad_account_codes_are_refused():
    with pytest.raises(ValueError, match="unknown account code"):
        account_id("cash")
    with pytest.raises(ValueError, match="per-party"):
        account_id("provider_payable")


def test_entries_cannot_be_updated_or_deleted(engine, session):
    _orgs(session)
    _bill(session)
    session.commit()
    for sql in ("UPDATE ledger_entries SET amount_minor = 1", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    assert trial_balance(session=session)["total_debits"] == 1000


def test_database_refuses_an_unbalanced_transaction_on_postgres(pg_engine):
    from store.db import make_session_factory

    with make_session_factory(pg_engine)() as s:
        _orgs(s)
        _bill(s)
        s.commit()
        txn_id = _bill(s).id
    with pytest.raises(DBAPIError, match="unbalanced"), pg_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger_entries (transaction_id, account_id, side, amount_minor,"
                " currency, created_at) VALUES (:t, :a, 'debit', 7, 'EUR', now())"
            ),
            {"t": txn_id, "a": AR},
        )


def test_database_refuses_paying_more_than_payable(engine, session):
    _orgs(session)
    _bill(session)  # payable 850
    session.commit()
    post_transaction(
        session=session,
        kind="payout",
        idempotency_key="payout:1",
        currency="EUR",
        now=NOW,
        legs=[Leg(PAY, "debit", 800), Leg(HOT, "credit", 800)],
    )
    session.commit()
    # bypass the code path: the store itself must refuse the overdraft
    with pytest.raises((DBAPIError, IntegrityError), match="exceeds provider payable"):
        post_transaction(
            session=session,
            kind="payout",
            idempotency_key="payout:2",
            currency="EUR",
            now=NOW,
            legs=[Leg(PAY, "debit", 51), Leg(HOT, "credit", 51)],
        )
        session.commit()
    session.rollback()
    assert account_balance(session=session, account=PAY) == 50
    assert trial_balance(session=session)["trial_balance"] == 0
