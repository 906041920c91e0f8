"""Simulate a plausible, deterministic hourly grid for every zone from a seed.

The same (seed, zone, hour) always gives the same reading; nothing reads global random state.
Noise comes from a hash of (seed, zone, hour). Weather that lasts about a day (clouds, wind
fronts, hydro inflow) is drawn once per day and blended smoothly into the next day's draw, and the
seasons follow absolute time, so no series steps at a day boundary.

Model, per zone (parameters in `tools.grid.zones`):

* Solar follows the sun's elevation at the zone centroid (declination by day of year, hour angle
  from UTC and longitude), times a cloudiness factor drawn per solar day (it changes at local solar
  midnight, when there is no sun); it peaks at local solar noon, which falls between 10 and 16 h
  on the wall clock, and is larger in summer and further south.
* Wind is the zone's capacity times its capacity factor, shaped to blow harder at night and in
  winter (so anti-correlated with solar), times a weather-front factor that drifts from one
  day's draw to the next, and hourly noise.
* Demand is the base demand times a daily shape with a morning shoulder and an evening peak at
  18-20 h local, lower at weekends (easing in and out around local midnight), higher in the
  zone's peak season.
* Dispatch: a minimum fossil share always runs, renewables fill the rest, then nuclear, then
  fossil. Carbon intensity is the mix-weighted life-cycle intensity; the price rises with the
  residual demand (demand minus renewables) and turns negative in a large surplus.
* `surplus` is renewable generation > 0.7 x demand; `curtailment` is
  renewable - 0.7 x demand > the zone's `curtailment_threshold_mw`.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from statistics import NormalDist
from zoneinfo import ZoneInfo

from tools.grid.models import (
    HOUR,
    GridReading,
    SourceName,
    check_hours,
    floor_hour,
    surplus_flags,
)
from tools.grid.zones import Zone, get_zone

RENEWABLE_GCO2_PER_KWH = 35.0
"""Life-cycle intensity of a wind/solar/hydro/biomass mix."""
NUCLEAR_GCO2_PER_KWH = 12.0
SOLAR_PEAK_YIELD = 0.75
"""Share of PV nameplate delivered in clear sky with the sun overhead (inverters, losses)."""
_NORMAL = NormalDist()
TROPICAL_YEAR_DAYS = 365.2422
WEEKEND_RAMP_HOURS = 6
READING_CACHE_SIZE = 16_384
"""Simulated readings kept per simulator (11 zones x 62 days of hours)."""
"""Demand eases into and out of the weekend over this many hours around local midnight."""


@dataclass(frozen=True)
class SimComponents:
    """The simulated generation and demand behind one reading, in MW."""

    solar_mw: float
    wind_mw: float
    firm_renewable_mw: float
    nuclear_mw: float
    fossil_mw: float
    demand_mw: float
    local_hour: int

    @property
    def renewable_mw(self) -> float:
        """Return all renewable generation (solar, wind, hydro/biomass)."""
        return self.solar_mw + self.wind_mw + self.firm_renewable_mw


def _unit(seed: int, zone: str, key: str) -> float:
    """Return a deterministic number in [0, 1) from a hash of (seed, zone, key)."""
    digest = hashlib.blake2b(f"{seed}|{zone}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _blended(seed: int, zone: str, name: str, days: float) -> float:
    """Return a daily draw in [0, 1) that drifts smoothly from one day's draw to the next.

    Draws sit at each UTC midnight. In between, the two neighbouring draws are mixed as normal
    scores with weights cos/sin of a cosine-eased angle, which keeps every hour's value
    uniformly distributed (as wide as a single draw) while making it continuous in time.

    Args:
        seed: Simulator seed.
        zone: Zone code.
        name: What is drawn ("front", "hydro").
        days: Absolute time in days since the Unix epoch.
    """
    day = math.floor(days)
    angle = math.pi / 4 * (1 - math.cos(math.pi * (days - day)))
    before = _NORMAL.inv_cdf(_open_unit(_unit(seed, zone, f"{name}|{day}")))
    after = _NORMAL.inv_cdf(_open_unit(_unit(seed, zone, f"{name}|{day + 1}")))
    mixed = _NORMAL.cdf(math.cos(angle) * before + math.sin(angle) * after)
    return min(mixed, math.nextafter(1.0, 0.0))


def _open_unit(value: float) -> float:
    """Return `value` moved inside (0, 1), so its normal score is finite."""
    return min(max(value, 1e-12), 1 - 1e-12)


@cache
def _tz(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _epoch_days(ts: datetime) -> float:
    """Return the middle of the UTC hour `ts` in days since the Unix epoch."""
    return (ts.timestamp() + 1800) / 86400


def _year_angle(ts: datetime) -> float:
    """Return the position in the year as an angle: 0 at the start of January, continuous."""
    return 2 * math.pi * (_epoch_days(ts) % TROPICAL_YEAR_DAYS) / TROPICAL_YEAR_DAYS


def _solar_hour(zone: Zone, ts: datetime) -> float:
    """Return the local solar time (0-24) at the middle of the UTC hour `ts`."""
    return (ts.hour + 0.5 + zone.lon / 15) % 24


def _solar_day(zone: Zone, ts: datetime) -> int:
    """Return the index of the local solar day (midnight to midnight) containing the hour `ts`."""
    return math.floor(_epoch_days(ts) + zone.lon / 360)


def _sun_height(zone: Zone, ts: datetime) -> float:
    """Return the sine of the sun's elevation at the middle of the UTC hour `ts` (>= 0)."""
    declination = math.radians(23.44) * math.sin(_year_angle(ts) + 2 * math.pi * 284 / 365)
    hour_angle = math.radians(15 * (_solar_hour(zone, ts) - 12))
    lat = math.radians(zone.lat)
    height = math.sin(lat) * math.sin(declination) + math.cos(lat) * math.cos(
        declination
    ) * math.cos(hour_angle)
    return max(0.0, height)


