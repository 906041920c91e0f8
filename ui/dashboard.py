"""Aggregate what the operator dashboard and the carbon report show (read-only).

Grid figures are read through any stored overrides (demo spikes), so the console shows what
the broker and the incident agent see.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store import incident_repo
from store.audio_models import AudioAlert
from store.models import CarbonReceipt, ComputeNode, CurtailmentEvent, Workload
from tools.broker.fleet import node_views
from tools.errors import InvalidInputError, NoGridDataError
from tools.grid import ZONE_CODES, ZONES, GridSource, get_zone
from tools.grid.models import floor_hour
from tools.incidents.detection import grid_with_overrides

MAX_SERIES_HOURS = 24 * 14


class ZonePoint(BaseModel):
    """A zone's position and its grid now (for the map)."""

    zone: str
    name: str
    lat: float
    lon: float
    carbon_intensity: float | None
    price_eur_per_mwh: float | None
    renewable_pct: float | None
    surplus: bool | None
    curtailment: bool | None
    note: str | None
    error: str | None


class SeriesPoint(BaseModel):
    """One hour of one zone's grid."""

    zone: str
    ts: datetime
    carbon_intensity: float | None
    price_eur_per_mwh: float | None
    renewable_pct: float | None
    surplus: bool
    curtailment: bool


class Dashboard(BaseModel):
    """Headline figures of the platform now."""

    at: datetime
    grid_source: str
    workloads_by_status: dict[str, int]
    nodes_total: int
    nodes_online: int
    gpus_total: int
    gpus_free: int
    fleet_utilization: float
    greenest_zone: str | None
    greenest_carbon_intensity: float | None
    dirtiest_zone: str | None
    dirtiest_carbon_intensity: float | None
    curtailing_zones: list[str]
    open_incidents: int
    audio_alerts: int
    co2_kg_active: float
    """Estimated CO2 of routed and running work."""
    co2_kg_completed: float
    """CO2 on the carbon receipts of completed work."""
    co2_avoided_kg: float
    """CO2 avoided versus the carbon-agnostic choice, from carbon receipts."""


class CarbonLine(BaseModel):
    """Energy and CO2 of the work of one zone or organisation."""

    key: str
    workloads: int
    energy_kwh: float
    co2_kg: float
    co2_avoided_kg: float


class CarbonReport(BaseModel):
    """Energy and CO2 of placed work, by zone and by organisation."""

    at: datetime
    workloads: int
    energy_kwh: float
    co2_kg: float
    co2_avoided_kg: float
    receipts: int
    by_zone: list[CarbonLine]
    by_org: list[CarbonLine]


