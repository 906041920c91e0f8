import json
from datetime import timedelta

import pytest
import stripe
from fakes_money import FakeStripe, random_faults, stripe_client
from money_helpers import NOW, add_completed, add_fleet
from sqlalchemy import func, select

from store import ledger
from store.db import make_session_factory
from store.ledger import MeterEventRecord, WebhookEvent
from store.models import Organization, Transaction
from tools.integrations.stripe import (
    DemoBilling,
    StripeBilling,
    WebhookRejectedError,
    apply_webhook,
    sign_webhook,
)
from tools.money.metering import EVENT_NAME, meter_usage
from tools.money.usage import book_usage

SECRET = "whsec_test_secret"


def _book(session, n):
    add_fleet(session)
    for i in range(n):
        add_completed(
            session,
            f"w{i}",
            node="g1" if i % 2 else "d1",
            hours=1 + i % 5,
            org="acme" if i % 3 else "beta",
        )
        book_usage(session=session, workload_id=f"w{i}", now=NOW)
    session.commit()


def test_meter_event_is_sent_once_with_a_ledger_derived_identifier(session):
    _book(session, 2)
    fake = FakeStripe()
    biller = StripeBilling(stripe_client(fake))
    first = meter_usage(session=session, biller=biller, workload_id="w0", now=NOW)
    session.commit()
    again = meter_usage(session=session, biller=biller, workload_id="w0", now=NOW)
    assert first.identifier == f"tgtg-usage-{ledger.transaction_id_for('usage:w0')}"
    assert again.already_metered and not first.already_metered
    assert list(fake.meter_events) == [first.identifier]
    event = fake.meter_events[first.identifier]
    assert event["event_name"] == EVENT_NAME
    assert event["payload"] == {"stripe_customer_id": first.customer_id, "value": str(first.value)}
    org = session.get(Organization, "beta")
    assert org.stripe_customer_id == first.customer_id and first.mode == "stripe"
    keys = [k for m, p, k in fake.requests if p == "/v1/billing/meter_events"]
    assert keys == [f"meter-event:{first.transaction_id}"]


def test_demo_mode_records_locally_and_says_so(session):
    _book(session, 1)
    res = meter_usage(session=session, biller=DemoBilling(), workload_id="w0", now=NOW)
    session.commit()
    assert res.mode == "demo" and res.customer_id == "demo_cus_beta"
    rec = session.scalars(select(MeterEventRecord)).one()
    assert rec.mode == "demo" and rec.value == res.value


def test_thousand_injected_retries_give_exactly_one_event_per_usage(sqlite_engine):
    factory = make_session_factory(sqlite_engine)
    with factory() as s:
        _book(s, 300)
    fake = FakeStripe(faults=random_faults(seed=11, rate=0.8))
    biller = StripeBilling(stripe_client(fake, max_network_retries=2))
    pending = [f"w{i}" for i in range(300)]
    rounds = 0
    while pending and rounds < 200:
        rounds += 1
        still = []
        for wid in pending:
            with factory() as s:
                try:
                    meter_usage(session=s, biller=biller, workload_id=wid, now=NOW)
                    s.commit()
                except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError):
                    s.rollback()  # a worker crash: the local record is lost, Stripe may have it
                    still.append(wid)
        pending = still
    assert not pending
    assert fake.injected >= 1_000, fake.injected
    assert len(fake.meter_events) == 300
    with factory() as s:
        billed = s.scalar(
            select(func.sum(Transaction.amount_minor)).where(Transaction.kind == "usage")
        )
        assert s.scalar(select(func.count()).select_from(MeterEventRecord)) == 300
    assert sum(int(e["payload"]["value"]) for e in fake.meter_events.values()) == billed