def _season(ts: datetime) -> float:
    """Return +1 in mid-January, -1 in mid-July (northern winter is positive)."""
    return math.cos(_year_angle(ts) - 2 * math.pi * 14 / 365)


def _weekend_weight(local: datetime) -> float:
    """Return how much of the weekend demand dip applies at this local hour (0 to 1).

    The weight ramps linearly from 0 to 1 across local midnight into Saturday and back to 0
    across local midnight into Monday, over `WEEKEND_RAMP_HOURS`.
    """
    hour = local.weekday() * 24 + local.hour + 0.5
    half = WEEKEND_RAMP_HOURS / 2
    if hour >= 72:
        rising = (hour - (120 - half)) / WEEKEND_RAMP_HOURS
        falling = ((168 + half) - hour) / WEEKEND_RAMP_HOURS
    else:
        rising, falling = 1.0, (half - hour) / WEEKEND_RAMP_HOURS
    return max(0.0, min(1.0, rising, falling))


def _demand_shape(local_hour: int) -> float:
    """Return the daily demand shape: night trough, morning shoulder, evening peak at 19 h.

    The working-day plateau (8-17 h) has soft edges, so demand has no step within the day.
    """
    morning = 0.14 * math.exp(-(((local_hour - 9) / 2.5) ** 2))
    opens = 1 / (1 + math.exp(-(local_hour - 7.5) / 0.7))
    closes = 1 / (1 + math.exp((local_hour - 17.5) / 0.7))
    daytime = 0.06 * opens * closes
    evening = 0.26 * math.exp(-(((local_hour - 19) / 1.8) ** 2))
    return 0.72 + morning + daytime + evening


