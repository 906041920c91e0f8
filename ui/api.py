"""The JSON REST API under /api/v1 (FastAPI). Writes need the `X-API-Key` header."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from store import repo
from store.models import Organization
from tools import errors
from tools.broker.fleet import NodeStatus, NodeView, node_views, seed_demo, set_node_status
from tools.broker.planner import Objective
from tools.broker.routing import DecisionView, reroute_workload, route_workload
from tools.broker.scheduling import start_now
from tools.broker.workloads import (
    JobSpec,
    WorkloadStatus,
    WorkloadView,
    load_workload,
    set_workload_status,
    submit_workload,
)
from tools.grid import ZONE_CODES, ZONES, GridReading
from ui import api_access, api_input
from ui.api_chat import register as register_chat_api
from ui.api_console import register as register_console_api
from ui.api_docs import register_docs
from ui.api_input import MAX_ID_CHARS, MAX_STRING_CHARS, Id
from ui.api_money import register as register_money_api
from ui.metrics import register_metrics
from ui.services import Services

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

logger = logging.getLogger(__name__)

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False)
SERVICES = ("crusoe", "electricitymaps", "stripe", "solana", "elevenlabs", "incidentio", "paid")

_STATUS_BY_ERROR: list[tuple[type[errors.DomainError], int]] = [
    (errors.NotFoundError, 404),
    (errors.IllegalTransitionError, 409),
    (errors.ConflictError, 409),
    (errors.RerouteRefusedError, 409),
    (errors.PermissionDeniedError, 403),
    (errors.NoGridDataError, 503),
    (errors.DomainError, 422),
]


ZoneName = Annotated[str, Field(min_length=1, max_length=64)]
WorkloadId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]
NodeId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]


class NodeStatusIn(BaseModel):
    """A node's new status: offline or maintenance sends its work elsewhere (failover)."""

    model_config = ConfigDict(extra="forbid")
    status: NodeStatus


class WorkloadIn(JobSpec):
    """A workload submission: who, what, and the job's requirements (finite, bounded values)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=MAX_STRING_CHARS)

    org_id: Id = Field(description="Customer organisation id.")
    name: str = Field(min_length=1, max_length=200, description="A name people recognise.")
    gpu_model: str | None = Field(
        None, max_length=32, description="Required GPU model, e.g. H100; any if None."
    )
    allowed_zones: list[ZoneName] | None = Field(
        None, max_length=64, description="Only these zones, if given."
    )
    denied_zones: list[ZoneName] | None = Field(
        None, max_length=64, description="Never these zones."
    )
    max_carbon_intensity: float | None = Field(
        None,
        gt=0,
        le=100_000,
        description="Refuse zones whose current gCO2/kWh is above this.",
    )


class WorkloadTextIn(api_input.ApiInput):
    """A workload in free text; the chat model reads it (the offline model without a key)."""

    org_id: Id = Field(description="Customer organisation id.")
    name: str = Field(min_length=1, max_length=200, description="A name people recognise.")
    text: str = Field(
        min_length=1,
        max_length=2_000,
        description="The job, e.g. '4 H100 for 6 hours in the EU, done by tomorrow 9:00 UTC'.",
    )


class Health(BaseModel):
    """Service health and which integrations run in demo mode."""

    status: str
    database: str
    grid_source: str
    demo_mode: dict[str, bool]
    time: datetime


class ZoneAnalytics(BaseModel):
    """A zone's current reading and the fleet in it."""

    zone: str
    name: str
    reading: GridReading | None
    error: str | None
    nodes: int
    free_gpus: int


def _services(request: Request) -> Services:
    return request.app.state.services


def _session(request: Request) -> Iterator[Session]:
    with _services(request).sessions.begin() as session:
        yield session


SessionDep = Annotated[Session, Depends(_session)]


