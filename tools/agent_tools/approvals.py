"""Proposals for WRITE tool calls: validated arguments and a plain summary computed by code.

A model may propose any WRITE call; before a person is asked, `propose` checks the arguments
against the tool's schema and runs the same authorisation the tool will run, then describes
the write from the store (the node, zone, start, GPUs, hours, kg CO2 and cost of the stored
recommendation; a reroute's dry run). Nothing here writes. What the model wrote is never used
as the summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from tools.agent_tools.broker import warm_for_recommendation
from tools.agent_tools.context import ToolContext
from tools.agent_tools.registry import BaseTool, ToolException
from tools.broker.briefs import authorise_new_workload, authorise_reroute
from tools.broker.recommendations import (
    check_fresh,
    committed_workload,
    load_recommendation,
    preview_reroute,
)
from tools.broker.routing import recommend
from tools.broker.windows import plan_start
from tools.broker.workloads import JobSpec
from tools.money.usage import billed_seconds, gross_minor


class Proposal(BaseModel):
    """A WRITE call waiting for a person: the tool, its arguments and what it would do."""

    tool: str
    args: dict[str, Any]
    summary: dict[str, Any]
    """Plain facts from the store; `summary["text"]` is one sentence for people."""


Summariser = Callable[[dict[str, Any], ToolContext], dict[str, Any]]


def _money(minor: int, currency: str) -> str:
    return f"{minor // 100}.{minor % 100:02d} {currency}"


def _route_summary(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    now = ctx.clock.now()
    warm_for_recommendation(ctx, args["recommendation_id"])
    with ctx.sessions() as session:
        row = load_recommendation(
            session=session, recommendation_id=args["recommendation_id"], org_id=ctx.org_id
        )
        spec = JobSpec.model_validate(row.spec)
        existing = committed_workload(session=session, recommendation_id=row.id)
        plan = None
        if existing is None:
            check_fresh(row, now)
            authorise_new_workload(session=session, org_id=ctx.org_id, spec=spec, now=now)
            if spec.deadline is not None:
                ranked = recommend(
                    session=session, grid=ctx.grid, spec=spec, now=now, weights=ctx.weights
                )
                plan = plan_start(
                    session=session,
                    grid=ctx.grid,
                    spec=spec,
                    candidates=ranked.candidates,
                    now=now,
                    weights=ctx.weights,
                    forecasts=ctx.forecasts,
                    move_running=ctx.move_running_work,
                )
    cost = gross_minor(
        spec.gpu_count, row.price_per_gpu_hour_minor, billed_seconds(spec.duration_hours)
    )
    gpus = f"{spec.gpu_count}x{spec.gpu_model or 'GPU'}"
    node_id, zone, start, co2 = row.node_id, row.zone, now, row.co2_kg
    if plan is not None and plan.deferred:
        node_id, zone, start, co2 = plan.node_id, plan.zone, plan.start_at, plan.co2_kg
        text = (
            f"Schedule {gpus} for {spec.duration_hours:g} h on {node_id} ({zone}), "
            f"starting {start:%Y-%m-%d %H:%M} UTC (GPUs reserved from then): about {co2:.2f} kg "
            f"CO2 by forecast vs {plan.co2_kg_if_started_now:.2f} kg starting now, and "
            f"{_money(cost, row.currency)}."
        )
    else:
        text = (
            f"Route {gpus} for {spec.duration_hours:g} h on {node_id} ({zone}), "
            f"starting {start:%Y-%m-%d %H:%M} UTC: about {co2:.2f} kg CO2 and "
            f"{_money(cost, row.currency)}."
        )
    if existing is not None:
        text += f" Already booked as workload {existing.id}; approving writes nothing new."
    return {
        "action": "route",
        "recommendation_id": row.id,
        "node_id": node_id,
        "zone": zone,
        "start": start.isoformat(),
        "gpu_count": spec.gpu_count,
        "gpu_model": spec.gpu_model,
        "duration_hours": spec.duration_hours,
        "co2_kg": round(co2, 3),
        "cost_minor": cost,
        "currency": row.currency,
        "expires_at": row.expires_at.isoformat(),
        "existing_workload_id": existing.id if existing is not None else None,
        "text": text,
    }


def _reroute_summary(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    workload_id = args["workload_id"]
    with ctx.sessions() as session:
        authorise_reroute(session=session, org_id=ctx.org_id, workload_id=workload_id)
        p = preview_reroute(
            session=session,
            grid=ctx.grid,
            workload_id=workload_id,
            now=ctx.clock.now(),
            weights=ctx.weights,
        )
    if p.would_move:
        gain = f", {p.improvement:.0%} better" if p.improvement is not None else ""
        text = (
            f"Move workload {p.workload_id} ({p.gpu_count} GPUs) from {p.node_id} ({p.zone}) "
            f"to {p.best_node_id} ({p.best_zone}){gain}."
        )
    else:
        text = (
            f"Reroute workload {p.workload_id} on {p.node_id} ({p.zone}): by the 25 % rule it "
            "would stay where it is; the decision is recorded either way."
        )
    return {
        "action": "reroute",
        "workload_id": p.workload_id,
        "node_id": p.node_id,
        "zone": p.zone,
        "gpu_count": p.gpu_count,
        "best_node_id": p.best_node_id,
        "best_zone": p.best_zone,
        "improvement": p.improvement,
        "would_move": p.would_move,
        "text": text,
    }


SUMMARISERS: dict[str, Summariser] = {
    "route_workload": _route_summary,
    "reroute_workload": _reroute_summary,
}


def _validated(tool: BaseTool, args: dict[str, Any]) -> dict[str, Any]:
    schema = tool.tool_call_schema
    if not isinstance(schema, type) or not issubclass(schema, BaseModel):
        return dict(args)
    unknown = sorted(set(args) - set(schema.model_fields))
    if unknown:
        raise ToolException(
            f"{tool.name} has no argument(s) {unknown!r}; it takes {sorted(schema.model_fields)!r}"
        )
    try:
        schema.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ToolException(f"invalid arguments for {tool.name}: {problems}") from None
    return dict(args)


def propose(tool: BaseTool, args: dict[str, Any], ctx: ToolContext) -> Proposal:
    """Return the proposal a person decides on for calling `tool` with `args`.

    Raises:
        ToolException: The arguments do not fit the tool's schema.
        DomainError: The call would be refused anyway (unknown or expired recommendation,
            another organisation's workload, a chat limit); the model can correct it.
    """
    checked = _validated(tool, args)
    summarise = SUMMARISERS.get(tool.name)
    if summarise is None:
        summary: dict[str, Any] = {
            "action": tool.name,
            "text": f"Run {tool.name} with {json.dumps(checked, sort_keys=True)}.",
        }
    else:
        summary = summarise(checked, ctx)
    return Proposal(tool=tool.name, args=checked, summary=summary)
