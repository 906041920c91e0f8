"""Build the broker chat graph: model + ToolNode over read tools and approved write tools.

Writes (complete mediation, in code): every WRITE call the model proposes goes through
`graphs.approval` first, which checks it and pauses the run for a person's decision; the
ToolNode's guard runs a WRITE call only when it was approved with exactly those arguments.
Nothing the operator or the model writes in text grants a write. Tools additionally authorise
ownership, status and limits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import TOOL_CALL_ERROR_TEMPLATE
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer

from agents.broker import broker_system_prompt
from agents.replies import recover_tool_calls
from graphs.approval import make_approval_guard, make_approve_writes, make_route_after_model
from graphs.context import Context
from graphs.state import AgentState, ChatInput
from tools.agent_tools.broker import broker_tools
from tools.agent_tools.registry import BaseTool, ToolException, write_tool_names
from tools.errors import DomainError

logger = logging.getLogger(__name__)


class BrokerState(AgentState, total=False):
    """Agent state plus the managed step budget."""

    remaining_steps: RemainingSteps


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
    tools = broker_tools()
    reply = ctx.model.bind_tools(tools).invoke([system, *_sanitised(state["messages"])])
    if isinstance(reply, AIMessage):
        reply = recover_tool_calls(reply, [t.name for t in tools])
    return {"messages": [reply]}


def route_after_model(state: BrokerState) -> Literal["tools", "__end__"]:
    """Go to the tools when the model asked for any, else end the turn."""
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else "__end__"  # END


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
    """Return the ToolNode that runs `tools`, WRITE calls only when a person approved them."""
    return ToolNode(
        tools,
        handle_tool_errors=tool_error_message,
        wrap_tool_call=make_approval_guard(write_tool_names(tools)),
    )


def build_broker_graph(
    *, checkpointer: Checkpointer = None
) -> CompiledStateGraph[BrokerState, Context, ChatInput, BrokerState]:
    """Build and compile the broker chat graph (model ⇄ tools, WRITE calls via approval)."""
    tools = broker_tools()
    builder = StateGraph(BrokerState, context_schema=Context, input_schema=ChatInput)
    builder.add_node("call_model", call_model)
    builder.add_node("approve", make_approve_writes(tools))
    builder.add_node("tools", make_tool_node(tools))
    builder.add_edge(START, "call_model")
    builder.add_conditional_edges(
        "call_model", make_route_after_model(write_tool_names(tools)), ["approve", "tools", END]
    )
    builder.add_edge("approve", "tools")
    builder.add_edge("tools", "call_model")
    return builder.compile(checkpointer=checkpointer, name="broker")
