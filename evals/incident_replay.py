"""Replay a recorded grid day with injected events through the incident loop; check every workload.

A day is data (`evals/datasets/incidents/<id>.yaml`): the start time, the workloads routed at the
start (some already running), events injected at given hours (carbon or price spike, renewable
curtailment, node down or back up) and what must hold at the end for every workload and incident.
Each hour the clock moves on, due events are applied and the watcher's `run_once` scans, opens and
runs incidents (the incident graph, durable checkpoints on a fresh SQLite store).

Injection: spikes use the product's own grid overrides (`tools.incidents.detection.add_spike`); node
events use `tools.broker.fleet.set_node_status`; curtailment wraps the recorded grid so the zone
reports `curtailment=True` with its carbon intensity and price scaled by the event's `factor`
(curtailed hours are cheap, low-carbon hours), since recorded files carry no curtailment flag.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from agents.offline import OfflineChatModel
from graphs.checkpoint import open_checkpointer
from graphs.context import Context
from graphs.incident_watch import run_once
from graphs.wiring import make_forecast_provider
from store import repo
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.seed import seed_fleet
from tools.broker.fleet import set_node_status
from tools.broker.routing import JobSpec, route_workload, submit_workload
from tools.broker.workloads import set_workload_status
from tools.clock import FixedClock
from tools.errors import InvalidInputError
from tools.grid import GridReading, GridSource, RecordedGrid
from tools.incidents.detection import add_spike
from tools.integrations.incidentio import DemoAlerts

logger = logging.getLogger(__name__)
INCIDENTS_DIR = Path(__file__).resolve().parent / "datasets" / "incidents"


class DayWorkload(BaseModel):
    """A workload submitted and routed at the start of the day."""

    model_config = ConfigDict(extra="forbid")

    name: str
    gpu_count: int
    gpu_model: str | None = None
    duration_hours: float
    allowed_zones: list[str] | None = None
    denied_zones: list[str] | None = None
    running: bool = False
    """Start it right after routing."""


class DayEvent(BaseModel):
    """Something injected at `at_hour` (hours after the day's start)."""

    model_config = ConfigDict(extra="forbid")

    at_hour: int = Field(ge=0)
    kind: Literal["carbon_spike", "price_spike", "curtailment", "node_down", "node_up"]
    zone: str | None = None
    node_id: str | None = None
    factor: float = 3.0
    hours: float = 4.0


class ExpectedWorkload(BaseModel):
    """End state of one workload; empty fields are not checked."""

    model_config = ConfigDict(extra="forbid")

    status: str | None = None
    zones_in: list[str] | None = None
    not_node: str | None = None
    reroutes: int | None = None


class ExpectedIncident(BaseModel):
    """An incident that must exist at the end (in its last reported state)."""

    model_config = ConfigDict(extra="forbid")

    trigger: str
    zone: str
    state: str = "RESOLVED"
    count: int | None = Field(default=None, ge=0)
    """Exactly this many incidents with this trigger and zone over the day (None: any)."""
    stuck: list[str] | None = None
    """Workload names the ESCALATED incident's last transition must name as stuck."""


class IncidentDay(BaseModel):
    """One recorded day with injected events."""

    model_config = ConfigDict(extra="forbid")

    id: str
    description: str
    clock: AwareDatetime
    hours: int = Field(ge=1, le=48)
    workloads: list[DayWorkload]
    events: list[DayEvent]
    expected_workloads: dict[str, ExpectedWorkload]
    expected_incidents: list[ExpectedIncident]


class CurtailedGrid:
    """A grid source where some zones report curtailment (with scaled CI and price) for a while."""

    def __init__(self, inner: GridSource) -> None:
        self._inner = inner
        self._windows: list[tuple[str, datetime, datetime, float]] = []

    @property
    def name(self) -> Any:
        """Return the inner source's name."""
        return self._inner.name

    def curtail(self, zone: str, start: datetime, hours: float, factor: float) -> None:
        """Make `zone` curtail from `start` for `hours`, CI and price times `factor`."""
        self._windows.append((zone, start, start + timedelta(hours=hours), factor))

    def _apply(self, r: GridReading) -> GridReading:
        for zone, start, end, factor in self._windows:
            if zone == r.zone and start <= r.ts < end:
                return r.model_copy(
                    update={
                        "curtailment": True,
                        "surplus": True,
                        "carbon_intensity": None
                        if r.carbon_intensity is None
                        else r.carbon_intensity * factor,
                        "price_eur_per_mwh": None
                        if r.price_eur_per_mwh is None
                        else r.price_eur_per_mwh * factor,
                        "note": "injected curtailment",
                    }
                )
        return r

    def reading(self, zone: str, at: datetime) -> GridReading:
        """Return the inner reading, curtailed when inside a window."""
        return self._apply(self._inner.reading(zone, at))

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        """Return the inner series, curtailed hour by hour inside windows."""
        return [self._apply(r) for r in self._inner.series(zone, start, hours)]


def load_day(path: Path) -> IncidentDay:
    """Read and validate one incident day file.

    Raises:
        InvalidInputError: The file is not a valid day; the message names the file.
    """
    try:
        return IncidentDay.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise InvalidInputError(f"incident day {str(path)!r} is invalid: {exc}") from None


def _apply_event(event: DayEvent, sessions: Any, grid: CurtailedGrid, now: datetime) -> None:
    with sessions.begin() as session:
        if event.kind in ("carbon_spike", "price_spike"):
            carbon = event.factor if event.kind == "carbon_spike" else 1.0
            price = event.factor if event.kind == "price_spike" else 1.0
            add_spike(
                session=session,
                zone=str(event.zone),
                carbon_factor=carbon,
                price_factor=price,
                hours=event.hours,
                reason=f"eval {event.kind}",
                now=now,
            )
        elif event.kind == "curtailment":
            grid.curtail(str(event.zone), now, event.hours, event.factor)
        else:
            status = "offline" if event.kind == "node_down" else "online"
            set_node_status(session=session, node_id=str(event.node_id), status=status, now=now)


def check_day(
    day: IncidentDay, facts: dict[str, dict[str, Any]], reports: list[dict[str, Any]]
) -> list[str]:
    """Return what differs from the day's expectations (empty when everything holds)."""
    problems = []
    for name, exp in day.expected_workloads.items():
        got = facts.get(name)
        if got is None:
            problems.append(f"workload {name!r} is missing")
            continue
        if exp.status is not None and got["status"] != exp.status:
            problems.append(f"{name}: status {got['status']!r}, expected {exp.status!r}")
        if exp.zones_in is not None and got["zone"] not in exp.zones_in:
            problems.append(f"{name}: zone {got['zone']!r} not in {exp.zones_in!r}")
        if exp.not_node is not None and got["node_id"] == exp.not_node:
            problems.append(f"{name}: still on {exp.not_node!r}")
        if exp.reroutes is not None and got["reroutes"] != exp.reroutes:
            problems.append(f"{name}: {got['reroutes']} reroutes, expected {exp.reroutes}")
    unchecked = set(facts) - set(day.expected_workloads)
    if unchecked:
        problems.append(f"workloads without an expected end state: {sorted(unchecked)!r}")
    last = {r["id"]: r for r in reports}  # an incident's latest report holds its end state
    for inc in day.expected_incidents:
        same = [r for r in last.values() if r["trigger"] == inc.trigger and r["zone"] == inc.zone]
        if inc.count is not None and len(same) != inc.count:
            problems.append(
                f"{len(same)} {inc.trigger} incident(s) in {inc.zone}, expected {inc.count}"
            )
        ending = [r for r in same if r["state"] == inc.state]
        if not ending:
            problems.append(f"no {inc.state} {inc.trigger} incident in {inc.zone}")
        for name in inc.stuck or []:
            if not any(name in r["transitions"][-1]["reason"] for r in ending):
                problems.append(f"{name!r} not named as stuck by the {inc.trigger} incident")
    return problems


def replay_day(day: IncidentDay, grid_dir: Path) -> dict[str, Any]:
    """Replay one day on a fresh store; return reports, final workload facts and problems."""
    recorded = RecordedGrid(grid_dir)
    grid = CurtailedGrid(recorded)
    # The product's forecasts over the recorded history; injected curtailment is a surprise
    # that shows in readings only.
    forecasts = make_forecast_provider(recorded)
    with tempfile.TemporaryDirectory(prefix="tgtg-incident-day-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'store.db'}")
        try:
            upgrade(engine)
            sessions = make_session_factory(engine)
            start = day.clock
            ids: dict[str, str] = {}
            with sessions.begin() as session:
                seed_fleet(session=session, now=start)
                for w in day.workloads:
                    spec = JobSpec(
                        gpu_count=w.gpu_count,
                        gpu_model=w.gpu_model,
                        duration_hours=w.duration_hours,
                        allowed_zones=w.allowed_zones,
                        denied_zones=w.denied_zones,
                    )
                    view = submit_workload(
                        session=session, org_id="acme-ai", name=w.name, spec=spec, now=start
                    )
                    route_workload(
                        session=session,
                        grid=grid,
                        workload_id=view.id,
                        now=start,
                        forecasts=forecasts,
                    )
                    if w.running:
                        set_workload_status(
                            session=session, workload_id=view.id, status="running", now=start
                        )
                    ids[w.name] = view.id
            reports: list[dict[str, Any]] = []
            with open_checkpointer(engine) as saver:
                for hour in range(day.hours):
                    now = start + timedelta(hours=hour)
                    for event in (e for e in day.events if e.at_hour == hour):
                        _apply_event(event, sessions, grid, now)
                    ctx = Context(
                        model=OfflineChatModel(),
                        sessions=sessions,
                        grid=grid,
                        clock=FixedClock(now),
                        alerts=DemoAlerts(),
                        forecasts=forecasts,
                    )
                    reports += run_once(ctx, saver)
            facts: dict[str, dict[str, Any]] = {}
            with sessions() as session:
                for name, wid in ids.items():
                    wl = repo.get_workload(session=session, workload_id=wid)
                    assert wl is not None  # created above in this store
                    node = (
                        repo.get_node(session=session, node_id=wl.node_id) if wl.node_id else None
                    )
                    facts[name] = {
                        "status": wl.status,
                        "node_id": wl.node_id,
                        "zone": node.zone if node else None,
                        "reroutes": wl.reroute_count,
                    }
        finally:
            engine.dispose()
    problems = check_day(day, facts, reports)
    return {
        "id": day.id,
        "passed": not problems,
        "problems": problems,
        "workloads": facts,
        "incidents": [
            {k: r[k] for k in ("id", "zone", "trigger", "state", "states")}
            | {"reroutes": r["reroutes"]}
            for r in reports
        ],
    }


def load_days(directory: Path = INCIDENTS_DIR) -> list[IncidentDay]:
    """Return every incident day in `directory`, sorted by file name."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise InvalidInputError(f"no incident days in {str(directory)!r}")
    return [load_day(p) for p in files]
