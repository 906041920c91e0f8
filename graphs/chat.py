"""Run one chat turn through the supervisor graph and summarise it for callers (CLI, API, UI)."""

from __future__ import annotations

import json
import logging
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from graphs.checkpoint import chat_thread
from graphs.context import CHAT_RECURSION_LIMIT, Context
from graphs.supervisor import AgentRegistry, build_supervisor_graph

logger = logging.getLogger(__name__)


def _chosen(name: str, result: dict[str, Any]) -> tuple[str | None, str | None]:
    if name == "recommend_placement" and result.get("best"):
        return result["best"]["node_id"], result["best"]["zone"]
    if name == "route_workload":
        wl = result.get("workload", {})
        return wl.get("node_id"), wl.get("zone")
    if name == "reroute_workload":
        d = result.get("decision", {})
        return d.get("node_id"), d.get("zone")
    return None, None


def chat_turn(
    ctx: Context,
    checkpointer: BaseCheckpointSaver[Any],
    text: str,
    *,
    thread_id: str,
    registry: AgentRegistry | None = None,
) -> dict[str, Any]:
    """Send `text` on conversation `thread_id` and return the answer and what the tools did.

    Returns:
        `answer`, `tool_calls` (names in order), `node` and `zone` when a node was chosen,
        `written` (a WRITE tool succeeded), `thread` and `agent`.
    """
    graph = build_supervisor_graph(registry=registry, checkpointer=checkpointer)
    config: Any = {
        "configurable": {"thread_id": chat_thread(thread_id)},
        "recursion_limit": CHAT_RECURSION_LIMIT,
    }
    before = len(graph.get_state(config).values.get("messages", []))
    out = graph.invoke({"messages": [HumanMessage(text)]}, config, context=ctx)
    new = out["messages"][before:]
    names = {c["id"]: c["name"] for m in new if isinstance(m, AIMessage) for c in m.tool_calls}
    node = zone = None
    written = False
    calls: list[str] = []
    for m in new:
        if not isinstance(m, ToolMessage):
            continue
        name = names.get(m.tool_call_id, m.name or "")
        calls.append(name)
        if m.status == "error":
            continue
        result = json.loads(str(m.content))
        if not isinstance(result, dict):  # list results (payouts, profitability) write nothing
            continue
        written = written or bool(result.get("written"))
        picked = _chosen(name, result)
        if picked[0] is not None:
            node, zone = picked
    return {
        "answer": str(out["messages"][-1].content),
        "tool_calls": calls,
        "node": node,
        "zone": zone,
        "written": written,
        "thread": thread_id,
        "agent": out.get("route_to"),
    }