def create_app(svc: Services) -> FastAPI:
    """Build the FastAPI app over `svc`; the database is migrated and seeded on first start."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with svc.sessions.begin() as session:
            if repo.count_rows(session=session, model=Organization) == 0:
                report = seed_demo(session=session, grid=svc.grid("sim"), now=svc.clock.now())
                logger.info("seeded an empty database: %s", report)
        yield

    app = FastAPI(
        title="Too Green To Go",
        version="0.1.0",
        description="Routes GPU workloads to wherever clean energy is cheapest.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    register_docs(app)
    register_metrics(app, svc)
    app.state.services = svc
    expected_key = svc.api_key()

    def require_key(key: Annotated[str | None, Depends(API_KEY_HEADER)]) -> None:
        if not api_access.key_matches(key, expected_key):
            raise HTTPException(401, "missing or wrong X-API-Key header; `make run` prints the key")

    @app.exception_handler(errors.DomainError)
    async def _domain_error(_: Request, exc: errors.DomainError) -> JSONResponse:
        status = next(code for cls, code in _STATUS_BY_ERROR if isinstance(exc, cls))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.get("/api/v1/health", response_model=Health, tags=["meta"])
    def health(session: SessionDep) -> Health:
        """Report liveness, the database and which integrations are in demo mode."""
        repo.count_rows(session=session, model=Organization)
        return Health(
            status="ok",
            database=svc.engine.url.get_backend_name(),
            grid_source=svc.settings.grid_source,
            demo_mode={name: svc.settings.demo_mode(name) for name in SERVICES},
            time=svc.clock.now(),
        )

    @app.get("/api/v1/workloads", response_model=list[WorkloadView], tags=["workloads"])
    def list_workloads(
        session: SessionDep,
        status: Annotated[list[WorkloadStatus] | None, Query(max_length=10)] = None,
        org_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[WorkloadView]:
        """List workloads, newest first."""
        rows = repo.list_workloads(session=session, statuses=status, org_id=org_id, limit=limit)
        return [WorkloadView.of(w) for w in rows]

    @app.post(
        "/api/v1/workloads",
        response_model=WorkloadView,
        status_code=201,
        tags=["workloads"],
        dependencies=[Depends(require_key)],
    )
    def submit(body: WorkloadIn, session: SessionDep) -> WorkloadView:
        """Submit a workload; it waits as pending until routed."""
        spec = JobSpec(**body.model_dump(exclude={"org_id", "name"}))
        return submit_workload(
            session=session, org_id=body.org_id, name=body.name, spec=spec, now=svc.clock.now()
        )

    chat_models: list[BaseChatModel] = []

    def chat_model() -> BaseChatModel:
        if not chat_models:
            from agents.models import make_chat_model

            chat_models.append(make_chat_model(svc.settings.model_endpoint(), clock=svc.clock))
        return chat_models[0]

    @app.post(
        "/api/v1/workloads/describe",
        response_model=WorkloadView,
        status_code=201,
        tags=["workloads"],
        dependencies=[Depends(require_key)],
    )
    def submit_text(body: WorkloadTextIn, session: SessionDep) -> WorkloadView:
        """Submit a workload described in free text; it waits as pending until routed."""
        from agents.workload import evaluate_workload

        spec = evaluate_workload(body.text, model=chat_model(), now=svc.clock.now())
        missing = spec.missing()
        if missing:
            raise HTTPException(
                422, f"the description {body.text!r} does not say {', '.join(missing)}; add it"
            )
        return submit_workload(
            session=session,
            org_id=body.org_id,
            name=body.name,
            spec=spec.to_job_spec(),
            now=svc.clock.now(),
        )

    @app.get("/api/v1/workloads/{workload_id}", response_model=WorkloadView, tags=["workloads"])
    def get_workload(workload_id: WorkloadId, session: SessionDep) -> WorkloadView:
        """Return one workload."""
        return WorkloadView.of(load_workload(session=session, workload_id=workload_id))

    @app.put(
        "/api/v1/workloads/{workload_id}/route",
        response_model=DecisionView,
        tags=["workloads"],
        dependencies=[Depends(require_key)],
    )
    def route(
        workload_id: WorkloadId,
        objective: Annotated[
            Objective,
            Query(description="What a later start must lower: carbon (kg CO2) or composite."),
        ] = "carbon",
    ) -> DecisionView:
        """Place a pending workload where and when it is greenest (409 once it is placed).

        Work without slack starts now (`routed`); work whose deadline leaves room for a greener
        forecast window is `scheduled` for it. The answer says `start_at`, `node`, `co2_kg`,
        `co2_kg_if_started_now`, `saving_pct` and `why`.
        """
        # The forecasts are fetched before the write transaction opens, not under its lock.
        with svc.sessions() as session:
            spec = WorkloadView.of(load_workload(session=session, workload_id=workload_id)).spec()
        svc.warm_forecasts(spec)
        with svc.sessions.begin() as session:
            return route_workload(
                session=session,
                grid=svc.effective_grid(session),
                workload_id=workload_id,
                now=svc.clock.now(),
                weights=svc.weights,
                objective=objective,
                forecasts=svc.forecasts(),
                move_running=svc.settings.move_running_work,
            )

    @app.put(
        "/api/v1/workloads/{workload_id}/reroute",
        response_model=DecisionView,
        tags=["workloads"],
        dependencies=[Depends(require_key)],
    )
    def reroute(workload_id: WorkloadId, session: SessionDep) -> DecisionView:
        """Move a placed workload if a node is >= 25 % better (at most 5 moves); always recorded."""
        return reroute_workload(
            session=session,
            grid=svc.effective_grid(session),
            workload_id=workload_id,
            now=svc.clock.now(),
            weights=svc.weights,
        )

    @app.put(
        "/api/v1/workloads/{workload_id}/start",
        response_model=WorkloadView,
        tags=["workloads"],
        dependencies=[Depends(require_key)],
    )
    def start(workload_id: WorkloadId, session: SessionDep) -> WorkloadView:
        """Start a routed workload, or a scheduled one now instead of at its planned hour."""
        view, decision = start_now(
            session=session,
            grid=svc.effective_grid(session),
            workload_id=workload_id,
            now=svc.clock.now(),
            weights=svc.weights,
        )
        if decision is not None and decision.outcome != "started":
            raise errors.ConflictError(f"{workload_id} stays scheduled: {decision.reason}")
        return view

    @app.put(
        "/api/v1/workloads/{workload_id}/cancel",
        response_model=WorkloadView,
        tags=["workloads"],
        dependencies=[Depends(require_key)],
    )
    def cancel(workload_id: WorkloadId, session: SessionDep) -> WorkloadView:
        """Cancel a workload that has not finished; its GPUs or reservation are freed."""
        return set_workload_status(
            session=session, workload_id=workload_id, status="cancelled", now=svc.clock.now()
        )

    @app.get("/api/v1/nodes", response_model=list[NodeView], tags=["fleet"])
    def nodes(session: SessionDep) -> list[NodeView]:
        """List compute nodes with free GPUs and utilisation."""
        return node_views(session=session)

    @app.put(
        "/api/v1/nodes/{node_id}/status",
        response_model=NodeView,
        tags=["fleet"],
        dependencies=[Depends(require_key)],
    )
    def node_status(node_id: NodeId, body: NodeStatusIn, session: SessionDep) -> NodeView:
        """Mark a node online, offline or in maintenance; the incident agent moves its work."""
        return set_node_status(
            session=session, node_id=node_id, status=body.status, now=svc.clock.now()
        )

    @app.get("/api/v1/analytics/zones", response_model=list[ZoneAnalytics], tags=["analytics"])
    def zones(session: SessionDep) -> list[ZoneAnalytics]:
        """Return each zone's current grid reading and the capacity the fleet has there."""
        grid, now = svc.effective_grid(session), svc.clock.now()
        fleet = node_views(session=session)
        out: list[ZoneAnalytics] = []
        for code in ZONE_CODES:
            reading: GridReading | None = None
            error: str | None = None
            try:
                reading = grid.reading(code, now)
            except errors.NoGridDataError as exc:
                error = str(exc)
            here = [n for n in fleet if n.zone == code]
            free = sum(n.free_gpus for n in here if n.status == "online")
            out.append(
                ZoneAnalytics(
                    zone=code,
                    name=ZONES[code].name,
                    reading=reading,
                    error=error,
                    nodes=len(here),
                    free_gpus=free,
                )
            )
        return out

    register_console_api(app, svc, require_key)
    register_chat_api(app, require_key)
    register_money_api(app, svc, require_key)
    api_input.install(app)
    api_access.install(
        app,
        expected_key=expected_key,
        per_minute=svc.settings.rate_limit_per_minute,
        burst=svc.settings.rate_limit_burst,
    )
    return app
