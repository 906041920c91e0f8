"""Demo actions: move the grid and the fleet so the console shows the platform at work.

Each action is an ordinary domain operation (ingest, submit and route, store a spike or a
curtailment window, complete work) with demo-friendly defaults; nothing here fakes results.
Settling completed work (billing, payouts, receipts) runs in the billing graph, started by
the caller.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from store import grid_repo, incident_repo, repo
from tools.broker.routing import DecisionView, route_workload
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.workloads import JobSpec, WorkloadView, load_workload, submit_workload
from tools.errors import InvalidInputError, NoGridDataError, NotFoundError
from tools.grid import ZONE_CODES, CurtailmentWindow, GridReading, GridSource, get_zone
from tools.grid.ingest import IngestReport, ingest
from tools.grid.models import floor_hour
from tools.grid.outlook import ForecastProvider
from tools.incidents.detection import (
    add_spike,
    add_surplus,
    grid_with_overrides,
)
from tools.money.settlement import complete_workload

logger = logging.getLogger(__name__)

DEMO_ORG_ID = "acme-ai"
DEMO_SOURCE = "demo"
"""Source name of curtailment windows stored by the demo (kept apart from real sources)."""
SPIKE_TARGET_GCO2 = 600.0
"""A triggered carbon spike lifts the zone's intensity to about this (and at least 3x)."""


class NewWorkload(BaseModel):
    """What the demo's "create workload" control submits."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="Mistral fine-tune", min_length=1, max_length=200)
    org_id: str = Field(default=DEMO_ORG_ID, min_length=1, max_length=64)
    gpu_count: int = Field(default=4, ge=1, le=64)
    gpu_model: str | None = Field(default=None, max_length=32)
    """None: any GPU model (the broker then has the most nodes to choose from)."""
    duration_hours: float = Field(default=8.0, gt=0, le=24 * 14)
    finish_within_hours: float | None = Field(default=None, gt=0, le=24 * 31)
    """Deadline as hours from now; None starts now. With slack the broker may schedule it later."""
    movable: bool = True
    """False for work that cannot checkpoint: once running it moves only if its node fails."""

    def job(self, now: datetime) -> JobSpec:
        """Return the broker's job spec (the deadline counted from `now`)."""
        return JobSpec(
            gpu_count=self.gpu_count,
            gpu_model=self.gpu_model,
            duration_hours=self.duration_hours,
            deadline=(
                None
                if self.finish_within_hours is None
                else now + timedelta(hours=self.finish_within_hours)
            ),
            movable=self.movable,
        )


class CreatedWorkload(BaseModel):
    """A workload the demo submitted and routed."""

    workload: WorkloadView
    decision: DecisionView


class SpikeResult(BaseModel):
    """A carbon spike stored on a zone."""

    zone: str
    workload_id: str | None
    carbon_factor: float
    carbon_before: float
    carbon_after: float
    until: datetime


class CurtailmentResult(BaseModel):
    """A curtailment window stored for a zone."""

    zone: str
    event_id: int
    start: datetime
    end: datetime
    renewable_pct: float | None
    carbon_before: float | None = None
    """gCO2/kWh the routers read before the surplus, and after it (`carbon_after`)."""
    carbon_after: float | None = None
    price_before: float | None = None
    price_after: float | None = None


def grid_cycle(
    *, session: Session, grid: GridSource, now: datetime, hours: int = 24
) -> IngestReport:
    """Read the last `hours` hours of every zone from `grid` into the store (the refresh)."""
    if not 1 <= hours <= 24 * 7:
        raise InvalidInputError(f"hours {hours!r}: refresh between 1 and 168 hours")
    span = 1 if grid.name == "live" else hours
    start = floor_hour(now) - timedelta(hours=span - 1)
    return ingest(
        session=session, source=grid, zones=list(ZONE_CODES), start=start, hours=span, now=now
    )


def create_workload(
    *,
    session: Session,
    grid: GridSource,
    now: datetime,
    spec: NewWorkload | None = None,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    forecasts: ForecastProvider | None = None,
    move_running: bool = True,
) -> CreatedWorkload:
    """Submit a workload (default "Mistral fine-tune", 4 GPUs for 8 h) and route it at once."""
    spec = spec or NewWorkload()
    job = spec.job(now)
    view = submit_workload(session=session, org_id=spec.org_id, name=spec.name, spec=job, now=now)
    decision = route_workload(
        session=session,
        grid=grid,
        workload_id=view.id,
        now=now,
        weights=weights,
        forecasts=forecasts,
        move_running=move_running,
    )
    w = load_workload(session=session, workload_id=view.id)
    return CreatedWorkload(workload=WorkloadView.of(w), decision=decision)


