"""Detect grid and fleet anomalies, and the grid overrides (injected spikes) every router reads.

Work *at stake* is work placed on a node: routed or running, and scheduled work that has not
started yet (its planned start is still ahead), which sits on the node it is planned for.

Triggers and thresholds (documented, tested):

* carbon_spike: a zone with work at stake whose carbon intensity now is at least
  `CARBON_SPIKE_RATIO` (1.5) times its mean over the previous 24 hours and at least
  `CARBON_SPIKE_MIN` (100 gCO2/kWh).
* price_spike: same rule on the day-ahead price: `PRICE_SPIKE_RATIO` (2.0) times the 24-hour mean
  and at least `PRICE_SPIKE_MIN` (150 EUR/MWh). When both spike together the zone gets one
  carbon_spike incident whose details carry the price figures too.
* node_offline: a node that is offline or in maintenance while work is at stake on it
  (failover: the broker moves it without the 25 % rule).
* surplus: a zone reporting curtailment now while flexible work may move in: routed or
  scheduled-not-started work elsewhere, or pending work, whose allowed and denied zones permit
  the zone; an opportunity to pull flexible work in. Curtailment with no such work is no
  incident.

Each anomaly has an open key (`zone:trigger[:node]`); the watcher opens one incident per
anomaly episode, which lasts until a pass sees the anomaly absent (`graphs.incident_watch`).
What happens next (reroutes, re-plans, escalation) is in `tools.incidents.response`.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from store import incident_repo, repo
from store.incident_models import GridOverride, Incident
from store.models import ComputeNode, Workload
from tools.errors import InvalidInputError, NoGridDataError
from tools.grid import GridReading, GridSource, get_zone
from tools.grid.models import MAX_CARBON_INTENSITY
from tools.grid.outlook import GridForecast

logger = logging.getLogger(__name__)

Trigger = Literal["carbon_spike", "price_spike", "node_offline", "surplus"]
CARBON_SPIKE_RATIO = 1.5
CARBON_SPIKE_MIN = 100.0
PRICE_SPIKE_RATIO = 2.0
PRICE_SPIKE_MIN = 150.0
BASELINE_HOURS = 24
ACTIVE = ("routed", "running")
HARMFUL: tuple[Trigger, ...] = ("node_offline", "carbon_spike", "price_spike")
"""Triggers whose affected work must leave; only these can leave work stuck (ESCALATED)."""


class Anomaly(BaseModel):
    """Something the watcher should open an incident for."""

    zone: str
    trigger: Trigger
    open_key: str
    reason: str
    details: dict[str, Any]


_HOUR_END = timedelta(minutes=59)
SURPLUS_CARBON_FACTOR = 0.4
SURPLUS_PRICE_FACTOR = 0.1
SURPLUS_RENEWABLE_PCT = 75.0
"""How an injected surplus changes a zone: spare wind and sun make power cleaner and cheaper,
and the renewable share at least 75 % (the simulator calls surplus above 70 % of demand)."""


_Override = tuple[str, datetime, datetime, float, float, bool, str]
"""zone, starts_at, ends_at, carbon factor, price factor, surplus, reason"""


class OverriddenGrid:
    """A grid source with stored overrides applied (an injected carbon spike, a surplus).

    Overlapping overrides of one zone compose: their factors multiply, and any surplus
    override marks the hour as surplus and curtailment. Readings and forecasts alike: it is a
    `tools.grid.outlook.ForecastOverlay`, so the broker's forecasts see a stored spike or
    surplus in the hours it covers (never in hours after its end).
    """

    def __init__(self, inner: GridSource, overrides: list[GridOverride]) -> None:
        self._inner = inner
        self._overrides: list[_Override] = [
            (o.zone, o.starts_at, o.ends_at, o.carbon_factor, o.price_factor, o.surplus, o.reason)
            for o in overrides
        ]

    @property
    def inner(self) -> GridSource:
        """Return the grid source without overrides."""
        return self._inner

    @property
    def name(self) -> Any:
        """Return the inner source's name (overrides do not change the source)."""
        return self._inner.name

    def _hits(self, zone: str, ts: datetime) -> list[_Override]:
        """Return the overrides of `zone` that touch the hour starting at `ts`."""
        return [o for o in self._overrides if o[0] == zone and o[1] <= ts + _HOUR_END and ts < o[2]]

    def _apply(self, r: GridReading) -> GridReading:
        hits = self._hits(r.zone, r.ts)
        if not hits:
            return r
        cf = math.prod(o[3] for o in hits)
        pf = math.prod(o[4] for o in hits)
        surplus = any(o[5] for o in hits)
        update: dict[str, Any] = {
            "carbon_intensity": None
            if r.carbon_intensity is None
            else min(r.carbon_intensity * cf, MAX_CARBON_INTENSITY),
            "price_eur_per_mwh": None if r.price_eur_per_mwh is None else r.price_eur_per_mwh * pf,
            "note": f"override x{cf:g} carbon, x{pf:g} price ("
            + "; ".join(o[6][:80] for o in hits)
            + ")",
        }
        if surplus:
            share = max(r.renewable_pct or 0.0, SURPLUS_RENEWABLE_PCT)
            update |= {"surplus": True, "curtailment": True, "renewable_pct": share}
        return r.model_copy(update=update)

    def adjust_forecast(self, forecast: GridForecast) -> GridForecast:
        """Return `forecast` with the overrides applied to the hours they cover.

        The same factors as for readings (`tools.grid.outlook.ForecastOverlay`): an injected
        spike or surplus has a known end, so a forecast made during it knows which hours it
        covers.
        """
        ci = list(forecast.carbon_intensity)
        price = list(forecast.price_eur_per_mwh)
        reasons: list[str] = []
        for i, ts in enumerate(forecast.times):
            hits = self._hits(forecast.zone, ts)
            if not hits:
                continue
            ci[i] = min(ci[i] * math.prod(o[3] for o in hits), MAX_CARBON_INTENSITY)
            p = price[i]
            price[i] = None if p is None else p * math.prod(o[4] for o in hits)
            reasons.extend(o[6][:80] for o in hits if o[6][:80] not in reasons)
        if not reasons:
            return forecast
        note = f"overrides applied ({'; '.join(reasons)})"
        return forecast.model_copy(
            update={
                "carbon_intensity": tuple(ci),
                "price_eur_per_mwh": tuple(price),
                "note": f"{forecast.note}; {note}" if forecast.note else note,
            }
        )

    def reading(self, zone: str, at: datetime) -> GridReading:
        """Return the inner reading with any override applied."""
        return self._apply(self._inner.reading(zone, at))

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        """Return the inner series with overrides applied hour by hour."""
        return [self._apply(r) for r in self._inner.series(zone, start, hours)]


