"""Stripe: the `Biller` port through the official SDK (or a labelled demo), and verified webhooks.

One Stripe customer per enterprise organisation, one meter (`tgtg_billed_minor`, sum of the billed
minor units, so meter totals reconcile exactly with the ledger) and one meter event per usage
transaction. The event `identifier` is derived from the ledger transaction id and the
`Idempotency-Key` from the same id, so every retry, restart or second worker sends the same
request; Stripe replays it or rejects the duplicate identifier, which we count as delivered.

Retries are the SDK's own (`max_network_retries` on the client, see `make_stripe_client`):
connection errors, 409, 5xx and answers marked `Stripe-Should-Retry`, with exponential backoff
and jitter, each retry resending the same `Idempotency-Key`.

Without an API key the `DemoBilling` biller records meter events locally, labelled "demo".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime
from typing import Literal

import stripe
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from stripe.params import CustomerCreateParams

from store import ledger
from store.ledger import Leg, WebhookEvent
from store.models import Organization
from tools.errors import DomainError, InvalidInputError, NotFoundError
from tools.money.metering import EVENT_NAME

logger = logging.getLogger(__name__)

WEBHOOK_TOLERANCE_S = 300
NETWORK_RETRIES = 4
"""Retries per request after the first try, done by the Stripe SDK with the same key."""


def make_stripe_client(
    api_key: str,
    *,
    max_network_retries: int = NETWORK_RETRIES,
    http_client: stripe.HTTPClient | None = None,
) -> stripe.StripeClient:
    """Return a Stripe client that retries transient failures itself (same idempotency key).

    Args:
        api_key: The Stripe secret key.
        max_network_retries: Retries after the first try.
        http_client: The SDK's HTTP layer (tests plug a local fake in here).
    """
    return stripe.StripeClient(
        api_key, http_client=http_client, max_network_retries=max_network_retries
    )


class WebhookRejectedError(DomainError):
    """A webhook delivery failed verification (signature, secret, timestamp or body)."""


class DemoBilling:
    """Record meter events locally when no Stripe key is configured (labelled "demo")."""

    mode: Literal["stripe", "demo"] = "demo"

    def ensure_customer(self, org: Organization) -> str:
        """Return a local demo customer id for the organisation."""
        return f"demo_cus_{org.id}"

    def send_meter_event(
        self, *, identifier: str, customer_id: str, value: int, timestamp: int, key: str
    ) -> bool:
        """Accept the event locally; the meter_events row is the record."""
        logger.info("demo meter event %s: %d for %s", identifier, value, customer_id)
        return False


class StripeBilling:
    """Talk to Stripe Billing through the official SDK with stable idempotency keys."""

    mode: Literal["stripe", "demo"] = "stripe"

    def __init__(self, client: stripe.StripeClient) -> None:
        """Wrap a client from `make_stripe_client` (the SDK does the retrying)."""
        self._client = client
        self._meter_checked = False

    def ensure_meter(self) -> str:
        """Return the id of the `tgtg_billed_minor` meter, creating it once."""
        meters = self._client.v1.billing.meters.list()
        for meter in meters.data:
            if meter.event_name == EVENT_NAME and meter.status == "active":
                return meter.id
        created = self._client.v1.billing.meters.create(
            {
                "display_name": "GPU usage billed (minor units)",
                "event_name": EVENT_NAME,
                "default_aggregation": {"formula": "sum"},
            },
            {"idempotency_key": f"meter:{EVENT_NAME}"},
        )
        return created.id

    def ensure_customer(self, org: Organization) -> str:
        """Create the organisation's customer with a key derived from its id (replayed on retry)."""
        if org.stripe_customer_id:
            return org.stripe_customer_id
        params: CustomerCreateParams = {
            "name": org.name,
            "metadata": {"org_id": org.id},
        }
        if org.email:
            params["email"] = org.email
        customer = self._client.v1.customers.create(
            params, {"idempotency_key": f"customer:{org.id}"}
        )
        return customer.id

    def send_meter_event(
        self, *, identifier: str, customer_id: str, value: int, timestamp: int, key: str
    ) -> bool:
        """Send the meter event; a duplicate-identifier rejection means it was already delivered."""
        if not self._meter_checked:
            self.ensure_meter()
            self._meter_checked = True
        try:
            self._client.v1.billing.meter_events.create(
                {
                    "event_name": EVENT_NAME,
                    "identifier": identifier,
                    "timestamp": timestamp,
                    "payload": {"stripe_customer_id": customer_id, "value": str(value)},
                },
                {"idempotency_key": key},
            )
        except stripe.InvalidRequestError as exc:
            if "already exists with identifier" in str(exc.user_message or exc):
                return True
            raise
        return False


