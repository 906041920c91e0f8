"""Build the supervisor graph: route each chat turn to one registered agent.

Agents join by registration: an `AgentEntry` names the agent, describes it, lists the request
topics it handles and builds its subgraph. The supervisor gives the model one
`transfer_to_<agent>` tool per entry; nothing here changes when an agent is added.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer, Command

from agents import billing_clerk as billing_clerk_agent
from agents import broker as broker_agent
from graphs.billing_clerk import build_billing_clerk_graph
from graphs.broker import build_broker_graph
from graphs.context import Context
from graphs.state import ChatInput, ChatState
from prompts import render
from tools.agent_tools.handoff import transfer_tool

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentEntry:
    """A chat agent the supervisor can hand a turn to."""

    name: str
    description: str
    topics: tuple[str, ...]
    build: Callable[[], CompiledStateGraph[Any, Any, Any, Any]]
    """Builds the agent's subgraph over `ChatState` (compiled without a checkpointer)."""


class AgentRegistry:
    """The agents available to the supervisor, in registration order."""

    def __init__(self, entries: Iterable[AgentEntry] = ()) -> None:
        self._entries: dict[str, AgentEntry] = {}
        for entry in entries:
            self.register(entry)

    def register(self, entry: AgentEntry) -> None:
        """Add an agent; names must be unique identifiers."""
        if not entry.name.isidentifier() or entry.name in self._entries:
            raise ValueError(f"agent name {entry.name!r} is invalid or already registered")
        self._entries[entry.name] = entry

    def entries(self) -> list[AgentEntry]:
        """Return the registered agents."""
        return list(self._entries.values())


def broker_entry() -> AgentEntry:
    """Return the registration of the broker agent."""
    return AgentEntry(
        name=broker_agent.NAME,
        description=broker_agent.DESCRIPTION,
        topics=broker_agent.TOPICS,
        build=build_broker_graph,
    )


def billing_clerk_entry() -> AgentEntry:
    """Return the registration of the billing clerk agent."""
    clerk = billing_clerk_agent
    return AgentEntry(
        name=clerk.NAME,
        description=clerk.DESCRIPTION,
        topics=clerk.TOPICS,
        build=build_billing_clerk_graph,
    )


def default_registry() -> AgentRegistry:
    """Return a registry holding the agents this package provides (broker, billing clerk)."""
    return AgentRegistry([broker_entry(), billing_clerk_entry()])


def _open_question(state: ChatState) -> tuple[str | None, AIMessage | None]:
    """Return the agent whose last turn ended with a question to the operator, and that question."""
    messages = state["messages"]
    latest = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    previous = next((m for m in reversed(messages[:latest]) if isinstance(m, AIMessage)), None)
    if previous is None or previous.tool_calls or not str(previous.content).rstrip().endswith("?"):
        return None, None
    return state.get("route_to"), AIMessage(content=str(previous.content))


def _make_choose(entries: list[AgentEntry]) -> Callable[..., Any]:
    tools = [transfer_tool(e.name, e.description, e.topics) for e in entries]
    names = {f"transfer_to_{e.name}": e.name for e in entries}
    catalogue = "\n".join(f"- {e.name}: {e.description}" for e in entries)

    def choose_agent(state: ChatState, runtime: Runtime[Context]) -> Command[Any]:
        """Hand the operator's latest message to one agent, or answer directly.

        A reply to an agent's question ("Which organisation do you mean?" → "gamer Jonas") goes
        back to the agent that asked when the model names no other agent.
        """
        latest = next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
        asker, question = _open_question(state)
        system = SystemMessage(
            render(
                "supervisor.system", now=runtime.context.clock.now().isoformat(), agents=catalogue
            )
        )
        context = [system, question, latest] if question is not None else [system, latest]
        reply = runtime.context.model.bind_tools(tools).invoke(context)
        for call in reply.tool_calls if isinstance(reply, AIMessage) else []:
            if call["name"] in names:
                logger.info("supervisor hands the turn to %s", names[call["name"]])
                return Command(goto=names[call["name"]], update={"route_to": names[call["name"]]})
        if asker in names.values():
            logger.info("supervisor returns the answer to %s, which asked", asker)
            return Command(goto=asker, update={"route_to": asker})
        answer = AIMessage(content=reply.content or "I can help with: " + catalogue)
        return Command(goto=END, update={"messages": [answer], "route_to": "supervisor"})

    return choose_agent


def build_supervisor_graph(
    *, registry: AgentRegistry | None = None, checkpointer: Checkpointer = None
) -> CompiledStateGraph[ChatState, Context, ChatInput, ChatState]:
    """Build the chat graph: supervisor → one registered agent per turn."""
    entries = (registry or default_registry()).entries()
    builder = StateGraph(ChatState, context_schema=Context, input_schema=ChatInput)
    builder.add_node(
        "supervisor", _make_choose(entries), destinations=(*[e.name for e in entries], END)
    )
    for entry in entries:
        builder.add_node(entry.name, entry.build())
        builder.add_edge(entry.name, END)
    builder.add_edge(START, "supervisor")
    return builder.compile(checkpointer=checkpointer, name="supervisor")
