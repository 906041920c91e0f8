"""Retry policy for our own HTTP calls (incident.io, Paid.ai), built on tenacity.

Retried: transport errors (connection refused or reset, timeouts) and answers 429, 500, 502,
503, 504; a bounded number of tries. The wait before the next try is the server's
`Retry-After` (seconds, capped at `MAX_RETRY_AFTER_S`) when it sends one, else exponential
backoff: `backoff_s`, then twice that, and so on, capped at `MAX_BACKOFF_S`. After the last try
the caller gets the last answer, or the last transport error is raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 5.0
MAX_BACKOFF_S = 5.0


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        return None  # absent, or an HTTP date: fall back to our own backoff
    return max(seconds, 0.0)


def _should_retry_answer(response: httpx.Response) -> bool:
    return response.status_code in RETRY_STATUSES


def _last_outcome(state: RetryCallState) -> httpx.Response:
    assert state.outcome is not None  # tenacity calls this only after a try
    response: httpx.Response = state.outcome.result()  # or raises the last transport error
    return response


def http_retrying(
    *, max_attempts: int, backoff_s: float, sleep: Callable[[float], None] = time.sleep
) -> Retrying:
    """Return a tenacity `Retrying` for one HTTP request (call it with the request function).

    Args:
        max_attempts: Tries in all, the first included.
        backoff_s: First wait when the server gives no Retry-After; doubles per try.
        sleep: How to wait (tests pass a no-op).
    """

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            server = _retry_after(outcome.result())
            if server is not None:
                return min(server, MAX_RETRY_AFTER_S)
        return float(min(backoff_s * 2 ** (state.attempt_number - 1), MAX_BACKOFF_S))

    def log(state: RetryCallState) -> None:
        outcome = state.outcome
        what = (
            repr(outcome.exception())
            if outcome is not None and outcome.failed
            else f"HTTP {_last_outcome(state).status_code}"
        )
        logger.warning("try %d failed (%s); retrying", state.attempt_number, what)

    return Retrying(
        retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(_should_retry_answer),
        stop=stop_after_attempt(max_attempts),
        wait=wait,
        sleep=sleep,
        before_sleep=log,
        retry_error_callback=_last_outcome,
    )
