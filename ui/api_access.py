"""Who may call /api/: the API key check and the rate limit (the `limits` library).

A request carrying the valid `X-API-Key` counts against the key's limit; every other request
(no key, a wrong or malformed key) counts against its client address, so changing the key on
each request does not escape the limit. IPv6 clients are counted per /64 network, the block a
single host usually holds.

Each identity may send `burst` requests in any window of `burst * 60 / per_minute` seconds
(rounded down to whole seconds, at least 1), and at most `per_minute` in any minute: with the
defaults (1200 per minute, burst 200) that is 200 requests in any 10 s. Windows move with each
request (limits' moving-window strategy); over the limit the answer is 429 with `Retry-After`.

Counts live in process memory (limits' `MemoryStorage`, which drops expired entries itself), so
each replica counts on its own: with N replicas a client may send up to N times the limit.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import re
import time

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_KEY_BYTES = 256
"""Longer `X-API-Key` values are rejected unread."""
_WELL_FORMED_KEY = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_KEY_BYTES)
KEY_IDENTITY = "api-key"
"""The rate-limit identity of requests that carry the valid API key."""


def key_matches(presented: str | bytes | None, expected: str) -> bool:
    """Return whether `presented` is the API key, comparing bytes in constant time.

    Missing, empty, over-long and non-printable-ASCII values (e.g. `é`) never match; they are
    not compared at all.
    """
    if presented is None:
        return False
    raw = presented if isinstance(presented, bytes) else presented.encode("utf-8", "surrogatepass")
    if not _WELL_FORMED_KEY.fullmatch(raw):
        return False
    return hmac.compare_digest(raw, expected.encode("utf-8"))


def client_identity(scope: Scope) -> str:
    """Return the rate-limit identity of a request's client: its address (IPv6: its /64)."""
    client = scope.get("client")
    host = str(client[0]) if client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"client:{host[:64]}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"client:{address.ipv4_mapped}"
        return f"client:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"client:{address}"


class ApiRateLimiter:
    """Moving-window limits per identity: `burst` at once, `per_minute` sustained."""

    def __init__(self, *, per_minute: int, burst: int) -> None:
        """Build the limits; both numbers must be positive (the settings ensure it)."""
        if per_minute <= 0 or burst <= 0:
            raise ValueError(f"rate limits must be positive, got {per_minute=} and {burst=}")
        window = max(1, burst * 60 // per_minute)
        self.items: list[RateLimitItem] = [RateLimitItemPerSecond(burst, window)]
        if burst * 60 > per_minute * window:
            self.items.append(RateLimitItemPerMinute(per_minute))
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, identity: str) -> int:
        """Count one request of `identity`; return 0 when allowed, else seconds to wait (>= 1)."""
        for item in self.items:
            if not self._limiter.hit(item, identity):
                reset = self._limiter.get_window_stats(item, identity).reset_time
                return max(1, math.ceil(reset - time.time()))
        return 0


class RateLimitMiddleware:
    """Answer 429 with `Retry-After` when an identity exceeds its limit on /api/ paths."""

    def __init__(self, app: ASGIApp, owner: FastAPI, expected_key: str) -> None:
        """Wrap `app`; `owner.state.rate_limiter` is the limiter in force (tests may swap it)."""
        self.app = app
        self.owner = owner
        self.expected_key = expected_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count /api/ requests against their identity, then pass everything on."""
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            limiter: ApiRateLimiter = self.owner.state.rate_limiter
            wait = limiter.hit(self.identity(scope))
            if wait > 0:
                response = JSONResponse(
                    {"detail": f"rate limit exceeded; retry in {wait} s"},
                    status_code=429,
                    headers={"Retry-After": str(wait)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def identity(self, scope: Scope) -> str:
        """Return `KEY_IDENTITY` for a request with the valid key, else its client identity."""
        for name, value in scope.get("headers", ()):
            if name == b"x-api-key":
                if key_matches(value, self.expected_key):
                    return KEY_IDENTITY
                break
        return client_identity(scope)


def install(app: FastAPI, *, expected_key: str, per_minute: int, burst: int) -> None:
    """Add the rate limit to `app` (call last, so it is the outermost middleware)."""
    app.state.rate_limiter = ApiRateLimiter(per_minute=per_minute, burst=burst)
    app.add_middleware(RateLimitMiddleware, owner=app, expected_key=expected_key)