def _known(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def zone_snapshot(*, session: Session, grid: GridSource, now: datetime) -> list[ZonePoint]:
    """Return every zone with its reading now (or the error that prevented one)."""
    effective = grid_with_overrides(session=session, grid=grid, now=now)
    out: list[ZonePoint] = []
    for code in ZONE_CODES:
        zone = ZONES[code]
        base = dict(zone=code, name=zone.name, lat=zone.lat, lon=zone.lon)
        try:
            r = effective.reading(code, now)
        except NoGridDataError as exc:
            out.append(
                ZonePoint(
                    **base,
                    carbon_intensity=None,
                    price_eur_per_mwh=None,
                    renewable_pct=None,
                    surplus=None,
                    curtailment=None,
                    note=None,
                    error=str(exc),
                )
            )
            continue
        out.append(
            ZonePoint(
                **base,
                carbon_intensity=_known(r.carbon_intensity),
                price_eur_per_mwh=_known(r.price_eur_per_mwh),
                renewable_pct=_known(r.renewable_pct),
                surplus=r.surplus,
                curtailment=r.curtailment,
                note=r.note,
                error=None,
            )
        )
    return out


def zone_series(
    *,
    session: Session,
    grid: GridSource,
    zones: list[str],
    now: datetime,
    hours_back: int = 24,
    hours_ahead: int = 0,
) -> list[SeriesPoint]:
    """Return hourly CI, price and surplus flags of `zones` around `now`.

    Raises:
        InvalidInputError: The window is empty or longer than two weeks.
        UnknownZoneError: A zone is not supported.
    """
    hours = hours_back + hours_ahead
    if hours_back < 0 or hours_ahead < 0 or not 0 < hours <= MAX_SERIES_HOURS:
        raise InvalidInputError(
            f"window {hours_back!r} h back + {hours_ahead!r} h ahead: use 1 to "
            f"{MAX_SERIES_HOURS} hours in total"
        )
    effective = grid_with_overrides(session=session, grid=grid, now=now)
    start = floor_hour(now) - timedelta(hours=hours_back)
    out: list[SeriesPoint] = []
    for code in zones:
        get_zone(code)
        for r in effective.series(code, start, hours):
            out.append(
                SeriesPoint(
                    zone=code,
                    ts=r.ts,
                    carbon_intensity=_known(r.carbon_intensity),
                    price_eur_per_mwh=_known(r.price_eur_per_mwh),
                    renewable_pct=_known(r.renewable_pct),
                    surplus=bool(r.surplus),
                    curtailment=bool(r.curtailment),
                )
            )
    return out


def dashboard(*, session: Session, grid: GridSource, now: datetime) -> Dashboard:
    """Return the headline figures: work by status, fleet capacity, greenest zone, alerts."""
    statuses = Counter(
        dict(session.execute(select(Workload.status, func.count()).group_by(Workload.status)).all())
    )
    fleet = node_views(session=session)
    online = [n for n in fleet if n.status == "online"]
    gpus = sum(n.gpu_count for n in fleet)
    busy = sum(n.gpu_count - n.free_gpus for n in fleet)
    known = [
        z
        for z in zone_snapshot(session=session, grid=grid, now=now)
        if z.carbon_intensity is not None
    ]
    greenest = min(known, key=lambda z: z.carbon_intensity or 0.0, default=None)
    dirtiest = max(known, key=lambda z: z.carbon_intensity or 0.0, default=None)
    curtailing = sorted(
        {z.zone for z in known if z.curtailment}
        | set(
            session.scalars(
                select(CurtailmentEvent.zone).where(
                    CurtailmentEvent.start_ts <= now, CurtailmentEvent.end_ts > now
                )
            )
        )
    )
    active_co2 = session.scalar(
        select(func.coalesce(func.sum(Workload.co2_kg_estimate), 0.0)).where(
            Workload.status.in_(("routed", "running"))
        )
    )
    receipts = session.execute(
        select(
            func.coalesce(func.sum(CarbonReceipt.co2_kg), 0.0),
            func.coalesce(func.sum(CarbonReceipt.co2_avoided_kg), 0.0),
        )
    ).one()
    return Dashboard(
        at=now,
        grid_source=str(grid.name),
        workloads_by_status={
            s: int(statuses.get(s, 0))
            for s in (
                "pending",
                "scheduled",
                "routed",
                "running",
                "completed",
                "failed",
                "cancelled",
            )
        },
        nodes_total=len(fleet),
        nodes_online=len(online),
        gpus_total=gpus,
        gpus_free=sum(n.free_gpus for n in online),
        fleet_utilization=round(busy / gpus, 4) if gpus else 0.0,
        greenest_zone=greenest.zone if greenest else None,
        greenest_carbon_intensity=greenest.carbon_intensity if greenest else None,
        dirtiest_zone=dirtiest.zone if dirtiest else None,
        dirtiest_carbon_intensity=dirtiest.carbon_intensity if dirtiest else None,
        curtailing_zones=curtailing,
        open_incidents=len(incident_repo.list_incidents(session=session, open_only=True)),
        audio_alerts=int(session.scalar(select(func.count()).select_from(AudioAlert)) or 0),
        co2_kg_active=round(float(active_co2 or 0.0), 4),
        co2_kg_completed=round(float(receipts[0]), 4),
        co2_avoided_kg=round(float(receipts[1] or 0.0), 4),  # coalesce: never NULL
    )


def _lines(rows: dict[str, list[float]]) -> list[CarbonLine]:
    lines = [
        CarbonLine(
            key=k,
            workloads=int(v[0]),
            energy_kwh=round(v[1], 4),
            co2_kg=round(v[2], 4),
            co2_avoided_kg=round(v[3], 4),
        )
        for k, v in rows.items()
    ]
    return sorted(lines, key=lambda line: (-line.co2_kg, line.key))


def carbon_report(*, session: Session, now: datetime) -> CarbonReport:
    """Return energy and CO2 of placed work: receipts for completed work, estimates otherwise."""
    receipts = {r.workload_id: r for r in session.scalars(select(CarbonReceipt))}
    rows = session.execute(
        select(Workload, ComputeNode.zone)
        .join(ComputeNode, Workload.node_id == ComputeNode.id)
        .where(Workload.status.in_(("routed", "running", "completed")))
    ).all()
    by_zone: dict[str, list[float]] = {}
    by_org: dict[str, list[float]] = {}
    total = [0.0, 0.0, 0.0, 0.0]
    for w, zone in rows:
        receipt = receipts.get(w.id)
        energy = receipt.energy_kwh if receipt else (w.energy_kwh_estimate or 0.0)
        co2 = receipt.co2_kg if receipt else (w.co2_kg_estimate or 0.0)
        avoided = (receipt.co2_avoided_kg or 0.0) if receipt else 0.0
        for acc in (
            by_zone.setdefault(zone, [0.0] * 4),
            by_org.setdefault(w.org_id, [0.0] * 4),
            total,
        ):
            acc[0] += 1
            acc[1] += energy
            acc[2] += co2
            acc[3] += avoided
    return CarbonReport(
        at=now,
        workloads=int(total[0]),
        energy_kwh=round(total[1], 4),
        co2_kg=round(total[2], 4),
        co2_avoided_kg=round(total[3], 4),
        receipts=len(receipts),
        by_zone=_lines(by_zone),
        by_org=_lines(by_org),
    )


class CurtailmentView(BaseModel):
    """A stored curtailment window."""

    id: int
    zone: str
    start: datetime
    end: datetime
    hours: int
    source: str
    peak_renewable_pct: float | None
    peak_surplus_mw: float | None


def curtailment_events(
    *, session: Session, now: datetime, since: timedelta = timedelta(hours=24), limit: int = 100
) -> list[CurtailmentView]:
    """Return curtailment events that end after `now - since`, soonest first."""
    rows = session.scalars(
        select(CurtailmentEvent)
        .where(CurtailmentEvent.end_ts >= now - since)
        .order_by(CurtailmentEvent.start_ts, CurtailmentEvent.zone)
        .limit(limit)
    )
    return [
        CurtailmentView(
            id=e.id,
            zone=e.zone,
            start=e.start_ts,
            end=e.end_ts,
            hours=e.hours,
            source=e.source,
            peak_renewable_pct=e.peak_renewable_pct,
            peak_surplus_mw=e.peak_surplus_mw,
        )
        for e in rows
    ]
