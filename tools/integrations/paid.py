"""Send routing-decision signals to Paid.ai (usage records) over httpx.

Request shape: `POST {base}/v2/usage/bulk` with `Authorization: Bearer <key>` and
`{"usageRecords": [{"event_name", "external_customer_id", "data", "idempotency_key"}]}`. The
idempotency key is the routing decision id, so re-sending after a crash or a retry never double
counts. Paid.ai is off the money path: a failure is reported, never raised into billing. Retries
(429, 5xx, timeouts; Retry-After honoured): `tools.integrations.retries`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
from pydantic import BaseModel

from tools.integrations.retries import http_retrying
from tools.money.profitability import PaidSignal

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.paid.ai"
BATCH_SIZE = 100


class PaidSendReport(BaseModel):
    """What one send did."""

    sent: int
    failed: int
    errors: list[str]


def _record(signal: PaidSignal) -> dict[str, object]:
    return {
        "event_name": signal.event_name,
        "external_customer_id": signal.customer_id,
        "idempotency_key": signal.idempotency_key,
        "data": {
            "workload_id": signal.workload_id,
            "node_id": signal.node_id,
            "revenue_minor": signal.revenue_minor,
            "cost_minor": signal.cost_minor,
            "margin_minor": signal.margin_minor,
            "co2_avoided_kg": signal.co2_avoided_kg,
            "currency": "EUR",
        },
    }


def send_signals(
    signals: Sequence[PaidSignal],
    *,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    client: httpx.Client | None = None,
    max_attempts: int = 3,
    backoff_s: float = 0.5,
) -> PaidSendReport:
    """Send signals in batches of 100; retry 429/5xx and timeouts, then report what failed.

    Args:
        signals: Signals to send (each carries its idempotency key).
        api_key: Paid.ai API key.
        base_url: API base, e.g. https://api.paid.ai (a local fake in tests).
        client: An httpx client to reuse (tests pass one bound to a local server).
        max_attempts: Tries per batch.
        backoff_s: First wait between tries (unless the server says Retry-After); doubles.
    """
    own = client is None
    http = client or httpx.Client(timeout=10.0)
    sent = failed = 0
    errors: list[str] = []
    try:
        for start in range(0, len(signals), BATCH_SIZE):
            batch = list(signals[start : start + BATCH_SIZE])
            problem = _post(http, batch, api_key, base_url, max_attempts, backoff_s)
            if problem is None:
                sent += len(batch)
            else:
                failed += len(batch)
                errors.append(problem)
                logger.warning("Paid.ai signals not sent: %s", problem)
    finally:
        if own:
            http.close()
    return PaidSendReport(sent=sent, failed=failed, errors=errors)


def _post(
    http: httpx.Client,
    batch: list[PaidSignal],
    api_key: str,
    base_url: str,
    max_attempts: int,
    backoff_s: float,
) -> str | None:
    url = f"{base_url.rstrip('/')}/v2/usage/bulk"
    body = {"usageRecords": [_record(s) for s in batch]}
    headers = {"Authorization": f"Bearer {api_key}"}
    retrying = http_retrying(max_attempts=max_attempts, backoff_s=backoff_s)
    try:
        r = retrying(http.post, url, json=body, headers=headers)
    except httpx.TransportError as exc:
        return f"{type(exc).__name__} calling {url}"
    return None if r.is_success else f"HTTP {r.status_code} from {url}: {r.text[:200]}"
