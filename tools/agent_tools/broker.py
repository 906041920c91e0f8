"""Thin LangChain adapters over the broker and the chat domain operations.

Each adapter takes `runtime: ToolRuntime`, pulls the session factory, grid, clock, weights and
acting organisation from `runtime.context`, calls one domain function and returns JSON. Tool
docstrings are what the model sees. Every tool declares READ or WRITE with `@is_tool`.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import ToolRuntime

from tools.agent_tools.broker_lookups import (
    compare_zones,
    explain_decision,
    incident_status,
    list_nodes,
)
from tools.agent_tools.context import ToolContext
from tools.agent_tools.context import tool_context as _ctx
from tools.agent_tools.registry import ToolKind, is_tool
from tools.broker.briefs import (
    RecommendationBrief,
    authorise_new_workload,
    authorise_reroute,
)
from tools.broker.recommendations import (
    load_recommendation,
    route_recommendation,
    save_recommendation,
)
from tools.broker.routing import recommend
from tools.broker.routing import reroute_workload as reroute_op
from tools.broker.windows import forecast_zones, plan_start, warm_forecasts
from tools.broker.workloads import JobSpec
from tools.clock import parse_time
from tools.money.receipts import co2_avoided

logger = logging.getLogger(__name__)


def _spec(
    gpu_count: int,
    duration_hours: float,
    gpu_model: str | None,
    deadline: str | None,
    allowed_zones: list[str] | None,
    denied_zones: list[str] | None,
    max_carbon_intensity: float | None,
    movable: bool = True,
) -> JobSpec:
    return JobSpec(
        gpu_count=gpu_count,
        duration_hours=duration_hours,
        gpu_model=gpu_model,
        deadline=parse_time(deadline, what="deadline") if deadline else None,
        allowed_zones=allowed_zones or None,
        denied_zones=denied_zones or None,
        max_carbon_intensity=max_carbon_intensity,
        movable=movable,
    )


def warm_for_recommendation(ctx: ToolContext, recommendation_id: str) -> None:
    """Fetch the forecasts a plan of the recommendation's job reads, before a transaction."""
    now = ctx.clock.now()
    with ctx.sessions() as session:
        row = load_recommendation(
            session=session, recommendation_id=recommendation_id, org_id=ctx.org_id
        )
        spec = JobSpec.model_validate(row.spec)
    warm_forecasts(ctx.forecasts, now=now, zones=forecast_zones(spec, now))


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def recommend_placement(
    gpu_count: int,
    duration_hours: float,
    runtime: ToolRuntime[Any, Any],
    gpu_model: str | None = None,
    deadline: str | None = None,
    allowed_zones: list[str] | None = None,
    denied_zones: list[str] | None = None,
    max_carbon_intensity: float | None = None,
    movable: bool = True,
) -> dict[str, Any]:
    """Say where and when a job should run: best node, start time, forecast CO2; routes nothing.

    With a deadline the broker looks for the greenest forecast window that still meets it
    (answer "when should it start?" or "greenest window?" from `start_at`, `node`, `co2_kg`,
    `co2_kg_if_started_now`, `saving_pct` and `why`); without one the job starts now. The
    result's `recommendation_id` is what `route_workload` commits once the operator wants the
    job booked (booking plans again at that time).

    Args:
        runtime: Injected graph context; never sent to the model.
        gpu_count: Number of GPUs the job needs (1-64 by chat).
        duration_hours: Run time in hours.
        gpu_model: Required GPU model such as H100, A100, L40S or RTX4090; omit for any.
        deadline: ISO-8601 UTC time by which the job must finish; gives the broker room to
            wait for a greener window. Omit to start now.
        allowed_zones: Only these zone codes or regions, e.g. ["EU"], ["US"] or ["FR", "ES"]
            (regions: EU, US, Iberia, Benelux).
        denied_zones: Never these zone codes or regions, e.g. ["US"] for "not in the US".
        max_carbon_intensity: Refuse zones above this many gCO2/kWh.
        movable: False for a job that cannot checkpoint: once running it moves only if its
            node fails. Omit otherwise.
    """
    ctx = _ctx(runtime)
    spec = _spec(
        gpu_count,
        duration_hours,
        gpu_model,
        deadline,
        allowed_zones,
        denied_zones,
        max_carbon_intensity,
        movable,
    )
    now = ctx.clock.now()
    warm_forecasts(ctx.forecasts, now=now, zones=forecast_zones(spec, now))
    with ctx.sessions.begin() as session:
        rec = recommend(session=session, grid=ctx.grid, spec=spec, now=now, weights=ctx.weights)
        when = plan_start(
            session=session,
            grid=ctx.grid,
            spec=spec,
            candidates=rec.candidates,
            now=now,
            weights=ctx.weights,
            forecasts=ctx.forecasts,
            move_running=ctx.move_running_work,
        )
        stored = save_recommendation(session=session, org_id=ctx.org_id, rec=rec, now=now)
        brief = RecommendationBrief.of(rec, when=when)
        if stored is not None:
            brief = brief.model_copy(
                update={"recommendation_id": stored.id, "expires_at": stored.expires_at}
            )
    return brief.model_dump(mode="json")


