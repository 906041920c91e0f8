"""Guard the console: a login session for every Gradio API call, few failed logins per address.

Gradio's own `auth` (see `ui.app.mount`) puts its `login_check` dependency on the routes that
run events (`/gradio_api/queue/join`, `/run`, `/call`, `/upload`, `/info`, `/config`). This
ASGI middleware adds two things in front of the mounted console:

* every request under `/gradio_api/` without a valid console session gets 401, including
  Gradio routes without `login_check` (`/cancel`, `/stream/...`, `/heartbeat/...`) and any a
  later Gradio adds, so no event runs for a caller who has not logged in;
* `POST /login` is rate-limited per client address with the `limits` library: after
  `attempts_per_minute` attempts within a moving minute the address gets 429 with
  `Retry-After`; a successful login clears its count.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

logger = logging.getLogger(__name__)

GRADIO_API = "/gradio_api"
LOGIN_PATHS = frozenset({"/login", "/login/"})

SessionCheck = Callable[[dict[str, str]], bool]
"""Return True when the request's cookies carry a valid console session."""


class ConsoleGuard:
    """ASGI middleware: refuse Gradio API calls without a session; limit login attempts."""

    def __init__(
        self, app: ASGIApp, *, has_session: SessionCheck, attempts_per_minute: int
    ) -> None:
        """Wrap `app`; `has_session` tells whether a request's cookies hold a login."""
        self.app = app
        self.has_session = has_session
        self.item = RateLimitItemPerMinute(attempts_per_minute)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 401 / 429 without calling the console."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == GRADIO_API or path.startswith(GRADIO_API + "/"):
            if not self.has_session(HTTPConnection(scope).cookies):
                await _refuse(scope, receive, send, 401, "log in to the console first")
                return
        elif path in LOGIN_PATHS and scope["type"] == "http" and scope["method"] == "POST":
            await self._login(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if not self.limiter.hit(self.item, "console-login", address):
            reset = self.limiter.get_window_stats(self.item, "console-login", address).reset_time
            wait = max(1, math.ceil(reset - time.time()))
            logger.warning("console login refused for %s: too many attempts", address)
            message = (
                f"too many console login attempts from {address}; wait {wait} s before trying again"
            )
            await _refuse(scope, receive, send, 429, message, {"retry-after": str(wait)})
            return
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, watch)
        if status and status[0] < 400:
            self.limiter.clear(self.item, "console-login", address)


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    code: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    if scope["type"] == "websocket":
        await WebSocketClose(code=1008, reason=detail)(scope, receive, send)
        return
    await JSONResponse({"detail": detail}, status_code=code, headers=headers)(scope, receive, send)
