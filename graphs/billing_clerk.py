"""Build the billing clerk chat graph: model + ToolNode over READ-only money tools.

The clerk never moves money, enforced in code: building the graph refuses any WRITE tool, and
the ToolNode answers a call to any other tool name (e.g. one a model invents after reading
planted text) with an error message. Only `DomainError`/`ToolException` go back to the model;
anything else fails the run. (No `wrap_tool_call` here: in langgraph 1.2 an exception raised
under a wrapper is turned into a tool message whatever `handle_tool_errors` lists.)
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import AIMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer

from agents.billing_clerk import clerk_system_prompt, clerk_tools
from agents.replies import recover_tool_calls
from graphs.broker import _sanitised, route_after_model
from graphs.context import Context
from graphs.state import AgentState, ChatInput
from tools.agent_tools.registry import ToolException, write_tool_names
from tools.errors import DomainError

logger = logging.getLogger(__name__)


class ClerkState(AgentState, total=False):
    """Agent state plus the managed step budget."""

    remaining_steps: RemainingSteps


def call_model(state: ClerkState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask the model for the next step; on the last allowed step, end with an answer."""
    ctx = runtime.context
    if state.get("remaining_steps", 10) < 3:
        return {
            "messages": [
                AIMessage(
                    "I could not finish within the step limit; please ask again more specifically."
                )
            ]
        }
    system = SystemMessage(clerk_system_prompt(now=ctx.clock.now(), org_id=ctx.org_id))
    tools = clerk_tools()
    reply = ctx.model.bind_tools(tools).invoke([system, *_sanitised(state["messages"])])
    if isinstance(reply, AIMessage):
        reply = recover_tool_calls(reply, [t.name for t in tools])
    return {"messages": [reply]}


def build_billing_clerk_graph(
    *, checkpointer: Checkpointer = None
) -> CompiledStateGraph[ClerkState, Context, ChatInput, ClerkState]:
    """Build and compile the billing clerk chat graph (model ⇄ READ tools).

    Raises:
        ValueError: A WRITE tool was added to the clerk; writes need a gate like the broker's.
    """
    tools = clerk_tools()
    if writes := sorted(write_tool_names(tools)):
        raise ValueError(f"billing clerk tools {writes!r} are WRITE tools; the clerk is read-only")
    builder = StateGraph(ClerkState, context_schema=Context, input_schema=ChatInput)
    builder.add_node("call_model", call_model)
    builder.add_node("tools", ToolNode(tools, handle_tool_errors=(DomainError, ToolException)))
    builder.add_edge(START, "call_model")
    builder.add_conditional_edges("call_model", route_after_model, ["tools", END])
    builder.add_edge("tools", "call_model")
    return builder.compile(checkpointer=checkpointer, name="billing_clerk")
