"""The console's /api/v1 routes: analytics, alerts, incidents and demo actions.

`register(app, svc, require_key)` adds the routes and the console runtime, started in the app's
lifespan.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tools.grid.zones import ZoneCode
from tools.incidents import alerts
from tools.incidents.ports import SpeechError
from tools.money.profitability import GroupBy, ProfitLine
from ui import console_actions as actions
from ui import dashboard as analytics
from ui import demo, demo_flow
from ui.api_input import MAX_STRING_CHARS, ApiInput, Id
from ui.console_runtime import ConsoleRuntime
from ui.services import Services

logger = logging.getLogger(__name__)


class ConsoleInfo(BaseModel):
    """Who answers the chat and what the background loop last did."""

    model: str
    loop_interval_s: float
    last_pass: dict[str, Any]
    last_error: str | None


class GridCycleIn(ApiInput):
    """How many hours of grid to read."""

    hours: int = Field(default=24, ge=1, le=168)


class RerouteIn(ApiInput):
    """Which workload's zone gets the carbon spike (default: the newest placed one)."""

    workload_id: Id | None = None


class CurtailmentIn(ApiInput):
    """Which zone curtails renewables, and for how long."""

    zone: ZoneCode = "FR"
    hours: int = Field(default=3, ge=1, le=24)


class CompleteIn(ApiInput):
    """Which workloads to complete (default: every routed or running one)."""

    workload_ids: list[Id] | None = Field(default=None, max_length=100)


class NewWorkloadIn(demo.NewWorkload):
    """The demo's "create workload" body, held to the API's input rules (finite, bounded)."""

    model_config = ConfigDict(allow_inf_nan=False, str_max_length=MAX_STRING_CHARS)


async def _rt(request: Request) -> ConsoleRuntime:
    # async: FastAPI would run a plain function dependency in the thread pool.
    return request.app.state.console


RuntimeDep = Annotated[ConsoleRuntime, Depends(_rt)]


