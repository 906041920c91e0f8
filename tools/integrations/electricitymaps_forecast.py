"""Forecast a zone's carbon intensity and day-ahead price from Electricity Maps' forecast API.

Implements `tools.grid.outlook.ForecastProvider`. Two requests per zone, `auth-token` header:

* `GET {base_url}/carbon-intensity/forecast?zone=<ZONE>&horizonHours=<N>` answering
  `{"zone", "forecast": [{"datetime", "carbonIntensity"}, ...], "updatedAt"}` (the shape the
  Carbon Aware SDK's Electricity Maps client reads; newer API versions call the list `data`,
  which is accepted too);
* `GET {base_url}/price-day-ahead/forecast?zone=<ZONE>&start=<ISO>&end=<ISO>` answering
  `{"zone", "data": [{"datetime", "value", "unit": "EUR/MWh"}, ...]}` (this endpoint takes a
  window, not `horizonHours`).

The payloads are untrusted: every point is type- and range-checked. Carbon-intensity failures
(HTTP error, 401/403, 429, timeout, malformed body, a forecast updated more than `max_age`
before the issue time, hours missing) raise NoGridDataError naming the zone. A price failure or
a price in another currency leaves the prices None and says why in the forecast's note, since
many zones have no day-ahead price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tools.errors import NoGridDataError
from tools.grid.models import HOUR, MAX_CARBON_INTENSITY, check_hours, ensure_utc, floor_hour
from tools.grid.outlook import DEFAULT_HORIZON_HOURS, GridForecast
from tools.grid.zones import get_zone
from tools.integrations.electricitymaps import (
    ElectricityMapsClient,
    check_number,
)

PRICE_UNIT = "EUR/MWh"


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _points(payload: dict[str, Any], zone: str, path: str) -> list[Any]:
    points = payload.get("forecast", payload.get("data"))
    if not isinstance(points, list) or not points:
        raise NoGridDataError(
            f"malformed Electricity Maps payload for zone {zone!r} from {path}: expected a "
            f"non-empty 'forecast' list, got {str(points)[:120]!r}"
        )
    return points


def _hourly(
    points: list[Any], key: str, zone: str, path: str, low: float, high: float
) -> dict[datetime, float]:
    """Return {hour start: value} from `[{"datetime": ..., key: number}, ...]`."""
    out: dict[datetime, float] = {}
    for point in points:
        if not isinstance(point, dict):
            raise NoGridDataError(
                f"malformed Electricity Maps payload for zone {zone!r} from {path}: point "
                f"{point!r} is not an object"
            )
        raw_ts, value = point.get("datetime"), point.get(key)
        try:
            ts = floor_hour(ensure_utc(datetime.fromisoformat(str(raw_ts)), "datetime"))
        except ValueError:
            raise NoGridDataError(
                f"malformed Electricity Maps payload for zone {zone!r} from {path}: datetime "
                f"{raw_ts!r} is not an ISO-8601 time with a zone"
            ) from None
        what = f"{key} at {raw_ts}"
        out[ts] = check_number(value, what=what, zone=zone, low=low, high=high, path=path)
    return out


@dataclass(eq=False)
class ElectricityMapsForecaster(ElectricityMapsClient):
    """Electricity Maps forecast client returning `GridForecast`s.

    Attributes:
        max_age: A forecast whose `updatedAt` is older than this before the issue time is
            refused as stale.
        with_price: Also ask for the day-ahead price forecast.
    """

    max_age: timedelta = field(default=timedelta(hours=6), kw_only=True)
    with_price: bool = field(default=True, kw_only=True)

    @property
    def name(self) -> str:
        """Return "electricitymaps"."""
        return "electricitymaps"

    def _check_fresh(self, payload: dict[str, Any], zone: str, issued: datetime) -> None:
        raw = payload.get("updatedAt")
        if raw is None:
            return
        try:
            updated = ensure_utc(datetime.fromisoformat(str(raw)), "updatedAt")
        except ValueError:
            raise NoGridDataError(
                f"malformed Electricity Maps payload for zone {zone!r}: updatedAt {raw!r} is "
                "not an ISO-8601 time with a zone"
            ) from None
        if updated < issued - self.max_age:
            raise NoGridDataError(
                f"stale Electricity Maps forecast for zone {zone!r}: updated "
                f"{updated.isoformat()}, more than {self.max_age} before {issued.isoformat()}"
            )

    def _prices(self, code: str, times: list[datetime]) -> tuple[list[float | None], str | None]:
        path = "price-day-ahead/forecast"
        params = {"zone": code, "start": _iso(times[0]), "end": _iso(times[-1] + HOUR)}
        try:
            payload = self._get(path, params, code)
            points = _points(payload, code, path)
            units = {p.get("unit", PRICE_UNIT) for p in points if isinstance(p, dict)}
            if units - {PRICE_UNIT}:
                return [None] * len(times), f"day-ahead price in {sorted(units)} ignored"
            prices = _hourly(points, "value", code, path, -1e4, 1e5)
        except NoGridDataError as exc:
            return [None] * len(times), f"no day-ahead price: {exc}"
        values = [prices.get(ts) for ts in times]
        missing = sum(v is None for v in values)
        return values, (f"day-ahead price missing for {missing} h" if missing else None)

    def forecast(
        self, zone: str, issued_at: datetime, hours: int = DEFAULT_HORIZON_HOURS
    ) -> GridForecast:
        """Return Electricity Maps' forecast for the `hours` hours after the issue hour.

        Args:
            zone: Zone code.
            issued_at: The caller's current time (aware); forecast hours start after its hour.
            hours: Hours wanted (at least 1); all of them must be in the answer.

        Raises:
            NoGridDataError: The API failed, refused, throttled, sent a malformed, implausible
                or stale forecast, or one that does not cover the hours asked for.
        """
        code = get_zone(zone).code
        count = check_hours(hours)
        issued = ensure_utc(issued_at, "issued_at")
        issue_hour = floor_hour(issued)
        path = "carbon-intensity/forecast"
        payload = self._get(path, {"zone": code, "horizonHours": str(count)}, code)
        self._check_fresh(payload, code, issued)
        ci = _hourly(
            _points(payload, code, path), "carbonIntensity", code, path, 0, MAX_CARBON_INTENSITY
        )
        times = [issue_hour + (i + 1) * HOUR for i in range(count)]
        missing = [ts for ts in times if ts not in ci]
        if missing:
            raise NoGridDataError(
                f"Electricity Maps forecast for zone {code!r} lacks {len(missing)} of the "
                f"{count} hours after {issue_hour.isoformat()} (first missing "
                f"{missing[0].isoformat()}): ask for fewer hours"
            )
        prices, price_note = (
            self._prices(code, times) if self.with_price else ([None] * count, None)
        )
        notes = [
            f"updated {payload['updatedAt']}" if payload.get("updatedAt") else None,
            price_note,
        ]
        return GridForecast(
            zone=code,
            issued_at=issued,
            source=self.name,
            times=tuple(times),
            carbon_intensity=tuple(ci[ts] for ts in times),
            price_eur_per_mwh=tuple(prices),
            note="; ".join(n for n in notes if n) or None,
        )
