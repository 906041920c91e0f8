"""Send incident alert events to incident.io, or record them locally in demo mode.

incident.io HTTP alert source: `POST /v2/alert_events/http/{alert_source_config_id}` with a bearer
token and `title`, `status` (`firing` | `resolved`), `deduplication_key`, `description`,
`metadata`; it answers 202. Re-sending the same key is safe on their side (a second `firing`
updates the alert's title and description); we record each (key, status, revision) once locally
so a resumed incident never sends twice. Revision 0 is the first event; an ESCALATED incident
sends a `firing` update with revision n > 0 naming the work that cannot move.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import httpx
from sqlalchemy.orm import Session

from store import incident_repo
from store.incident_models import AlertEvent
from tools.incidents.ports import AlertDeliveryError, AlertEventIn

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.incident.io"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def _record(
    session: Session, event: AlertEventIn, delivery: str, now: datetime, revision: int
) -> None:
    incident_repo.add_alert(
        session=session,
        alert=AlertEvent(
            deduplication_key=event.deduplication_key,
            status=event.status,
            title=event.title,
            revision=revision,
            payload=event.model_dump(mode="json"),
            delivery=delivery,
            created_at=now,
        ),
    )


def _seen(session: Session, event: AlertEventIn, revision: int) -> bool:
    return (
        incident_repo.find_alert(
            session=session,
            deduplication_key=event.deduplication_key,
            status=event.status,
            revision=revision,
        )
        is not None
    )


class DemoAlerts:
    """Record alert events in the local store instead of sending them (no incident.io key)."""

    def send(
        self, *, session: Session, event: AlertEventIn, now: datetime, revision: int = 0
    ) -> str:
        """Record `event` locally once per (key, status, revision)."""
        if _seen(session, event, revision):
            return "duplicate"
        _record(session, event, "demo", now, revision)
        logger.info("demo alert %s %s: %s", event.status, event.deduplication_key, event.title)
        return "demo"


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
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> IncidentIoAlerts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, event: AlertEventIn) -> httpx.Response:
        body = event.model_dump(mode="json", exclude_none=True)
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = self._client.post(self._url, json=body, headers=self._headers)
            except httpx.TransportError as exc:
                if attempt == self._max_attempts:
                    raise AlertDeliveryError(
                        f"incident.io unreachable at {self._url!r}: {exc}"
                    ) from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt == self._max_attempts:
                    return response
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit():
                    time.sleep(min(float(retry_after), 5.0))
                    continue
            time.sleep(self._backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns/raises

    def send(
        self, *, session: Session, event: AlertEventIn, now: datetime, revision: int = 0
    ) -> str:
        """Post `event` once per (key, status, revision); record it once incident.io accepted it."""
        if _seen(session, event, revision):
            return "duplicate"
        response = self._post(event)
        if response.status_code not in (200, 201, 202):
            raise AlertDeliveryError(
                f"incident.io answered {response.status_code} for {event.deduplication_key!r}: "
                f"{response.text[:200]}; check TGTG_INCIDENTIO_API_KEY and "
                "TGTG_INCIDENTIO_ALERT_SOURCE_ID"
            )
        _record(session, event, "sent", now, revision)
        return "sent"
