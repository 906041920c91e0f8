"""Send incident alert events to incident.io, or record them locally in demo mode.

incident.io HTTP alert source: `POST /v2/alert_events/http/{alert_source_config_id}` with a bearer
token and `title`, `status` (`firing` | `resolved`), `deduplication_key`, `description`,
`metadata`; it answers 202. Re-sending the same key is safe on their side (a second `firing`
updates the alert's title and description). Revision 0 is the first event; an ESCALATED incident
sends a `firing` update with revision n > 0 naming the work that cannot move.

The incident loop calls `deliver` (network only) from its outbox, after the transition's
transaction committed (`tools.incidents.outbox`), and records each (key, status, revision) once.
`send` does the same in one call for a caller holding a session: it checks the record, delivers
and records. Retries (429, 5xx, timeouts; Retry-After honoured): `tools.integrations.retries`.
"""

from __future__ import annotations

import logging
from datetime import datetime

import httpx
from sqlalchemy.orm import Session

from tools.incidents.outbox import alert_recorded, record_alert
from tools.incidents.ports import AlertDeliveryError, AlertEventIn, AlertSink
from tools.integrations.retries import http_retrying

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.incident.io"


def _send_once(
    sink: AlertSink, session: Session, event: AlertEventIn, now: datetime, revision: int
) -> str:
    if alert_recorded(session=session, event=event, revision=revision):
        return "duplicate"
    delivery = sink.deliver(event)
    record_alert(session=session, event=event, delivery=delivery, now=now, revision=revision)
    return delivery


class DemoAlerts:
    """Record alert events in the local store instead of sending them (no incident.io key)."""

    def deliver(self, event: AlertEventIn) -> str:
        """Accept `event` locally: it is recorded with delivery 'demo'."""
        logger.info("demo alert %s %s: %s", event.status, event.deduplication_key, event.title)
        return "demo"

    def send(
        self, *, session: Session, event: AlertEventIn, now: datetime, revision: int = 0
    ) -> str:
        """Record `event` locally once per (key, status, revision): 'demo' or 'duplicate'."""
        return _send_once(self, session, event, now, revision)


class IncidentIoAlerts:
    """Send alert events to an incident.io HTTP alert source over httpx."""

    def __init__(
        self,
        *,
        api_key: str,
        alert_source_config_id: str,
        base_url: str = DEFAULT_BASE_URL,
        client: httpx.Client | None = None,
        timeout_s: float = 10.0,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/v2/alert_events/http/{alert_source_config_id}"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._client = client or httpx.Client(timeout=timeout_s)
        self._retrying = http_retrying(max_attempts=max_attempts, backoff_s=backoff_s)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> IncidentIoAlerts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def deliver(self, event: AlertEventIn) -> str:
        """Post `event` (retrying 429, 5xx and timeouts); return 'sent' once accepted.

        Raises:
            AlertDeliveryError: incident.io refused it, or stayed unreachable or busy.
        """
        body = event.model_dump(mode="json", exclude_none=True)
        try:
            response = self._retrying.copy()(
                self._client.post, self._url, json=body, headers=self._headers
            )
        except httpx.TransportError as exc:
            raise AlertDeliveryError(f"incident.io unreachable at {self._url!r}: {exc}") from exc
        if response.status_code not in (200, 201, 202):
            raise AlertDeliveryError(
                f"incident.io answered {response.status_code} for {event.deduplication_key!r}: "
                f"{response.text[:200]}; check TGTG_INCIDENTIO_API_KEY and "
                "TGTG_INCIDENTIO_ALERT_SOURCE_ID"
            )
        return "sent"

    def send(
        self, *, session: Session, event: AlertEventIn, now: datetime, revision: int = 0
    ) -> str:
        """Post `event` once per (key, status, revision); record it once incident.io accepted it."""
        return _send_once(self, session, event, now, revision)
