"""The API key check and the rate limit: malformed keys are 401, keys cannot dodge the limit."""

import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from graphs.settings import Settings
from ui.api import create_app
from ui.api_access import KEY_IDENTITY, ApiRateLimiter, client_identity, key_matches
from ui.services import Services

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
KEY = "access-test-key"
JOB = {"org_id": "acme-ai", "name": "fine-tune", "gpu_count": 4, "duration_hours": 6}


@pytest.fixture
def client(sqlite_engine, tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        api_key=KEY,
        loop_interval_s=0,
        # Windows of 180 s: no request of a test can age out of them, however slow the machine.
        rate_limit_per_minute=1,
        rate_limit_burst=3,
    )
    svc = Services.from_settings(settings, at=NOW)
    svc.engine = sqlite_engine
    with TestClient(create_app(svc), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize(
    "key",
    ["é".encode(), b"\xe9", KEY.encode() + "é".encode(), b"x" * 300, b" ", b"", b"key with space"],
)
def test_non_ascii_and_malformed_keys_are_401(client, key):
    r = client.post("/api/v1/workloads", json=JOB, headers={"X-API-Key": key})
    assert r.status_code == 401, r.text
    assert "X-API-Key" in r.json()["detail"]


def test_key_matches_compares_bytes_and_refuses_malformed_values():
    assert key_matches(KEY, KEY) and key_matches(KEY.encode(), KEY)
    assert not key_matches(None, KEY)
    assert not key_matches("é", KEY) and not key_matches("\ud800", KEY)
    assert not key_matches(KEY + "\x00", KEY) and not key_matches(KEY[:-1], KEY)
    assert not key_matches("é", "é")  # a non-ASCII configured key can never be presented


def test_random_keys_are_limited_by_client_address(client):
    codes = [
        client.get("/api/v1/health", headers={"X-API-Key": uuid.uuid4().hex}).status_code
        for _ in range(5)
    ]
    assert codes == [200, 200, 200, 429, 429]
    limited = client.post("/api/v1/workloads", json=JOB, headers={"X-API-Key": "é".encode()})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 180
    assert "rate limit" in limited.json()["detail"]


def test_the_valid_key_has_its_own_bucket(client):
    assert [client.get("/api/v1/health").status_code for _ in range(4)] == [200] * 3 + [429]
    auth = {"X-API-Key": KEY}
    keyed = [client.get("/api/v1/health", headers=auth).status_code for _ in range(4)]
    assert keyed == [200, 200, 200, 429]
    assert client.get("/api/v1/nodes").status_code == 429  # the address's bucket stays spent


def test_paths_outside_the_api_are_not_counted(client):
    for _ in range(5):
        assert client.get("/openapi.json").status_code == 200
    assert client.get("/api/v1/health").status_code == 200


def test_limits_follow_the_settings():
    assert [str(i) for i in ApiRateLimiter(per_minute=1200, burst=200).items] == [
        "200 per 10 second"
    ]
    assert [str(i) for i in ApiRateLimiter(per_minute=100, burst=7).items] == [
        "7 per 4 second",
        "100 per 1 minute",
    ]
    with pytest.raises(ValueError, match="positive"):
        ApiRateLimiter(per_minute=0, burst=1)


def test_limiter_counts_identities_apart_and_says_how_long_to_wait():
    limiter = ApiRateLimiter(per_minute=1, burst=2)
    assert [limiter.hit("a"), limiter.hit("a")] == [0, 0]
    wait = limiter.hit("a")
    assert 1 <= wait <= 120
    assert limiter.hit("b") == 0 and limiter.hit(KEY_IDENTITY) == 0


@pytest.mark.parametrize(
    ("peer", "identity"),
    [
        (("203.0.113.7", 1), "client:203.0.113.7"),
        (("2001:db8:1:2:aaaa::1", 1), "client:2001:db8:1:2::/64"),
        (("2001:db8:1:2:bbbb::9", 1), "client:2001:db8:1:2::/64"),
        (("::ffff:198.51.100.2", 1), "client:198.51.100.2"),
        (("testclient", 50000), "client:testclient"),
        (None, "client:unknown"),
    ],
)
def test_client_identity_groups_ipv6_by_64(peer, identity):
    assert client_identity({"type": "http", "client": peer}) == identity
