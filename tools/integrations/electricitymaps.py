"""Read the latest carbon intensity of a zone from the Electricity Maps API.

`GET {base_url}/carbon-intensity/latest?zone=<ZONE>` with the `auth-token` header; the answer is
`{"zone", "carbonIntensity", "datetime", "updatedAt", "emissionFactorType", "isEstimated", ...}`.
Optionally `GET {base_url}/power-breakdown/latest?zone=<ZONE>` adds the renewable share and the
consumption in MW. The payload is untrusted input: every field is type- and range-checked, and any
failure (HTTP error, rate limit, timeout, malformed body) raises NoGridDataError naming the zone.
Prices are not part of these endpoints, so `price_eur_per_mwh` is None.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from tools.errors import NoGridDataError
from tools.grid.models import (
    MAX_CARBON_INTENSITY,
    SURPLUS_SHARE,
    GridReading,
    SourceName,
    check_hours,
    ensure_utc,
)
from tools.grid.zones import get_zone

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"


def get_json(
    client: httpx.Client,
    base_url: str,
    api_key: str,
    path: str,
    params: dict[str, str],
    zone: str,
    timeout: float,
) -> dict[str, Any]:
    """GET `{base_url}/{path}` with the `auth-token` header and return the JSON object.

    Raises:
        NoGridDataError: Timeout, unreachable, refused key (401/403), rate limit (429), any
            other HTTP error, a body that is not a JSON object, or an answer for another zone.
    """
    url = f"{base_url}/{path}"
    try:
        response = client.get(url, params=params, headers={"auth-token": api_key}, timeout=timeout)
    except httpx.TimeoutException:
        raise NoGridDataError(
            f"Electricity Maps did not answer within {timeout:g} s for zone {zone!r}"
        ) from None
    except httpx.TransportError as exc:
        raise NoGridDataError(
            f"cannot reach Electricity Maps at {base_url!r} for zone {zone!r}: {exc}"
        ) from None
    status = response.status_code
    if status in (401, 403):
        raise NoGridDataError(
            f"Electricity Maps refused the API key (HTTP {status}) for zone {zone!r} on {path}: "
            "check TGTG_ELECTRICITYMAPS_API_KEY (the free tier serves one zone only)"
        )
    if status == 429:
        retry = response.headers.get("retry-after")
        wait = f"; retry after {retry} s" if retry else ""
        raise NoGridDataError(f"Electricity Maps rate limit hit (HTTP 429) for zone {zone!r}{wait}")
    if status >= 400:
        raise NoGridDataError(
            f"Electricity Maps returned HTTP {status} for zone {zone!r} on {path}: "
            f"{response.text[:200]!r}"
        )
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise NoGridDataError(
            f"malformed Electricity Maps payload for zone {zone!r} from {path}: "
            f"expected a JSON object, got {response.text[:200]!r}"
        )
    if payload.get("zone", zone) != zone:
        raise NoGridDataError(
            f"malformed Electricity Maps payload: asked for zone {zone!r}, got "
            f"{payload.get('zone')!r}"
        )
    return payload


def check_number(
    value: Any, *, what: str, zone: str, low: float, high: float, path: str | None = None
) -> float:
    """Return `value` as a float when it is a number within `low..high`.

    Args:
        value: The payload's value (untrusted).
        what: Names the value in the message, e.g. "carbonIntensity".
        zone: The zone asked for.
        low: Least plausible value.
        high: Greatest plausible value.
        path: The endpoint that answered, named in the message when given.

    Raises:
        NoGridDataError: Not a number (or NaN), or outside `low..high`.
    """
    where = f"zone {zone!r}" + (f" from {path}" if path else "")
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise NoGridDataError(
            f"malformed Electricity Maps payload for {where}: {what} is {value!r}, "
            "expected a number"
        )
    if not low <= value <= high:
        raise NoGridDataError(
            f"implausible Electricity Maps value for {where}: {what} {value!r} is "
            f"outside {low:g}..{high:g}"
        )
    return float(value)


@dataclass(eq=False)
class ElectricityMapsClient:
    """What every Electricity Maps client holds: the key, the API root and one HTTP client.

    Attributes:
        api_key: Electricity Maps API token, sent as the `auth-token` header.
        base_url: API root including the version, e.g. "https://api.electricitymap.org/v3".
        client: HTTP client to use (tests pass one aimed at a local fake); default a new one,
            closed by `close`.
        timeout: Seconds to wait for each request.
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    client: httpx.Client | None = field(default=None, repr=False)
    timeout: float = 10

    def __post_init__(self) -> None:
        """Strip the root's trailing slash; make the HTTP client when none was given."""
        self.base_url = self.base_url.rstrip("/")
        self._owns_client = self.client is None
        self._http = self.client if self.client is not None else httpx.Client(timeout=self.timeout)

    def close(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_client:
            self._http.close()

    def _get(self, path: str, params: dict[str, str], zone: str) -> dict[str, Any]:
        """GET `path` for `zone` (see `get_json`)."""
        return get_json(self._http, self.base_url, self.api_key, path, params, zone, self.timeout)


@dataclass(eq=False)
class LiveGrid(ElectricityMapsClient):
    """Electricity Maps client returning `GridReading`s for the current hour.

    Attributes:
        with_power_breakdown: Also fetch the power breakdown for renewable share and MW.
        max_age: A reading older than this before the asked time is refused as stale.
    """

    with_power_breakdown: bool = field(default=False, kw_only=True)
    max_age: timedelta = field(default=timedelta(hours=2), kw_only=True)

    @property
    def name(self) -> SourceName:
        """Return "live"."""
        return "live"

    @staticmethod
    def _number(payload: dict[str, Any], key: str, zone: str, low: float, high: float) -> float:
        return check_number(payload.get(key), what=key, zone=zone, low=low, high=high)

    def reading(self, zone: str, at: datetime) -> GridReading:
        """Return the latest reading, checked to be for the hour around `at`.

        Args:
            zone: Zone code.
            at: The caller's current time (aware); the API's latest hour must lie within
                `max_age` before it and not more than an hour after it.

        Raises:
            NoGridDataError: The API failed, refused, throttled, sent a malformed or implausible
                payload, or its latest hour is stale or far from `at`.
        """
        code = get_zone(zone).code
        now = ensure_utc(at, "at")
        payload = self._get("carbon-intensity/latest", {"zone": code}, code)
        carbon = self._number(payload, "carbonIntensity", code, 0, MAX_CARBON_INTENSITY)
        raw_ts = payload.get("datetime")
        try:
            ts = ensure_utc(datetime.fromisoformat(str(raw_ts)), "datetime")
        except ValueError:
            raise NoGridDataError(
                f"malformed Electricity Maps payload for zone {code!r}: datetime {raw_ts!r} "
                "is not an ISO-8601 time with a zone"
            ) from None
        if ts < now - self.max_age:
            raise NoGridDataError(
                f"stale Electricity Maps data for zone {code!r}: latest hour {ts.isoformat()} is "
                f"more than {self.max_age} before {now.isoformat()}"
            )
        if ts > now + timedelta(hours=1):
            raise NoGridDataError(
                f"the live source only has the latest hour ({ts.isoformat()}) for zone {code!r}, "
                f"not {now.isoformat()}: use the recorded source for history"
            )
        notes = []
        if payload.get("emissionFactorType") == "direct":
            notes.append("carbon intensity is direct (operational), not life-cycle")
        if payload.get("isEstimated") is True:
            method = payload.get("estimationMethod")
            notes.append(f"estimated by Electricity Maps ({method})" if method else "estimated")
        renewable = demand = None
        surplus = curtailment = None
        if self.with_power_breakdown:
            breakdown = self._get("power-breakdown/latest", {"zone": code}, code)
            renewable = self._number(breakdown, "renewablePercentage", code, 0, 100)
            demand = self._number(breakdown, "powerConsumptionTotal", code, 0, 1e7)
            surplus = renewable > 100 * SURPLUS_SHARE
            curtailment = renewable > get_zone(code).curtailment_renewable_pct
        else:
            notes.append("renewable share not requested, so surplus and curtailment are unknown")
        return GridReading(
            zone=code,
            ts=ts,
            source="live",
            carbon_intensity=carbon,
            renewable_pct=renewable,
            demand_mw=demand,
            surplus=surplus,
            curtailment=curtailment,
            note="; ".join(notes) or None,
        )

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        """Return the latest reading as a one-hour series; longer history is not served live.

        Args:
            zone: Zone code.
            start: The caller's current time (aware).
            hours: Must be 1.

        Raises:
            NoGridDataError: More than one hour was asked for.
        """
        if check_hours(hours) != 1:
            raise NoGridDataError(
                f"the live source serves only the latest hour for zone {zone!r}, not {hours} "
                "hours: use the recorded source (TGTG_GRID_SOURCE=recorded) for history"
            )
        return [self.reading(zone, start)]
