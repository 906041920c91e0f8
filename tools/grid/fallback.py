"""Forecast with a primary provider (Electricity Maps) and fall back to another (history).

`graphs.wiring.make_forecast_provider` wraps the Electricity Maps forecaster in a
`FallbackForecaster` when an API key is set, so that a zone it cannot forecast gets the history
model's forecast (`tools.grid.outlook.HistoryForecaster`), labelled as such.
"""

from __future__ import annotations

import logging
from datetime import datetime

from tools.errors import DomainError
from tools.grid.models import ensure_utc, floor_hour
from tools.grid.outlook import DEFAULT_HORIZON_HOURS, ForecastProvider, GridForecast
from tools.grid.zones import get_zone

logger = logging.getLogger(__name__)


class FallbackForecaster:
    """Forecast with `primary`; where it fails for a zone, with `fallback`, labelled.

    A failure (HTTP error, timeout, malformed or stale payload, a zone or hours not covered:
    any `DomainError` or invalid forecast) is logged once per zone until the primary answers
    again, and the primary is not asked again for that zone within the same issue hour unless
    for fewer hours (a long plan may ask for more hours than it forecasts). The
    fallback forecast's `source` is "<fallback> (<primary> unavailable)" and its note starts
    with the reason. A primary answer serves the rest of its issue hour for as many hours or
    fewer (the primary is a network service: one request per zone and hour, not per plan).
    """

    def __init__(self, primary: ForecastProvider, fallback: ForecastProvider) -> None:
        """Wrap `primary`, answering from `fallback` where it fails."""
        self.primary = primary
        self.fallback = fallback
        self._failed: dict[str, tuple[datetime, int, str]] = {}
        """Per zone, the issue hour the primary last failed in, for how many hours, and why."""
        self._fresh: dict[str, GridForecast] = {}
        """Per zone, the primary's last answer (served within its issue hour)."""

    def close(self) -> None:
        """Close the providers that hold a client (Electricity Maps' HTTP client)."""
        for provider in (self.primary, self.fallback):
            close = getattr(provider, "close", None)
            if callable(close):
                close()

    @property
    def name(self) -> str:
        """Return "<primary> (else <fallback>)"."""
        return f"{self.primary.name} (else {self.fallback.name})"

    def forecast(
        self, zone: str, issued_at: datetime, hours: int = DEFAULT_HORIZON_HOURS
    ) -> GridForecast:
        """Return the primary's forecast, or the fallback's where the primary fails.

        Raises:
            UnknownZoneError: Unknown zone.
            NoGridDataError: The fallback cannot forecast either.
        """
        code = get_zone(zone).code
        issue_hour = floor_hour(ensure_utc(issued_at, "issued_at"))
        fresh = self._fresh.get(code)
        if fresh is not None and floor_hour(fresh.issued_at) == issue_hour and fresh.hours >= hours:
            return _first_hours(fresh, hours)
        failed = self._failed.get(code)
        # Within the hour of a failure the primary is asked again only for fewer hours.
        if failed is None or failed[0] != issue_hour or hours < failed[1]:
            try:
                forecast = self.primary.forecast(code, issued_at, hours)
            except (DomainError, ValueError) as exc:
                reason = " ".join(str(exc).split())[:300]
                if failed is None:
                    logger.warning(
                        "%s forecast unavailable for %s, using %s: %s",
                        self.primary.name,
                        code,
                        self.fallback.name,
                        reason,
                    )
                failed = (issue_hour, hours, reason)
                self._failed[code] = failed
            else:
                if self._failed.pop(code, None) is not None:
                    logger.info("%s forecast for %s is back", self.primary.name, code)
                self._fresh[code] = forecast
                return forecast
        backup = self.fallback.forecast(code, issued_at, hours)
        why = f"{self.primary.name} unavailable: {failed[2]}"
        return backup.model_copy(
            update={
                "source": f"{backup.source} ({self.primary.name} unavailable)",
                "note": f"{why}; {backup.note}" if backup.note else why,
            }
        )


def _first_hours(forecast: GridForecast, hours: int) -> GridForecast:
    """Return `forecast` cut to its first `hours` hours."""
    return forecast.model_copy(
        update={
            "times": forecast.times[:hours],
            "carbon_intensity": forecast.carbon_intensity[:hours],
            "price_eur_per_mwh": forecast.price_eur_per_mwh[:hours],
        }
    )