def add_spike(
    *,
    session: Session,
    zone: str,
    carbon_factor: float,
    price_factor: float,
    hours: float,
    reason: str,
    now: datetime,
    surplus: bool = False,
) -> GridOverride:
    """Store an override multiplying a zone's carbon (and price) from now for `hours`.

    With `surplus`, the zone also reads as having spare renewables (surplus and curtailment)
    for those hours: `add_surplus` uses it.
    """
    code = get_zone(zone.strip().upper()).code
    if not 0 < carbon_factor <= 20 or not 0 < price_factor <= 20:
        raise InvalidInputError(
            f"factors {carbon_factor!r}/{price_factor!r}: use values in (0, 20]"
        )
    if not 0 < hours <= 72:
        raise InvalidInputError(f"hours {hours!r}: a spike lasts between 0 and 72 hours")
    start = now.replace(minute=0, second=0, microsecond=0)
    return incident_repo.add_grid_override(
        session=session,
        override=GridOverride(
            zone=code,
            carbon_factor=carbon_factor,
            price_factor=price_factor,
            surplus=surplus,
            starts_at=start,
            ends_at=now + timedelta(hours=hours),
            reason=reason,
            created_at=now,
        ),
    )


def add_surplus(*, session: Session, zone: str, hours: float, now: datetime) -> GridOverride:
    """Store a renewable surplus for `zone` from this hour for `hours`.

    Every router, the map and the header read the zone as surplus and curtailing, with carbon
    x`SURPLUS_CARBON_FACTOR`, price x`SURPLUS_PRICE_FACTOR` and a renewable share of at least
    `SURPLUS_RENEWABLE_PCT`, so it pulls flexible work.
    """
    return add_spike(
        session=session,
        zone=zone,
        carbon_factor=SURPLUS_CARBON_FACTOR,
        price_factor=SURPLUS_PRICE_FACTOR,
        hours=hours,
        reason="renewable surplus",
        now=now,
        surplus=True,
    )


def grid_with_overrides(*, session: Session, grid: GridSource, now: datetime) -> GridSource:
    """Return `grid` wrapped with the overrides active within two days of `now`.

    Wrapping an already wrapped grid replaces its overrides (they never apply twice).
    """
    if isinstance(grid, OverriddenGrid):
        grid = grid.inner
    overrides = incident_repo.active_grid_overrides(
        session=session, start=now - timedelta(days=2), end=now + timedelta(days=2)
    )
    return OverriddenGrid(grid, list(overrides)) if overrides else grid


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    return sum(known) / len(known) if known else None


