import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from graphs.settings import Settings
from store.models import Organization
from tools.integrations.stripe import sign_webhook
from ui.api import create_app
from ui.services import Services

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
SECRET = "whsec_api_test"


def _app(tmp_path, secret):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        data_dir=tmp_path,
        api_key="k",
        stripe_webhook_secret=secret,
    )
    svc = Services.from_settings(settings, at=NOW)
    return svc, create_app(svc)


@pytest.fixture
def api(tmp_path):
    svc, app = _app(tmp_path, SECRET)
    with TestClient(app) as client:
        with svc.sessions() as s:
            s.get(Organization, "acme-ai").stripe_customer_id = "cus_acme"
            s.commit()
        yield client


def _event(event_id="evt_42", amount=1234):
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "invoice.paid",
            "data": {
                "object": {
                    "id": "in_9",
                    "amount_paid": amount,
                    "currency": "eur",
                    "customer": "cus_acme",
                }
            },
        }
    ).encode()


def test_signed_webhook_updates_the_ledger_once(api):
    body = _event()
    headers = {
        "Stripe-Signature": sign_webhook(body, SECRET, int(NOW.timestamp())),
        "Content-Type": "application/json",
    }
    first = api.post("/api/v1/stripe/webhook", content=body, headers=headers)
    again = api.post("/api/v1/stripe/webhook", content=body, headers=headers)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    balance = api.get("/api/v1/ledger/balance").json()
    clearing = next(a for a in balance["accounts"] if a["account"] == "stripe_clearing")
    assert clearing["balance"] == 1234 and balance["trial_balance"] == 0


def test_forged_and_stale_webhooks_get_400_and_change_nothing(api):
    body = _event()
    ts = int(NOW.timestamp())
    for headers in (
        {"Stripe-Signature": sign_webhook(body, "whsec_other", ts)},
        {"Stripe-Signature": sign_webhook(body, SECRET, ts - 301)},
        {"Stripe-Signature": sign_webhook(_event(amount=1), SECRET, ts)},
        {},
    ):
        assert api.post("/api/v1/stripe/webhook", content=body, headers=headers).status_code == 400
    assert api.get("/api/v1/ledger/balance").json()["transactions"] == 0


def test_webhooks_are_off_without_a_secret(tmp_path):
    _, app = _app(tmp_path, None)
    with TestClient(app) as client:
        body = _event()
        sig = sign_webhook(body, SECRET, int(NOW.timestamp()))
        resp = client.post(
            "/api/v1/stripe/webhook", content=body, headers={"Stripe-Signature": sig}
        )
        assert resp.status_code == 503
