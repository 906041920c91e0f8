"""Clocks injected into domain code: the system clock, a fixed time, or a replay clock.

Domain functions take `now` as an argument; composition roots own a clock and pass `clock.now()`.
A replay clock maps wall time onto a recorded period so the recorded grid source can drive a
running console (e.g. start at 2023-06-01T12:00Z and advance at 60x).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tools.errors import InvalidInputError


class Clock(Protocol):
    """Anything that tells the time as an aware UTC datetime."""

    def now(self) -> datetime:
        """Return the current time (aware, UTC)."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """Return the wall-clock time in UTC."""
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that only moves when told to (tests, `--at`)."""

    at: datetime

    def now(self) -> datetime:
        """Return the fixed time."""
        return self.at

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by a timedelta's keyword arguments and return the new time."""
        self.at = self.at + timedelta(**delta)
        return self.at


@dataclass
class ReplayClock:
    """Start at `start` and advance `speed` times faster than the wall clock."""

    start: datetime
    speed: float = 1.0
    _t0: float = field(default_factory=time.monotonic)

    def now(self) -> datetime:
        """Return the replayed time."""
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
"""Times people give (deadlines, `--at`, `--start`) must fall in [EARLIEST, LATEST)."""

_SPAN = f"give a time from {EARLIEST:%Y-%m-%d} up to {LATEST:%Y-%m-%d}"
ISO_EXAMPLE = "an ISO-8601 time; write e.g. 2023-06-01T12:00Z"


def within_span(value: datetime, *, what: str = "time", shown: str | None = None) -> datetime:
    """Return the aware `value` in UTC; raise naming it when it is outside [EARLIEST, LATEST).

    The message shows `shown` (what the person typed) or else `value` in ISO-8601.
    """
    out_of_range = f"{what} {shown or value.isoformat()!r} is out of range: {_SPAN}"
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59-14:00 is in year 10000 in UTC
        raise InvalidInputError(out_of_range) from None
    if not EARLIEST <= utc < LATEST:
        raise InvalidInputError(out_of_range)
    return utc


def parse_time(text: str, *, what: str = "time", expected: str = ISO_EXAMPLE) -> datetime:
    """Parse an ISO-8601 time; a missing zone means UTC. Raise naming the value otherwise.

    Raises:
        InvalidInputError: Not an ISO-8601 time (the message says it is not `expected`), or one
            whose UTC time falls outside the years datetime can hold.
    """
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{what} {text!r} is not {expected}") from None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise InvalidInputError(f"{what} {text!r} is out of range: {_SPAN}") from None


def parse_time_in_range(text: str, *, what: str, expected: str = ISO_EXAMPLE) -> datetime:
    """Parse a time a person typed as `what` (see `parse_time`); refuse it outside the range.

    Raises:
        InvalidInputError: Not a time, or not in [EARLIEST, LATEST); the message names `what`,
            the value and the range.
    """
    return within_span(parse_time(text, what=what, expected=expected), what=what, shown=text)
