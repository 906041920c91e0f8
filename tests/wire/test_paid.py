"""Paid.ai usage records over real HTTP to a local fake that de-duplicates by idempotency key."""

import httpx

from tests.fakes import FakeHTTPServer, Reply, Seen
from tools.integrations.paid import send_signals
from tools.money.profitability import PaidSignal


def _signal(i: int) -> PaidSignal:
    return PaidSignal(
        idempotency_key=f"rd_{i:04d}",
        customer_id="acme-ai",
        workload_id=f"wl_{i}",
        node_id="fr-par-h100",
        revenue_minor=528,
        cost_minor=1,
        margin_minor=527,
        co2_avoided_kg=1.5,
    )


class FakePaid:
    """Accepts usage records once per idempotency key; can fail the first N calls."""

    def __init__(self, fail_first: int = 0, status: int = 503) -> None:
        self.fail_first, self.status = fail_first, status
        self.calls = 0
        self.records: dict[str, dict] = {}

    def __call__(self, req: Seen) -> Reply:
        self.calls += 1
        if req.headers.get("authorization") != "Bearer pk_test":
            return Reply(401, {"error": "unauthorized"})
        if self.calls <= self.fail_first:
            return Reply(self.status, {"error": "busy"})
        assert req.method == "POST" and req.path == "/v2/usage/bulk"
        for record in req.body["usageRecords"]:
            self.records.setdefault(record["idempotency_key"], record)
        return Reply(200, {"accepted": len(req.body["usageRecords"])})


def test_signals_are_sent_in_batches_with_their_decision_as_idempotency_key():
    fake = FakePaid()
    with FakeHTTPServer(fake) as server, httpx.Client() as client:
        report = send_signals(
            [_signal(i) for i in range(250)], api_key="pk_test", base_url=server.url, client=client
        )
    assert (report.sent, report.failed) == (250, 0)
    assert fake.calls == 3  # 100 + 100 + 50
    rec = fake.records["rd_0007"]
    assert rec["event_name"] == "routing_decision" and rec["external_customer_id"] == "acme-ai"
    assert rec["data"]["margin_minor"] == 527 and rec["data"]["currency"] == "EUR"


def test_resending_after_a_retry_never_double_counts():
    fake = FakePaid(fail_first=2)
    with FakeHTTPServer(fake) as server, httpx.Client() as client:
        first = send_signals(
            [_signal(1), _signal(2)],
            api_key="pk_test",
            base_url=server.url,
            client=client,
            backoff_s=0,
        )
        again = send_signals(
            [_signal(1), _signal(2)],
            api_key="pk_test",
            base_url=server.url,
            client=client,
            backoff_s=0,
        )
    assert first.sent == again.sent == 2
    assert fake.calls == 4 and len(fake.records) == 2


def test_a_rejected_key_is_reported_not_retried():
    fake = FakePaid()
    with FakeHTTPServer(fake) as server, httpx.Client() as client:
        report = send_signals(
            [_signal(1)], api_key="wrong", base_url=server.url, client=client, backoff_s=0
        )
    assert (report.sent, report.failed) == (0, 1)
    assert "HTTP 401" in report.errors[0] and fake.calls == 1


def test_an_unreachable_service_is_reported_after_bounded_tries():
    with httpx.Client(timeout=0.5) as client:
        report = send_signals(
            [_signal(1)],
            api_key="pk_test",
            base_url="http://127.0.0.1:9",
            client=client,
            max_attempts=2,
            backoff_s=0,
        )
    assert report.failed == 1 and "ConnectError" in report.errors[0]
