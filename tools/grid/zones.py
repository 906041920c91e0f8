"""Describe the eleven grid zones the broker knows, with the simulator's parameters for each.

Zone codes are Electricity Maps zone ids. The simulator figures are round numbers close to each
grid's installed fleet around 2023 (national statistics and operator fact sheets); they shape a
plausible day, they are not a forecast. Every MW figure is an hourly average power.

Simulator parameters (see `tools.grid.simulated`):

* `base_demand_mw`: mean load; the hourly shape peaks at 18-20 h local time.
* `solar_capacity_mw`: installed PV; output follows the sun's elevation at the zone's centroid, so
  it peaks at local solar noon and grows with season and lower latitude.
* `wind_capacity_mw`, `wind_capacity_factor`: installed wind and its mean capacity factor; the
  hourly profile is stronger at night and in winter (anti-correlated with solar).
* `firm_renewable_mw`: hydro, biomass and geothermal, counted as renewable (Electricity Maps does).
* `nuclear_mw`: must-run nuclear, low carbon but not renewable.
* `fossil_gco2_per_kwh`: life-cycle intensity of the zone's fossil fleet (lignite-heavy DE is high,
  gas-heavy ES/GB/CISO lower); `min_fossil_share`: fossil that always runs (reserves, CHP, imports).
* `price_base_eur_per_mwh`: day-ahead price level when residual demand equals demand.
* `curtailment_threshold_mw`: renewable surplus over 70 % of demand (`renewable - 0.7 * demand`)
  above which the zone cannot export or store more and curtails. Sized from export
  interconnection and storage: large for meshed central Europe (FR, DE), small for the Iberian
  peninsula, Great Britain and the US zones, which have few ties to their neighbours.

Recorded-data parameter:

* `curtailment_renewable_pct`: renewable share of consumption above which recorded hours count as
  curtailment. It is at least the 70 % surplus line and lower where much inflexible generation
  (nuclear in FR and BE) or weak transmission (Scotland-England in GB, West Texas in ERCOT, midday
  solar in CAISO) leaves little room for more renewables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tools.errors import UnknownZoneError


@dataclass(frozen=True)
class Zone:
    """A grid zone: where it is, its clock, and how the simulator models it."""

    code: str
    name: str
    lat: float
    lon: float
    tz: str
    """IANA time zone of the zone's wall clock."""
    base_demand_mw: float
    solar_capacity_mw: float
    wind_capacity_mw: float
    wind_capacity_factor: float
    firm_renewable_mw: float
    nuclear_mw: float
    fossil_gco2_per_kwh: float
    min_fossil_share: float
    price_base_eur_per_mwh: float
    curtailment_threshold_mw: float
    curtailment_renewable_pct: float
    demand_peak_season: Literal["winter", "summer"]
    """Season of highest demand: heating in Europe, air conditioning in the US zones."""


ZoneCode = Literal[
    "FR",
    "DE",
    "ES",
    "PT",
    "NL",
    "BE",
    "IT",
    "GB",
    "US-CAL-CISO",
    "US-NY-NYIS",
    "US-TEX-ERCO",
]
"""A supported zone code, in `ZONE_CODES` order (each `_TABLE` row's code must be one)."""

_Row = tuple[
    ZoneCode,
    str,
    float,
    float,
    str,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    Literal["winter", "summer"],
]
"""One `_TABLE` row: the `Zone` fields in declaration order."""