class WebhookResult(BaseModel):
    """What a verified webhook delivery did."""

    event_id: str
    type: str
    duplicate: bool
    transaction_id: str | None


def _check_timestamp(header: str, now: datetime, tolerance: int) -> None:
    stamps = [p[2:] for p in header.split(",") if p.startswith("t=")]
    if len(stamps) != 1 or not stamps[0].isdigit():
        raise WebhookRejectedError(f"Stripe-Signature {header[:60]!r} has no single timestamp")
    age = now.timestamp() - int(stamps[0])
    if abs(age) > tolerance:
        raise WebhookRejectedError(f"webhook timestamp is {age:.0f} s old; tolerance {tolerance} s")


def verify_webhook(
    *, payload: bytes, signature_header: str | None, secret: str, now: datetime
) -> dict[str, object]:
    """Verify a delivery's HMAC over the raw body and its timestamp; return the event dict.

    Raises:
        WebhookRejectedError: Missing or bad signature, wrong secret, stale or future timestamp,
            or a body that is not a Stripe event.
    """
    if not secret:
        raise InvalidInputError("webhook secret is empty: set TGTG_STRIPE_WEBHOOK_SECRET")
    if not signature_header:
        raise WebhookRejectedError("missing Stripe-Signature header")
    _check_timestamp(signature_header, now, WEBHOOK_TOLERANCE_S)
    try:
        # The SDK checks the signature; tolerance 0 because the timestamp was checked against `now`.
        stripe.Webhook.construct_event(payload, signature_header, secret, tolerance=0)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejectedError(f"signature rejected: {exc.user_message or exc}") from exc
    except ValueError as exc:
        raise WebhookRejectedError(f"body is not JSON: {exc}") from exc
    event = json.loads(payload)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise WebhookRejectedError("body is not a Stripe event (no id)")
    return event


def sign_webhook(payload: bytes, secret: str, timestamp: int) -> str:
    """Return a `Stripe-Signature` header for `payload` (for local senders and tests)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def apply_webhook(
    *, session: Session, payload: bytes, signature_header: str | None, secret: str, now: datetime
) -> WebhookResult:
    """Verify a webhook and apply it to the ledger exactly once per event id.

    `invoice.paid` moves the paid amount from the customer's receivable to Stripe clearing; other
    event types are recorded (so duplicates are recognised) without a ledger effect. The caller
    commits; a concurrent duplicate fails on the event id's primary key and is reported as one.
    """
    event = verify_webhook(
        payload=payload, signature_header=signature_header, secret=secret, now=now
    )
    event_id, etype = str(event["id"]), str(event.get("type", ""))
    if session.get(WebhookEvent, event_id) is not None:
        return WebhookResult(event_id=event_id, type=etype, duplicate=True, transaction_id=None)
    txn_id = None
    if etype == "invoice.paid":
        txn_id = _apply_invoice_paid(session=session, event=event, now=now)
    try:
        with session.begin_nested():
            session.add(
                WebhookEvent(id=event_id, type=etype, transaction_id=txn_id, received_at=now)
            )
    except IntegrityError:
        return WebhookResult(event_id=event_id, type=etype, duplicate=True, transaction_id=None)
    return WebhookResult(event_id=event_id, type=etype, duplicate=False, transaction_id=txn_id)


def _apply_invoice_paid(*, session: Session, event: dict[str, object], now: datetime) -> str | None:
    data = event.get("data", {})
    obj = data.get("object", {}) if isinstance(data, dict) else {}
    if not isinstance(obj, dict):
        return None  # not an invoice object: nothing to book
    amount, customer = obj.get("amount_paid"), obj.get("customer")
    if type(amount) is not int or amount <= 0:
        return None
    org = ledger.find_org_by_customer(session=session, customer_id=str(customer))
    if org is None:
        raise NotFoundError(f"no organisation has Stripe customer {customer!r}")
    currency = str(obj.get("currency", "eur")).upper()
    txn = ledger.post_transaction(
        session=session,
        kind="payment",
        idempotency_key=f"stripe_event:{event['id']}",
        legs=[
            Leg(ledger.account_id("stripe_clearing"), "debit", amount),
            Leg(ledger.account_id("customer_receivable", org.id), "credit", amount),
        ],
        currency=currency,
        now=now,
        org_id=org.id,
        external_ref=str(obj.get("id")),
        memo="Stripe invoice paid",
    )
    return txn.id