def test_the_sdk_retries_a_failed_request_with_the_same_idempotency_key():
    plan = iter(["drop_before", "500", "drop_after"])

    def faults(method, path):
        return next(plan, "ok") if path == "/v1/billing/meter_events" else "ok"

    fake = FakeStripe(faults=faults)
    biller = StripeBilling(stripe_client(fake, max_network_retries=3))
    biller.send_meter_event(identifier="a", customer_id="cus_1", value=5, timestamp=1, key="k-a")
    keys = [k for m, p, k in fake.requests if p == "/v1/billing/meter_events"]
    assert keys == ["k-a"] * 4  # three failures, then the replayed answer
    assert list(fake.meter_events) == ["a"]
    fake = FakeStripe(faults=lambda method, path: "500" if "meter_events" in path else "ok")
    with pytest.raises(stripe.APIError):  # bounded: the SDK gives up after its retries
        StripeBilling(stripe_client(fake, max_network_retries=2)).send_meter_event(
            identifier="b", customer_id="cus_1", value=5, timestamp=1, key="k-b"
        )
    assert sum(p == "/v1/billing/meter_events" for _, p, _ in fake.requests) == 3


def test_reusing_an_idempotency_key_with_other_parameters_is_refused():
    fake = FakeStripe()
    client = stripe_client(fake)
    biller = StripeBilling(client)
    biller.send_meter_event(identifier="a", customer_id="cus_1", value=5, timestamp=1, key="k")
    with pytest.raises(stripe.IdempotencyError, match="same parameters"):
        biller.send_meter_event(identifier="b", customer_id="cus_1", value=6, timestamp=1, key="k")
    assert list(fake.meter_events) == ["a"]


def _paid_event(event_id="evt_1", amount=500, customer="cus_acme"):
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "invoice.paid",
            "data": {
                "object": {
                    "id": "in_1",
                    "object": "invoice",
                    "amount_paid": amount,
                    "currency": "eur",
                    "customer": customer,
                }
            },
        }
    ).encode()


def _setup_customer(session):
    _book(session, 3)
    session.get(Organization, "acme").stripe_customer_id = "cus_acme"
    session.commit()


def test_valid_webhook_applies_once_even_when_delivered_five_times(session):
    _setup_customer(session)
    before = ledger.account_balance(session=session, account="customer_receivable:acme")
    body = _paid_event()
    ts = int(NOW.timestamp())
    results = []
    for i in range(5):
        results.append(
            apply_webhook(
                session=session,
                payload=body,
                secret=SECRET,
                signature_header=sign_webhook(body, SECRET, ts + i),
                now=NOW + timedelta(seconds=i),
            )
        )
        session.commit()
    assert [r.duplicate for r in results] == [False, True, True, True, True]
    after = ledger.account_balance(session=session, account="customer_receivable:acme")
    assert before - after == 500
    assert ledger.account_balance(session=session, account="stripe_clearing") == 500
    assert ledger.trial_balance(session=session)["trial_balance"] == 0


def _forgeries(n):
    body = _paid_event()
    ts = int(NOW.timestamp())
    good = sign_webhook(body, SECRET, ts)
    cases = []
    for i in range(n):
        kind = i % 8
        if kind == 0:  # tampered amount
            cases.append((_paid_event(amount=500 + i + 1), good))
        elif kind == 1:  # wrong secret
            cases.append((body, sign_webhook(body, f"whsec_wrong_{i}", ts)))
        elif kind == 2:  # stale replay beyond tolerance
            cases.append((body, sign_webhook(body, SECRET, ts - 301 - i)))
        elif kind == 3:  # from the future beyond tolerance
            cases.append((body, sign_webhook(body, SECRET, ts + 301 + i)))
        elif kind == 4:  # no header
            cases.append((body, None if i % 16 == 4 else ""))
        elif kind == 5:  # signature of another event
            other = _paid_event(event_id=f"evt_x{i}")
            cases.append((body, sign_webhook(other, SECRET, ts)))
        elif kind == 6:  # timestamp swapped under a valid MAC
            cases.append((body, good.replace(f"t={ts}", f"t={ts + 1}")))
        else:  # re-serialised JSON (not the raw bytes that were signed)
            cases.append((json.dumps(json.loads(body), indent=1).encode(), good))
    return cases


def test_five_hundred_forged_or_replayed_webhooks_are_rejected(session):
    _setup_customer(session)
    tb_before = ledger.trial_balance(session=session)
    cases = _forgeries(520)
    rejected = 0
    for payload, header in cases:
        with pytest.raises(WebhookRejectedError):
            apply_webhook(
                session=session, payload=payload, signature_header=header, secret=SECRET, now=NOW
            )
        rejected += 1
    session.commit()
    assert rejected == 520
    assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    assert ledger.trial_balance(session=session) == tb_before