def _read_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/console", response_model=ConsoleInfo, tags=["meta"])
    def console(rt: RuntimeDep) -> ConsoleInfo:
        """Report which model answers the chat and the background loop's last pass."""
        return ConsoleInfo(
            model=rt.model_label,
            loop_interval_s=rt.config.loop_interval_s,
            last_pass=rt.last_pass,
            last_error=rt.last_error,
        )

    @router.get("/analytics/dashboard", response_model=analytics.Dashboard, tags=["analytics"])
    def dashboard(rt: RuntimeDep) -> analytics.Dashboard:
        """Return the headline figures: work by status, fleet capacity, zones, alerts, CO2."""
        now = rt.svc.clock.now()
        return rt.cached(
            "dashboard",
            lambda: rt.read(lambda s: analytics.dashboard(session=s, grid=rt.svc.grid(), now=now)),
        )

    @router.get(
        "/analytics/carbon_report", response_model=analytics.CarbonReport, tags=["analytics"]
    )
    def carbon_report(rt: RuntimeDep) -> analytics.CarbonReport:
        """Return energy and CO2 of placed work, by zone and by organisation."""
        now = rt.svc.clock.now()
        return rt.read(lambda s: analytics.carbon_report(session=s, now=now))

    @router.get("/analytics/series", response_model=list[analytics.SeriesPoint], tags=["analytics"])
    def series(
        rt: RuntimeDep,
        zone: Annotated[list[ZoneCode], Query(min_length=1, max_length=11)],
        hours_back: Annotated[int, Query(ge=0, le=168)] = 24,
        hours_ahead: Annotated[int, Query(ge=0, le=48)] = 0,
    ) -> list[analytics.SeriesPoint]:
        """Return hourly carbon intensity, price and surplus flags of zones around now."""
        now = rt.svc.clock.now()
        return rt.read(
            lambda s: analytics.zone_series(
                session=s,
                grid=rt.svc.grid(),
                zones=list(dict.fromkeys(zone)),
                now=now,
                hours_back=hours_back,
                hours_ahead=hours_ahead,
            )
        )

    @router.get("/analytics/profitability", response_model=list[ProfitLine], tags=["analytics"])
    def profitability(rt: RuntimeDep, group_by: GroupBy = "workload") -> list[ProfitLine]:
        """Return fee, chain costs, margin and carbon ROI per workload, organisation or node."""
        return actions.profitability(rt, group_by)

    @router.get("/alerts", response_model=list[alerts.AudioAlertView], tags=["alerts"])
    def list_alerts(
        rt: RuntimeDep,
        kind: alerts.AlertKind | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[alerts.AudioAlertView]:
        """List spoken alerts (curtailment events and incidents), newest first."""
        return rt.read(lambda s: alerts.list_audio_alerts(session=s, kind=kind, limit=limit))

    @router.get(
        "/alerts/{alert_id}/audio",
        tags=["alerts"],
        response_class=FileResponse,
        responses={200: {"content": {"audio/wav": {}}}, 404: {}},
    )
    def alert_audio(
        rt: RuntimeDep, alert_id: Annotated[int, Path(ge=1, le=2**31 - 1)]
    ) -> FileResponse:
        """Return the WAV of one spoken alert."""
        path = rt.read(
            lambda s: alerts.audio_alert_file(
                session=s, data_dir=rt.svc.settings.data_dir, alert_id=alert_id
            )
        )
        return FileResponse(path, media_type="audio/wav")

    @router.get("/incidents", response_model=list[alerts.IncidentTimeline], tags=["alerts"])
    def incidents(
        rt: RuntimeDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
    ) -> list[alerts.IncidentTimeline]:
        """List incidents, newest first, with their timeline and reroutes."""
        return rt.read(lambda s: alerts.incident_timelines(session=s, limit=limit))

    return router


def _demo_router(require_key: Callable[..., None]) -> APIRouter:
    router = APIRouter(prefix="/api/v1/demo", tags=["demo"], dependencies=[Depends(require_key)])

    @router.post("/simulate/grid_cycle", response_model=actions.StepResult)
    def grid_cycle(rt: RuntimeDep, body: GridCycleIn | None = None) -> actions.StepResult:
        """Read the last hours of every zone into the store (the grid cycle)."""
        return actions.refresh_grid(rt, (body or GridCycleIn()).hours)

    @router.post("/simulate/workload", response_model=actions.StepResult, status_code=201)
    def workload(rt: RuntimeDep, body: NewWorkloadIn | None = None) -> actions.StepResult:
        """Submit a workload (default "Mistral fine-tune") and route it to the best node."""
        return actions.create_workload(rt, body or demo.NewWorkload())

    @router.post("/simulate/reroute", response_model=actions.StepResult)
    def reroute(rt: RuntimeDep, body: RerouteIn | None = None) -> actions.StepResult:
        """Spike carbon where a workload runs and let the incident agent reroute it."""
        return actions.trigger_reroute(rt, (body or RerouteIn()).workload_id)

    @router.post("/simulate/curtailment", response_model=actions.StepResult)
    def curtailment(rt: RuntimeDep, body: CurtailmentIn | None = None) -> actions.StepResult:
        """Make a zone curtail renewables now and speak the alert."""
        b = body or CurtailmentIn()
        return actions.trigger_curtailment(rt, b.zone, b.hours)

    @router.post("/simulate/complete", response_model=actions.StepResult)
    def complete(rt: RuntimeDep, body: CompleteIn | None = None) -> actions.StepResult:
        """Complete workloads, then bill, pay gamer nodes and mint carbon receipts."""
        return actions.complete_workloads(rt, (body or CompleteIn()).workload_ids)

    @router.post("/flow/{step}", response_model=actions.StepResult)
    def flow(rt: RuntimeDep, step: Annotated[int, Path(ge=1, le=7)]) -> actions.StepResult:
        """Run one step (1-7) of the guided demo flow."""
        return demo_flow.run_step(rt, step)

    return router


def register(app: FastAPI, svc: Services, require_key: Callable[..., None]) -> None:
    """Add the console routes and the console runtime to `app`."""
    config = svc.settings
    app.state.console = ConsoleRuntime(svc, config)
    app.include_router(_read_router())
    app.include_router(_demo_router(require_key))

    @app.exception_handler(SpeechError)
    async def _speech_error(_: Request, exc: SpeechError) -> JSONResponse:
        return JSONResponse({"detail": f"audio alert failed: {exc}"}, status_code=503)

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            a.state.console.start()
            try:
                yield state
            finally:
                a.state.console.stop()

    app.router.lifespan_context = lifespan