_TABLE: tuple[_Row, ...] = (
    # code, name, lat, lon, tz,
    #   demand MW, solar MW, wind MW, wind CF, firm renewable MW, nuclear MW,
    #   fossil g/kWh, min fossil share, price base, curtailment MW, curtailment %, demand peak
    (
        "FR",
        "France",
        46.6,
        2.4,
        "Europe/Paris",
        52000,
        17000,
        22000,
        0.24,
        8500,
        42000,
        490,
        0.03,
        95,
        12000,
        75,
        "winter",
    ),
    (
        "DE",
        "Germany",
        51.2,
        10.4,
        "Europe/Berlin",
        58000,
        70000,
        64000,
        0.22,
        6500,
        0,
        780,
        0.15,
        100,
        12000,
        80,
        "winter",
    ),
    (
        "ES",
        "Spain",
        40.4,
        -3.7,
        "Europe/Madrid",
        28000,
        25000,
        30000,
        0.22,
        3500,
        7100,
        420,
        0.10,
        90,
        3000,
        78,
        "winter",
    ),
    (
        "PT",
        "Portugal",
        39.6,
        -8.0,
        "Europe/Lisbon",
        5700,
        2600,
        5600,
        0.27,
        1300,
        0,
        420,
        0.10,
        90,
        1500,
        80,
        "winter",
    ),
    (
        "NL",
        "Netherlands",
        52.1,
        5.3,
        "Europe/Amsterdam",
        13000,
        22000,
        9500,
        0.30,
        600,
        480,
        520,
        0.15,
        100,
        4000,
        78,
        "winter",
    ),
    (
        "BE",
        "Belgium",
        50.5,
        4.5,
        "Europe/Brussels",
        9500,
        8000,
        5000,
        0.27,
        500,
        4000,
        430,
        0.08,
        100,
        3000,
        75,
        "winter",
    ),
    (
        "IT",
        "Italy",
        42.5,
        12.5,
        "Europe/Rome",
        33000,
        28000,
        12000,
        0.20,
        5500,
        0,
        470,
        0.15,
        120,
        5000,
        80,
        "winter",
    ),
    (
        "GB",
        "Great Britain",
        53.5,
        -1.5,
        "Europe/London",
        30000,
        15000,
        29000,
        0.30,
        3000,
        5000,
        400,
        0.15,
        110,
        4000,
        75,
        "winter",
    ),
    (
        "US-CAL-CISO",
        "California (CAISO)",
        37.0,
        -120.0,
        "America/Los_Angeles",
        26000,
        19000,
        6500,
        0.30,
        3500,
        2250,
        430,
        0.15,
        60,
        3000,
        72,
        "summer",
    ),
    (
        "US-NY-NYIS",
        "New York (NYISO)",
        42.9,
        -75.5,
        "America/New_York",
        17500,
        3500,
        2500,
        0.28,
        3300,
        3300,
        440,
        0.25,
        50,
        2000,
        80,
        "summer",
    ),
    (
        "US-TEX-ERCO",
        "Texas (ERCOT)",
        31.0,
        -99.0,
        "America/Chicago",
        48000,
        20000,
        38000,
        0.32,
        200,
        5000,
        590,
        0.20,
        45,
        4000,
        72,
        "summer",
    ),
)

# Each row lists the Zone fields in declaration order; the table stays readable as one line each.
ZONES: dict[str, Zone] = {row[0]: Zone(*row) for row in _TABLE}
"""The supported zones by Electricity Maps zone code."""

ZONE_CODES: tuple[str, ...] = tuple(ZONES)
"""Zone codes in a stable order (Europe first, then the US)."""


REGIONS: dict[str, tuple[str, ...]] = {
    "EU": ("FR", "DE", "ES", "PT", "NL", "BE", "IT"),
    "US": ("US-CAL-CISO", "US-NY-NYIS", "US-TEX-ERCO"),
    "IBERIA": ("ES", "PT"),
    "BENELUX": ("BE", "NL"),
}
"""Region names an operator (or a model) may give where zone codes are asked for."""


def expand_zones(codes: list[str]) -> list[str]:
    """Return the zone codes `codes` names, regions (EU, US, Iberia, Benelux) expanded, sorted.

    Codes are matched without regard to case or surrounding space ("eu", " fr").

    Raises:
        UnknownZoneError: A code is neither a zone nor a region; the message lists both.
    """
    out: set[str] = set()
    for raw in codes:
        key = str(raw).strip().upper()
        if key in REGIONS:
            out.update(REGIONS[key])
        elif key in ZONES:
            out.add(key)
        else:
            raise UnknownZoneError(
                f"unknown zone {raw!r}: use zone codes ({', '.join(ZONE_CODES)}) or a region "
                f"({', '.join(REGIONS)})"
            )
    return sorted(out)


def get_zone(code: str) -> Zone:
    """Return the zone with this Electricity Maps code.

    Args:
        code: Zone code such as "FR" or "US-CAL-CISO" (exact spelling, case-sensitive).

    Raises:
        UnknownZoneError: The code is not one of the supported zones; the message lists them.
    """
    try:
        return ZONES[code]
    except (KeyError, TypeError):
        raise UnknownZoneError(
            f"unknown zone {code!r}: use one of {', '.join(ZONE_CODES)}"
        ) from None
