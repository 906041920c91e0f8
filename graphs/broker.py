"""Build the broker chat graph: model + ToolNode over read tools and gated write tools.

Write gate (complete mediation, in code): at the start of every operator turn `read_request`
parses the operator's own words and grants WRITE tools only for what they asked ("route it"
grants `route_workload`; "reroute wl_…" grants `reroute_workload` for the workloads named).
A write call outside the grant, or a second write of the same kind in one turn, gets an error
`ToolMessage` and never runs. Tools additionally authorise ownership, status and limits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import TOOL_CALL_ERROR_TEMPLATE, ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer

from agents.broker import broker_system_prompt
from agents.offline_parser import parse_request
from graphs.context import Context
from graphs.state import ChatInput, ChatState, WriteGrant
from tools.agent_tools.broker import broker_tools
from tools.agent_tools.registry import BaseTool, ToolException, write_tool_names
from tools.errors import DomainError

logger = logging.getLogger(__name__)

_GRANTS = {"route": "route_workload", "reroute": "reroute_workload"}


class BrokerState(ChatState, total=False):
    """Chat state plus the managed step budget."""

    remaining_steps: RemainingSteps


def read_request(state: BrokerState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Grant write tools from the operator's latest message only (never from tool output)."""
    latest = next((m for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), None)
    grant: WriteGrant = {"tools": [], "workload_ids": []}
    if latest is not None:
        request = parse_request(str(latest.content), now=runtime.context.clock.now())
        if request.intent in _GRANTS:
            grant = {"tools": [_GRANTS[request.intent]], "workload_ids": request.workload_ids}
    return {"write_grant": grant}


def _sanitised(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Drop tool calls that never got a result (keeps strict servers happy, langgraph #6726)."""
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    out: list[BaseMessage] = []
    for m in messages:
        if isinstance(m, AIMessage) and m.tool_calls:
            calls = [c for c in m.tool_calls if c.get("id") in answered]
            if len(calls) != len(m.tool_calls):
                m = m.model_copy(update={"tool_calls": calls})
            if not calls and not m.content:
                continue
        out.append(m)
    return out


def call_model(state: BrokerState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask the model for the next step; on the last allowed step, end with an answer."""
    ctx = runtime.context
    system = SystemMessage(broker_system_prompt(now=ctx.clock.now()))
    if state.get("remaining_steps", 10) < 3:
        return {
            "messages": [
                AIMessage(
                    "I could not finish within the step limit; please ask again more specifically."
                )
            ]
        }
    model = ctx.model.bind_tools(broker_tools())
    reply = model.invoke([system, *_sanitised(state["messages"])])
    return {"messages": [reply]}


def route_after_model(state: BrokerState) -> Literal["tools", "__end__"]:
    """Go to the tools when the model asked for any, else end the turn."""
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else "__end__"  # END


def _writes_this_turn(messages: Sequence[BaseMessage], name: str) -> int:
    count = 0
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            break
        if isinstance(m, ToolMessage) and m.name == name and m.status != "error":
            count += 1
    return count


def write_refusal(
    call: dict[str, Any], state: dict[str, Any], writes: frozenset[str]
) -> str | None:
    """Return why a WRITE call may not run now, or None when the operator granted it."""
    name = call["name"]
    if name not in writes:
        return None
    grant = state.get("write_grant") or {"tools": [], "workload_ids": []}
    if name not in grant["tools"]:
        return (
            f"{name} needs the operator's explicit request in their latest message "
            "(e.g. 'route it'); ask them to confirm"
        )
    if name == "reroute_workload" and call["args"].get("workload_id") not in grant["workload_ids"]:
        return f"the operator did not name workload {call['args'].get('workload_id')!r}"
    limit = len(grant["workload_ids"]) if name == "reroute_workload" else 1
    # Calls in one model message run in parallel: count the earlier ones of this message too.
    last = next((m for m in reversed(state["messages"]) if isinstance(m, AIMessage)), None)
    siblings = [c["id"] for c in (last.tool_calls if last else []) if c["name"] == name]
    earlier = siblings.index(call["id"]) if call["id"] in siblings else 0
    if _writes_this_turn(state["messages"], name) + earlier >= limit:
        return f"{name} already ran for this request; one commit per request"
    return None


def make_write_guard(
    writes: frozenset[str],
) -> Callable[[ToolCallRequest, Callable[[ToolCallRequest], Any]], Any]:
    """Return a ToolNode wrapper that refuses ungranted WRITE calls before they run."""

    def guard(request: ToolCallRequest, execute: Callable[[ToolCallRequest], Any]) -> Any:
        reason = write_refusal(dict(request.tool_call), request.state, writes)
        if reason is None:
            return execute(request)
        logger.warning("refused %s: %s", request.tool_call["name"], reason)
        return ToolMessage(
            content=f"Error: refused: {reason}",
            name=request.tool_call["name"],
            tool_call_id=request.tool_call["id"],
            status="error",
        )

    return guard


def tool_error_message(e: Exception) -> str:
    """Return the model-facing text of a correctable tool error; re-raise anything else.

    Under `wrap_tool_call`, langgraph 1.2 turns every exception into a tool message whatever
    exception types `handle_tool_errors` lists; it still calls a handler function, so this one
    re-raises what the model cannot fix (database errors, bugs) and the run fails.
    """
    if isinstance(e, (DomainError, ToolException)):
        return TOOL_CALL_ERROR_TEMPLATE.format(error=repr(e))
    raise e


def make_tool_node(tools: list[BaseTool]) -> ToolNode:
    """Return the ToolNode that runs `tools` behind the write guard."""
    return ToolNode(
        tools,
        handle_tool_errors=tool_error_message,
        wrap_tool_call=make_write_guard(write_tool_names(tools)),
    )


def build_broker_graph(
    *, checkpointer: Checkpointer = None
) -> CompiledStateGraph[BrokerState, Context, ChatInput, BrokerState]:
    """Build and compile the broker chat graph (read request → model ⇄ tools)."""
    builder = StateGraph(BrokerState, context_schema=Context, input_schema=ChatInput)
    builder.add_node("read_request", read_request)
    builder.add_node("call_model", call_model)
    builder.add_node("tools", make_tool_node(broker_tools()))
    builder.add_edge(START, "read_request")
    builder.add_edge("read_request", "call_model")
    builder.add_conditional_edges("call_model", route_after_model, ["tools", END])
    builder.add_edge("tools", "call_model")
    return builder.compile(checkpointer=checkpointer, name="broker")