def _spikes(zone: str, grid: GridSource, now: datetime) -> list[Anomaly]:
    try:
        current = grid.reading(zone, now)
        history = grid.series(zone, now - timedelta(hours=BASELINE_HOURS), BASELINE_HOURS)
    except NoGridDataError:
        return []
    found: list[Anomaly] = []
    rules = (
        ("carbon_spike", "carbon_intensity", CARBON_SPIKE_RATIO, CARBON_SPIKE_MIN, "gCO2/kWh"),
        ("price_spike", "price_eur_per_mwh", PRICE_SPIKE_RATIO, PRICE_SPIKE_MIN, "EUR/MWh"),
    )
    for trigger, field, ratio, minimum, unit in rules:
        value = getattr(current, field)
        base = _mean([getattr(r, field) for r in history])
        if value is None or base is None or base <= 0:
            continue
        if value >= ratio * base and value >= minimum:
            found.append(
                Anomaly(
                    zone=zone,
                    trigger=trigger,
                    open_key=f"{zone}:{trigger}",
                    reason=f"{zone} {field} {value:.0f} {unit} is {value / base:.1f}x its "
                    f"{BASELINE_HOURS} h mean {base:.0f} (threshold {ratio}x and {minimum:g})",
                    details={
                        "value": round(value, 1),
                        "baseline": round(base, 1),
                        "ratio": ratio,
                        "minimum": minimum,
                        "note": current.note,
                    },
                )
            )
    if len(found) == 2:
        # One incident per zone: a carbon spike that comes with a price spike is one event.
        carbon, price = found
        merged = carbon.model_copy(
            update={
                "reason": f"{carbon.reason}; {price.reason}",
                "details": {**carbon.details, "price": price.details},
            }
        )
        return [merged]
    return found


def placements_at_stake(session: Session, now: datetime) -> list[tuple[Workload, ComputeNode]]:
    """Return the work at stake with its node: routed, running, and scheduled-not-started work."""
    stmt = (
        select(Workload, ComputeNode)
        .join(ComputeNode, Workload.node_id == ComputeNode.id)
        .where(
            Workload.status.in_(ACTIVE)
            | ((Workload.status == "scheduled") & (Workload.planned_start_at > now))
        )
        .order_by(Workload.id)
    )
    return [(w, n) for w, n in session.execute(stmt).all()]


def pending_work(session: Session) -> list[Workload]:
    """Return the pending workloads (not placed yet), oldest first."""
    stmt = (
        select(Workload)
        .where(Workload.status == "pending")
        .order_by(Workload.submitted_at, Workload.id)
    )
    return list(session.scalars(stmt))


def may_run_in(workload: Workload, zone: str) -> bool:
    """Return True when the workload's allowed and denied zones let it run in `zone`."""
    allowed = not workload.allowed_zones or zone in workload.allowed_zones
    return allowed and zone not in (workload.denied_zones or [])


def detect_anomalies(*, session: Session, grid: GridSource, now: datetime) -> list[Anomaly]:
    """Return the anomalies present now (read-only), one per zone/trigger or offline node."""
    active = placements_at_stake(session, now)
    found: list[Anomaly] = []
    for node_id in sorted({n.id for _, n in active if n.status != "online"}):
        node = next(n for _, n in active if n.id == node_id)
        found.append(
            Anomaly(
                zone=node.zone,
                trigger="node_offline",
                open_key=f"{node.zone}:node_offline:{node.id}",
                reason=f"node {node.id} is {node.status} while it holds routed, running or "
                "scheduled work",
                details={"node_id": node.id, "status": node.status},
            )
        )
    for zone in sorted({n.zone for _, n in active}):
        found.extend(_spikes(zone, grid, now))
    waiting = [(w, n) for w, n in active if w.status != "running"]
    pending = pending_work(session)
    for zone in sorted({n.zone for n in repo.list_nodes(session=session, status="online")}):
        if not any(n.zone != zone and may_run_in(w, zone) for w, n in waiting) and not any(
            may_run_in(w, zone) for w in pending
        ):
            continue
        try:
            reading = grid.reading(zone, now)
        except NoGridDataError:
            continue
        if reading.curtailment:
            found.append(
                Anomaly(
                    zone=zone,
                    trigger="surplus",
                    open_key=f"{zone}:surplus",
                    reason=(
                        f"{zone} is curtailing renewables now ({reading.renewable_pct}% "
                        "renewable); flexible work elsewhere may move in"
                    ),
                    details={"renewable_pct": reading.renewable_pct},
                )
            )
    return found


def still_present(
    *, session: Session, grid: GridSource, incident: Incident, now: datetime
) -> Anomaly | None:
    """Return the incident's anomaly if it still holds now, else None."""
    for anomaly in detect_anomalies(session=session, grid=grid, now=now):
        if anomaly.open_key == incident.open_key:
            return anomaly
    return None
