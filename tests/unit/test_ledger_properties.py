import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from store import ledger
from store.db import make_engine, make_session_factory
from store.ledger import Leg
from store.migrate import upgrade
from store.models import Organization
from tools.money.usage import split_fee

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
CUSTOMERS = ["c1", "c2", "c3"]
PROVIDERS = ["p1", "p2"]


@pytest.fixture
def fast_engine():
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        engine = make_engine(f"sqlite:///{tmp}/ledger.db")
        upgrade(engine)
        yield engine
        engine.dispose()


def test_random_bill_pay_refund_sequences_keep_the_ledger_sound(fast_engine):
    rng = random.Random(2026)
    sessions = make_session_factory(fast_engine)
    s = sessions()
    for org in CUSTOMERS + PROVIDERS:
        s.add(
            Organization(
                id=org, name=org, kind="enterprise" if org[0] == "c" else "gamer", created_at=NOW
            )
        )
    s.commit()
    usages: list[tuple[str, str, int, int]] = []
    refused = applied = 0
    for step in range(600):
        op = rng.choice(["bill", "bill", "pay", "pay", "collect", "refund"])
        key = f"{op}:{step}"
        if op == "bill" or not usages:
            c, p = rng.choice(CUSTOMERS), rng.choice(PROVIDERS)
            gross = rng.choice([1, 7, 99, rng.randrange(1, 10**9)])
            fee, share = split_fee(gross)
            legs = [
                Leg(f"customer_receivable:{c}", "debit", gross),
                Leg(f"provider_payable:{p}", "credit", share),
            ]
            if fee:
                legs.append(Leg("platform_revenue", "credit", fee))
            usages.append((c, p, fee, share))
        elif op == "pay":
            p = rng.choice(PROVIDERS)
            payable = ledger.account_balance(session=s, account=f"provider_payable:{p}")
            amount = rng.choice([payable, payable + 1 + rng.randrange(100), max(1, payable // 2)])
            legs = [
                Leg(f"provider_payable:{p}", "debit", max(1, amount)),
                Leg("solana_hot_wallet", "credit", max(1, amount)),
            ]
        elif op == "collect":
            c = rng.choice(CUSTOMERS)
            amount = rng.randrange(1, 10**6)
            legs = [
                Leg("stripe_clearing", "debit", amount),
                Leg(f"customer_receivable:{c}", "credit", amount),
            ]
        else:  # refund: reverse a usage (refused when the provider was already paid out)
            c, p, fee, share = rng.choice(usages)
            legs = [
                Leg(f"customer_receivable:{c}", "credit", fee + share),
                Leg(f"provider_payable:{p}", "debit", share),
            ]
            if fee:
                legs.append(Leg("platform_revenue", "debit", fee))
        try:
            ledger.post_transaction(
                session=s, kind=op, idempotency_key=key, legs=legs, currency="EUR", now=NOW
            )
            s.commit()
            applied += 1
        except (DBAPIError, IntegrityError) as exc:
            assert "exceeds provider payable" in str(exc)
            s.rollback()
            refused += 1
        tb = ledger.trial_balance(session=s)
        assert tb["trial_balance"] == 0 and tb["unbalanced_transactions"] == []
        for p in PROVIDERS:
            assert ledger.account_balance(session=s, account=f"provider_payable:{p}") >= 0
    assert applied > 350 and refused > 30
    s.close()
