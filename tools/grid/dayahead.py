"""When each zone's day-ahead price is public: the publication rule of its day-ahead market.

The recorded `price_eur_per_mwh` is a day-ahead auction price (see the grid data's SOURCES.md):
the prices of every hour of a delivery day are published once, the day before, so at an issue
time they are legitimately known for the rest of today and, after the publication, tomorrow.

Rules, each an hour later than the operator's usual publication (conservative), delivery days
on the market's wall clock (DST through `zoneinfo`):

* SDAC/EPEX/OMIE (FR DE ES PT NL BE IT): results about 12:45 CET on D-1, taken as known at
  14:00 Europe/Paris. GB (N2EX/EPEX GB, results about 09:50 London) uses the same rule: its
  recorded prices sit on the Paris day (SOURCES.md), and 14:00 Paris is later than both.
* CAISO DAM: about 13:00 Pacific on D-1, taken at 14:00 America/Los_Angeles.
* ERCOT DAM: about 13:30 Central on D-1, taken at 14:30 America/Chicago.
* NYISO DAM: about 11:00 Eastern on D-1, taken at 12:00 America/New_York.

A price counts as published at an issue hour when its publication time is at or before the
start of that hour. Readers of published prices go through a causality guard that raises on
anything later (`tools.grid.outlook.PastGrid.published_prices`, `evals.view.GridView`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from tools.grid.models import HOUR, ensure_utc, floor_hour
from tools.grid.zones import get_zone

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DayAheadRule:
    """A day-ahead market's publication: delivery days on `tz`, published `at` on the day before."""

    market: str
    tz: str
    at: time


_SDAC = DayAheadRule("SDAC (EPEX/OMIE), GB day-ahead", "Europe/Paris", time(14, 0))
DAYAHEAD_RULES: dict[str, DayAheadRule] = {
    "FR": _SDAC,
    "DE": _SDAC,
    "ES": _SDAC,
    "PT": _SDAC,
    "NL": _SDAC,
    "BE": _SDAC,
    "IT": _SDAC,
    "GB": _SDAC,
    "US-CAL-CISO": DayAheadRule("CAISO DAM", "America/Los_Angeles", time(14, 0)),
    "US-TEX-ERCO": DayAheadRule("ERCOT DAM", "America/Chicago", time(14, 30)),
    "US-NY-NYIS": DayAheadRule("NYISO DAM", "America/New_York", time(12, 0)),
}
"""The rule of every zone (`tools.grid.zones.ZONE_CODES`)."""


def published_until(zone: str, at: datetime) -> datetime:
    """Return the exclusive UTC end of the hours whose day-ahead price is public at `at`.

    That is the end of today's delivery day, or of tomorrow's once it has been published.

    Raises:
        UnknownZoneError: Unknown zone.
    """
    rule = DAYAHEAD_RULES[get_zone(zone).code]
    tz = ZoneInfo(rule.tz)
    local = ensure_utc(at, "at").astimezone(tz)
    days = 2 if local.time() >= rule.at else 1
    end = datetime.combine(local.date() + timedelta(days=days), time(0), tzinfo=tz)
    return end.astimezone(UTC)


def published_leads(zone: str, first_issue: datetime, count: int) -> npt.NDArray[np.int64]:
    """Return, per issue hour, how many hours after it have a published day-ahead price.

    For `count` consecutive issue hours from `first_issue`, at the start of each: a rule of
    the calendar, not data.
    """
    rule = DAYAHEAD_RULES[get_zone(zone).code]
    tz = ZoneInfo(rule.tz)
    first = floor_hour(ensure_utc(first_issue, "first_issue"))
    day = first.astimezone(tz).date() - timedelta(days=1)
    last = (first + count * HOUR).astimezone(tz).date() + timedelta(days=1)
    published, ends = [], []
    while day <= last:  # delivery day `day + 1`: published on `day` at `rule.at`, ends at `day + 2`
        published.append(_minutes(datetime.combine(day, rule.at, tzinfo=tz)))
        ends.append(_minutes(datetime.combine(day + timedelta(days=2), time(0), tzinfo=tz)))
        day += timedelta(days=1)
    issues = _minutes(first) + 60 * np.arange(count)
    k = np.searchsorted(np.array(published), issues, side="right") - 1
    leads: npt.NDArray[np.int64] = (np.array(ends)[k] - issues) // 60 - 1
    return leads


def _minutes(at: datetime) -> int:
    return int((at - EPOCH) / timedelta(minutes=1))