@is_tool(ToolKind.WRITE)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def route_workload(
    recommendation_id: str, runtime: ToolRuntime[Any, Any], name: str | None = None
) -> dict[str, Any]:
    """Book a recommended job: submit it for the operator's organisation and place it now.

    Call this when the operator wants the recommended job booked; the operator approves or
    rejects every call before it runs. One recommendation books at most one workload: calling
    again with the same id returns the same workload.

    Args:
        runtime: Injected graph context; never sent to the model.
        recommendation_id: The recommendation_id that recommend_placement returned (rec_...).
        name: Short workload name; a default is derived from the job when omitted.
    """
    ctx = _ctx(runtime)
    now = ctx.clock.now()
    warm_for_recommendation(ctx, recommendation_id)
    with ctx.sessions.begin() as session:
        row = load_recommendation(
            session=session, recommendation_id=recommendation_id, org_id=ctx.org_id
        )
        spec = JobSpec.model_validate(row.spec)
        authorise_new_workload(session=session, org_id=ctx.org_id, spec=spec, now=now)
        label = (
            name
            or f"{spec.gpu_count}x{spec.gpu_model or 'GPU'} for {spec.duration_hours:g} h (chat)"
        )
        done = route_recommendation(
            session=session,
            grid=ctx.grid,
            recommendation_id=row.id,
            org_id=ctx.org_id,
            name=label[:200],
            now=now,
            weights=ctx.weights,
            forecasts=ctx.forecasts,
            move_running=ctx.move_running_work,
        )
        avoided = co2_avoided(session=session, workload_id=done.workload.id)
    wl = done.workload
    logger.info("chat routed %s to %s for %s", wl.id, wl.node_id, ctx.org_id)
    saved = None if avoided.kg is None else round(avoided.kg, 3)
    baseline = None if saved is None or wl.co2_kg_estimate is None else wl.co2_kg_estimate + saved
    return {
        "written": done.created,
        "already_routed": not done.created,
        "recommendation_id": row.id,
        "workload": wl.model_dump(mode="json"),
        "decision": done.decision.model_dump(mode="json", exclude={"candidates", "rejected"})
        if done.decision
        else None,
        "baseline_co2_kg": None if baseline is None else round(baseline, 3),
        "co2_saved_kg": saved,
        "co2_avoided": avoided.model_dump(mode="json"),
    }


@is_tool(ToolKind.WRITE)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def reroute_workload(workload_id: str, runtime: ToolRuntime[Any, Any]) -> dict[str, Any]:
    """Move one of the operator's routed or running workloads if another node is >= 25 % better.

    The broker keeps the workload where it is otherwise, and refuses after 5 reroutes. The
    operator approves or rejects every call before it runs.

    Args:
        runtime: Injected graph context; never sent to the model.
        workload_id: Id of the workload to move, exactly as a tool returned it.
    """
    ctx = _ctx(runtime)
    with ctx.sessions.begin() as session:
        authorise_reroute(session=session, org_id=ctx.org_id, workload_id=workload_id)
        decision = reroute_op(
            session=session,
            grid=ctx.grid,
            workload_id=workload_id,
            now=ctx.clock.now(),
            weights=ctx.weights,
        )
    return {
        "written": True,
        "decision": decision.model_dump(mode="json", exclude={"candidates", "rejected"}),
    }


def broker_tools() -> list[BaseTool]:
    """Return the broker agent's tools, each marked READ or WRITE in its metadata."""
    return [
        recommend_placement,
        compare_zones,
        list_nodes,
        explain_decision,
        incident_status,
        route_workload,
        reroute_workload,
    ]
