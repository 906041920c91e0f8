"""incident.io alert events through real httpx against a local fake alert source."""

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from store.db import make_session_factory
from store.incident_models import AlertEvent
from tests.fakes import FakeHTTPServer, Reply
from tools.incidents.ports import AlertDeliveryError, AlertEventIn
from tools.integrations.incidentio import DemoAlerts, IncidentIoAlerts
from tools.integrations.retries import MAX_RETRY_AFTER_S, http_retrying

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ACCEPTED = {
    "deduplication_key": "inc_1",
    "message": "Event accepted for processing",
    "status": "success",
}


def _event(status="firing"):
    return AlertEventIn(
        title="carbon spike in FR",
        status=status,
        deduplication_key="inc_1",
        description="FR 700 g",
        metadata={"zone": "FR"},
    )


@pytest.fixture
def sessions(sqlite_engine):
    return make_session_factory(sqlite_engine)


def test_an_escalation_update_fires_again_once_per_revision(sessions):
    update = _event().model_copy(update={"description": "ESCALATED: nl-batch stuck"})
    with FakeHTTPServer(lambda r: Reply(202, ACCEPTED)) as server:
        sink = IncidentIoAlerts(
            api_key="sk_test", alert_source_config_id="src_9", base_url=server.url, backoff_s=0
        )
        with sink, sessions.begin() as s:
            assert sink.send(session=s, event=_event(), now=NOW) == "sent"
            assert sink.send(session=s, event=update, now=NOW, revision=1) == "sent"
            assert sink.send(session=s, event=update, now=NOW, revision=1) == "duplicate"
    bodies = [
        (r.body["status"], r.body["deduplication_key"], r.body["description"])
        for r in server.requests
    ]
    assert bodies == [
        ("firing", "inc_1", "FR 700 g"),
        ("firing", "inc_1", "ESCALATED: nl-batch stuck"),
    ]
    with sessions() as s:
        rows = s.scalars(select(AlertEvent).order_by(AlertEvent.id)).all()
        assert [(a.status, a.revision, a.delivery) for a in rows] == [
            ("firing", 0, "sent"),
            ("firing", 1, "sent"),
        ]


def test_firing_then_resolved_are_posted_once_each(sessions):
    with FakeHTTPServer(lambda r: Reply(202, ACCEPTED)) as server:
        sink = IncidentIoAlerts(
            api_key="sk_test", alert_source_config_id="src_9", base_url=server.url, backoff_s=0
        )
        with sink, sessions.begin() as s:
            assert sink.send(session=s, event=_event(), now=NOW) == "sent"
            assert sink.send(session=s, event=_event(), now=NOW) == "duplicate"
            assert sink.send(session=s, event=_event("resolved"), now=NOW) == "sent"
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/v2/alert_events/http/src_9")
    ] * 2
    first = server.requests[0]
    assert first.headers["authorization"] == "Bearer sk_test"
    assert first.body == {
        "title": "carbon spike in FR",
        "status": "firing",
        "deduplication_key": "inc_1",
        "description": "FR 700 g",
        "metadata": {"zone": "FR"},
    }
    assert [r.body["status"] for r in server.requests] == ["firing", "resolved"]
    with sessions() as s:
        assert [(a.status, a.delivery) for a in s.scalars(select(AlertEvent))] == [
            ("firing", "sent"),
            ("resolved", "sent"),
        ]


def test_429_and_500_are_retried_then_accepted(sessions):
    answers = iter(
        [
            Reply(429, {"type": "too_many_requests"}, {"retry-after": "0"}),
            Reply(500, {}),
            Reply(202, ACCEPTED),
        ]
    )
    with FakeHTTPServer(lambda r: next(answers)) as server:
        sink = IncidentIoAlerts(
            api_key="k", alert_source_config_id="s", base_url=server.url, backoff_s=0
        )
        with sink, sessions.begin() as s:
            assert sink.send(session=s, event=_event(), now=NOW) == "sent"
    assert len(server.requests) == 3


def test_rejected_key_raises_naming_the_setting_and_records_nothing(sessions):
    with FakeHTTPServer(lambda r: Reply(401, {"type": "authentication_error"})) as server:
        sink = IncidentIoAlerts(api_key="bad", alert_source_config_id="s", base_url=server.url)
        with sink, sessions.begin() as s, pytest.raises(AlertDeliveryError, match="API_KEY"):
            sink.send(session=s, event=_event(), now=NOW)
    with sessions() as s:
        assert s.scalars(select(AlertEvent)).all() == []


def test_unreachable_server_raises_after_retries(sessions):
    client = httpx.Client(
        transport=httpx.MockTransport(
            lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused", request=request))
        )
    )
    sink = IncidentIoAlerts(api_key="k", alert_source_config_id="s", client=client, backoff_s=0)
    with sink, sessions.begin() as s, pytest.raises(AlertDeliveryError, match="unreachable"):
        sink.send(session=s, event=_event(), now=NOW)


def test_demo_mode_records_locally_once(sessions):
    sink = DemoAlerts()
    with sessions.begin() as s:
        assert sink.send(session=s, event=_event(), now=NOW) == "demo"
        assert sink.send(session=s, event=_event(), now=NOW) == "duplicate"
    with sessions() as s:
        assert [a.delivery for a in s.scalars(select(AlertEvent))] == ["demo"]


def _replying(*replies):
    answers = iter(replies)
    seen = []

    def handle(request):
        seen.append(request)
        status, headers = next(answers)
        return httpx.Response(status, headers=headers, json={})

    return httpx.Client(transport=httpx.MockTransport(handle)), seen


def test_retry_after_is_honoured_and_backoff_doubles_without_it():
    client, seen = _replying(
        (429, {"retry-after": "2"}), (503, {}), (429, {"retry-after": "120"}), (202, {})
    )
    waits = []
    retrying = http_retrying(max_attempts=4, backoff_s=0.5, sleep=waits.append)
    response = retrying(client.post, "http://alerts.test/x", json={})
    assert response.status_code == 202 and len(seen) == 4
    assert waits == [2.0, 1.0, MAX_RETRY_AFTER_S]  # server's word, 0.5 * 2, server's (capped)


def test_tries_are_bounded_and_the_last_answer_is_reported(sessions):
    client, seen = _replying(*[(503, {})] * 3)
    sink = IncidentIoAlerts(api_key="k", alert_source_config_id="s", client=client, backoff_s=0)
    with pytest.raises(AlertDeliveryError, match="answered 503"):
        sink.deliver(_event())
    assert len(seen) == 3
    client, seen = _replying((400, {}))
    sink = IncidentIoAlerts(api_key="k", alert_source_config_id="s", client=client, backoff_s=0)
    with pytest.raises(AlertDeliveryError, match="answered 400"):
        sink.deliver(_event())
    assert len(seen) == 1  # a refusal is not retried