def _placed(session: Session, workload_id: str | None) -> tuple[str | None, str]:
    if workload_id is not None:
        w = repo.get_workload(session=session, workload_id=workload_id)
        if w is None or w.node is None or w.status not in ("routed", "running"):
            raise NotFoundError(f"workload {workload_id!r} is not routed or running")
        return w.id, w.node.zone
    for w in repo.list_workloads(session=session, statuses=["routed", "running"]):
        if w.node is not None:
            return w.id, w.node.zone
    raise NotFoundError("no routed or running workload to reroute; create one first")


def trigger_carbon_spike(
    *,
    session: Session,
    grid: GridSource,
    now: datetime,
    workload_id: str | None = None,
    zone: str | None = None,
    hours: float = 3.0,
) -> SpikeResult:
    """Store a carbon spike on a zone (default: where the newest placed workload runs).

    The incident watcher then sees the spike and reroutes the work if a node is >= 25 % better.
    """
    wid, placed_zone = (None, get_zone(zone).code) if zone else _placed(session, workload_id)
    try:
        before = grid.reading(placed_zone, now).carbon_intensity
    except NoGridDataError as exc:
        raise NoGridDataError(f"cannot spike {placed_zone!r}: {exc}") from exc
    if before is None or before <= 0:
        raise NoGridDataError(f"{placed_zone!r} has no carbon intensity now; refresh the grid")
    factor = round(min(20.0, max(3.0, SPIKE_TARGET_GCO2 / before)), 2)
    override = add_spike(
        session=session,
        zone=placed_zone,
        carbon_factor=factor,
        price_factor=1.0,
        hours=hours,
        reason="demo: carbon spike",
        now=now,
    )
    return SpikeResult(
        zone=placed_zone,
        workload_id=wid,
        carbon_factor=factor,
        carbon_before=round(before, 1),
        carbon_after=round(before * factor, 1),
        until=override.ends_at,
    )


def trigger_curtailment(
    *, session: Session, grid: GridSource, now: datetime, zone: str = "FR", hours: int = 3
) -> CurtailmentResult:
    """Make `zone` surplus from this hour for `hours`: the grid every router reads says so.

    Stores a surplus override (surplus and curtailment flags, carbon and price lowered: see
    `tools.incidents.detection.add_surplus`) and the curtailment event its alert is spoken for.
    """
    code = get_zone(zone.strip().upper()).code
    if not 1 <= hours <= 24:
        raise InvalidInputError(f"hours {hours!r}: a demo curtailment lasts 1 to 24 hours")
    start = floor_hour(now)
    active = incident_repo.active_grid_overrides(
        session=session, start=start, end=start + timedelta(hours=1)
    )
    already = any(o.zone == code and o.surplus for o in active)
    before = None if already else _reading(session, grid, code, now)
    if not already:  # pressing it again keeps one surplus (factors would multiply)
        add_surplus(session=session, zone=code, hours=hours, now=now)
    after = _reading(session, grid, code, now)
    window = CurtailmentWindow(
        zone=code,
        source="sim",
        start=start,
        end=start + timedelta(hours=hours),
        hours=hours,
        peak_surplus_mw=None,
        peak_renewable_pct=None if after is None else after.renewable_pct,
    )
    grid_repo.upsert_curtailment_events(
        session=session, windows=[window], source=DEMO_SOURCE, now=now
    )
    event = next(
        e
        for e in grid_repo.list_curtailment_events(session=session, zone=code, source=DEMO_SOURCE)
        if e.start_ts <= start < e.end_ts
    )
    return CurtailmentResult(
        zone=code,
        event_id=event.id,
        start=event.start_ts,
        end=event.end_ts,
        renewable_pct=None if after is None else after.renewable_pct,
        carbon_before=None if before is None else before.carbon_intensity,
        carbon_after=None if after is None else after.carbon_intensity,
        price_before=None if before is None else before.price_eur_per_mwh,
        price_after=None if after is None else after.price_eur_per_mwh,
    )


def _reading(session: Session, grid: GridSource, zone: str, now: datetime) -> GridReading | None:
    """Return the reading every router sees for `zone` now (overrides applied), or None."""
    try:
        return grid_with_overrides(session=session, grid=grid, now=now).reading(zone, now)
    except NoGridDataError:
        return None


def complete_workloads(
    *, session: Session, now: datetime, workload_ids: list[str] | None = None
) -> list[str]:
    """Mark routed or running workloads completed (all of them by default); return their ids."""
    if workload_ids is None:
        rows = repo.list_workloads(session=session, statuses=["routed", "running"], limit=1000)
        workload_ids = [w.id for w in rows]
    done: list[str] = []
    for wid in workload_ids:
        w = repo.get_workload(session=session, workload_id=wid)
        if w is None:
            raise NotFoundError(f"workload {wid!r} does not exist")
        if w.status in ("routed", "running"):
            complete_workload(session=session, workload_id=wid, now=now)
            done.append(wid)
    return done