class SimulatedGrid:
    """A deterministic grid simulator: same seed and hour, same reading."""

    def __init__(self, seed: int = 7) -> None:
        """Create a simulator.

        Args:
            seed: Any integer; different seeds give different weather.
        """
        self.seed = int(seed)
        # Readings are pure functions of (seed, zone, hour) and immutable: a planner that reads
        # every node's zone per job reuses them instead of simulating the hour again.
        self._cached = functools.lru_cache(maxsize=READING_CACHE_SIZE)(self._reading)

    @property
    def name(self) -> SourceName:
        """Return "sim"."""
        return "sim"

    def components(self, zone: str, at: datetime) -> SimComponents:
        """Return the simulated generation and demand for the hour containing `at`.

        Args:
            zone: Zone code.
            at: Aware time; the UTC hour containing it is simulated.
        """
        z = get_zone(zone)
        ts = floor_hour(at)
        hour_key = str(int(ts.timestamp()) // 3600)
        days = _epoch_days(ts)
        local = ts.astimezone(_tz(z.tz))

        clouds = 0.35 + 0.65 * _unit(self.seed, z.code, f"cloud|{_solar_day(z, ts)}")
        solar = z.solar_capacity_mw * SOLAR_PEAK_YIELD * _sun_height(z, ts) ** 1.15 * clouds

        front = 0.3 + 1.4 * _blended(self.seed, z.code, "front", days)
        diurnal = 1 + 0.25 * math.cos(2 * math.pi * _solar_hour(z, ts) / 24)
        gust = 1 + 0.3 * (_unit(self.seed, z.code, f"wind|{hour_key}") - 0.5)
        wind_cf = z.wind_capacity_factor * front * diurnal * (1 + 0.25 * _season(ts)) * gust
        wind = z.wind_capacity_mw * min(wind_cf, 0.95)

        firm = z.firm_renewable_mw * (0.9 + 0.2 * _blended(self.seed, z.code, "hydro", days))

        season = _season(ts) if z.demand_peak_season == "winter" else -_season(ts)
        weekend = 1 - 0.08 * _weekend_weight(local)
        jitter = 1 + 0.04 * (_unit(self.seed, z.code, f"demand|{hour_key}") - 0.5)
        demand = (
            z.base_demand_mw * _demand_shape(local.hour) * (1 + 0.12 * season) * weekend * jitter
        )

        renewable = solar + wind + firm
        floor_fossil = z.min_fossil_share * demand
        renewable_used = min(renewable, demand - floor_fossil)
        nuclear = min(z.nuclear_mw, demand - floor_fossil - renewable_used)
        fossil = demand - renewable_used - nuclear
        return SimComponents(solar, wind, firm, nuclear, fossil, demand, local.hour)

    def reading(self, zone: str, at: datetime) -> GridReading:
        """Return the simulated reading for the hour containing `at`.

        Args:
            zone: Zone code.
            at: Aware time; the UTC hour containing it is simulated.
        """
        return self._cached(get_zone(zone).code, floor_hour(at))

    def _reading(self, code: str, ts: datetime) -> GridReading:
        z = get_zone(code)
        c = self.components(z.code, ts)
        renewable = c.renewable_mw
        renewable_used = c.demand_mw - c.nuclear_mw - c.fossil_mw
        carbon = (
            renewable_used * RENEWABLE_GCO2_PER_KWH
            + c.nuclear_mw * NUCLEAR_GCO2_PER_KWH
            + c.fossil_mw * z.fossil_gco2_per_kwh
        ) / c.demand_mw

        residual = (c.demand_mw - renewable) / c.demand_mw
        if residual >= 0:
            level = 0.3 + 1.1 * residual**1.5
        else:
            level = 0.3 * (1 + 3 * residual)
        hour_key = int(ts.timestamp()) // 3600
        noise = 1 + 0.1 * (_unit(self.seed, z.code, f"price|{hour_key}") - 0.5)
        price = z.price_base_eur_per_mwh * level * noise

        demand_mw, renewable_mw = round(c.demand_mw, 1), round(renewable, 1)
        surplus, curtailment = surplus_flags(renewable_mw, demand_mw, z.curtailment_threshold_mw)
        return GridReading(
            zone=z.code,
            ts=ts,
            source="sim",
            carbon_intensity=round(carbon, 2),
            renewable_pct=round(100 * renewable_used / c.demand_mw, 2),
            price_eur_per_mwh=round(price, 2),
            demand_mw=demand_mw,
            renewable_mw=renewable_mw,
            surplus=surplus,
            curtailment=curtailment,
        )

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        """Return `hours` consecutive simulated readings from the hour containing `start`.

        Args:
            zone: Zone code.
            start: Aware time of the first hour.
            hours: Number of hours (at least 1).
        """
        get_zone(zone)
        first = floor_hour(start)
        return [self.reading(zone, first + i * HOUR) for i in range(check_hours(hours))]


def local_day(zone: str, on: date) -> list[datetime]:
    """Return the aware UTC starts of the 23-25 wall-clock hours of `on` in the zone's time zone.

    Args:
        zone: Zone code.
        on: Calendar date on the zone's wall clock.
    """
    tz = _tz(get_zone(zone).tz)
    start = datetime(on.year, on.month, on.day, tzinfo=tz)
    first = floor_hour(start)
    hours = []
    at = first
    while at.astimezone(tz).date() == on:
        hours.append(at)
        at += HOUR
    return hours
