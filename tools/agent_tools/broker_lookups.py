"""The chat's read-only lookups: zones, nodes, a workload's decision, incidents.

Thin LangChain adapters like `tools.agent_tools.broker`: each pulls what it needs from
`runtime.context`, calls one domain function and returns JSON; all are READ.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime

from store import incident_repo, repo
from tools.agent_tools.context import tool_context as _ctx
from tools.agent_tools.registry import ToolKind, is_tool
from tools.broker.briefs import compare_zones as compare_zones_op
from tools.broker.fleet import node_views
from tools.broker.workloads import load_workload
from tools.grid.zones import expand_zones
from tools.money.receipts import co2_avoided


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def compare_zones(
    runtime: ToolRuntime[Any, Any], zones: list[str] | None = None, hours: int = 0
) -> dict[str, Any]:
    """Rank grid zones by carbon intensity now, or averaged over the next hours.

    Args:
        runtime: Injected graph context; never sent to the model.
        zones: Zone codes or regions (EU, US, Iberia, Benelux) to compare; omit for all.
        hours: 0 for right now, or 1-48 to average over the coming hours.
    """
    ctx = _ctx(runtime)
    result = compare_zones_op(grid=ctx.grid, zones=zones, hours=hours, now=ctx.clock.now())
    return result.model_dump(mode="json")


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def list_nodes(
    runtime: ToolRuntime[Any, Any],
    zones: list[str] | None = None,
    gpu_model: str | None = None,
) -> dict[str, Any]:
    """List compute nodes with their free GPUs, utilisation and status.

    Args:
        runtime: Injected graph context; never sent to the model.
        zones: Only nodes in these zone codes or regions (e.g. ["US"] or ["FR", "DE"]).
        gpu_model: Only nodes with this GPU model, e.g. H100.
    """
    wanted = set(expand_zones(zones)) if zones else None
    model = gpu_model.strip().upper() if gpu_model else None
    with _ctx(runtime).sessions() as session:
        rows = [
            n.model_dump(mode="json", exclude={"wallet_address"})
            for n in node_views(session=session)
            if (wanted is None or n.zone in wanted) and (model is None or n.gpu_model == model)
        ]
    return {"nodes": rows}


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def explain_decision(workload_id: str, runtime: ToolRuntime[Any, Any]) -> dict[str, Any]:
    """Return a workload's latest routing decision (every candidate, rejection) and CO2 avoided.

    `co2_avoided` is the workload's kg CO2 avoided against the cheapest eligible node of its
    first decision: the settled figure from its carbon receipt once completed and billed (the
    same as receipts and profitability show), a forecast (`forecast: true`) before that.

    Args:
        runtime: Injected graph context; never sent to the model.
        workload_id: Id of the workload, exactly as a tool returned it (wl_ and 12 hex digits).
    """
    ctx = _ctx(runtime)
    with ctx.sessions() as session:
        workload = load_workload(session=session, workload_id=workload_id)
        decisions = repo.list_decisions(session=session, workload_id=workload.id)
        if not decisions:
            return {"workload_id": workload_id, "decision": None, "co2_avoided": None}
        avoided = co2_avoided(session=session, workload_id=workload.id)
        latest = decisions[-1]
        node = repo.get_node(session=session, node_id=latest.node_id) if latest.node_id else None
        return {
            "workload_id": workload_id,
            "decision": {
                "id": latest.id,
                "workload_id": latest.workload_id,
                "kind": latest.kind,
                "outcome": latest.outcome,
                "node_id": latest.node_id,
                "zone": node.zone if node else None,
                "score": latest.score,
                "reason": latest.reason,
                "decided_at": latest.decided_at.isoformat(),
                "candidates": latest.candidates[:5],
                "rejected": latest.rejected,
            },
            "status": workload.status,
            "co2_avoided": {
                **avoided.model_dump(mode="json"),
                "kg": None if avoided.kg is None else round(avoided.kg, 3),
            },
        }


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def incident_status(runtime: ToolRuntime[Any, Any], open_only: bool = False) -> dict[str, Any]:
    """Return the latest incidents with their current state and reroutes.

    Args:
        runtime: Injected graph context; never sent to the model.
        open_only: Only incidents that are not resolved yet.
    """
    ctx = _ctx(runtime)
    with ctx.sessions() as session:
        rows = incident_repo.list_incidents(session=session, open_only=open_only, limit=10)
        return {
            "incidents": [
                {
                    "id": i.id,
                    "zone": i.zone,
                    "trigger": i.trigger,
                    "state": i.state,
                    "opened_at": i.opened_at.isoformat(),
                    "summary": i.summary,
                    "reroutes": [
                        f"{r.workload_id}: {r.outcome}"
                        for r in incident_repo.list_reroutes(session=session, incident_id=i.id)
                    ],
                }
                for i in rows
            ]
        }
