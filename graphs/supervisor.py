"""Build the supervisor graph: route each chat turn to one registered agent.

Agents join by registration: an `AgentEntry` names the agent, describes it, lists the request
topics it handles and builds its subgraph. The supervisor gives the model one
`transfer_to_<agent>` tool per entry; nothing here changes when an agent is added.

Each agent has its own message channel (`ChatState.agent_messages[<agent>]`): the supervisor
hands it a task, not the operator's chat; the agent's steps and answer return to the operator's
thread (`messages`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer, Command

from agents import billing_clerk as billing_clerk_agent
from agents import broker as broker_agent
from agents.replies import recover_tool_calls
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
    """Builds the agent's graph over its own channel (`AgentState`; no checkpointer): it is
    invoked with `{"messages": [...its channel, the task]}` and returns its state."""


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


def _named_in_prose(text: str, names: dict[str, str]) -> str | None:
    """Return the one agent whose hand-off tool a reply names in prose instead of calling it.

    Weak models often write "call the `transfer_to_broker` tool with …" instead of calling it:
    that names the route as clearly as a call, so the turn goes there with no second attempt.
    """
    named = {agent for tool, agent in names.items() if re.search(rf"\b{tool}\b", text)}
    return named.pop() if len(named) == 1 else None


def _make_choose(entries: list[AgentEntry]) -> Callable[..., Any]:
    tools = [transfer_tool(e.name, e.description, e.topics) for e in entries]
    names = {f"transfer_to_{e.name}": e.name for e in entries}
    catalogue = "\n".join(f"- {e.name}: {e.description}" for e in entries)

    def choose_agent(state: ChatState, runtime: Runtime[Context]) -> Command[Any]:
        """Hand the operator's latest message to one agent as a task, or answer directly.

        One model call routes a turn: a hand-off call, or a hand-off named in prose, goes to
        that agent; a reply to an agent's question ("Which organisation do you mean?" → "gamer
        Jonas") goes back to the agent that asked when the model names no other agent.
        """
        latest = next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
        text = latest.text
        asker, question = _open_question(state)
        system = SystemMessage(
            render(
                "supervisor.system", now=runtime.context.clock.now().isoformat(), agents=catalogue
            )
        )
        context = [system, question, latest] if question is not None else [system, latest]
        reply = runtime.context.model.bind_tools(tools).invoke(context)
        if isinstance(reply, AIMessage):
            reply = recover_tool_calls(reply, names)
        for call in reply.tool_calls if isinstance(reply, AIMessage) else []:
            if call["name"] in names:
                agent = names[call["name"]]
                task = str((call.get("args") or {}).get("task") or "").strip() or text
                logger.info("supervisor hands the turn to %s", agent)
                return Command(goto=agent, update={"route_to": agent, "task": task})
        prose = reply.text
        if (named := _named_in_prose(prose, names)) is not None:
            logger.info("supervisor named %s in prose; the turn goes there", named)
            return Command(goto=named, update={"route_to": named, "task": text})
        if asker in names.values():
            logger.info("supervisor returns the answer to %s, which asked", asker)
            return Command(goto=asker, update={"route_to": asker, "task": text})
        answer = AIMessage(content=prose or "I can help with: " + catalogue)
        return Command(goto=END, update={"messages": [answer], "route_to": "supervisor"})

    return choose_agent


def _task_text(task: str, words: str) -> str:
    """Return what the agent is told: the task, and the operator's words when they differ.

    A restated task can lose details (a GPU model, "EU only"); this turn's own words keep them
    without handing the agent the rest of the chat.
    """
    if not task.strip() or task.strip() == words.strip():
        return words
    return f"{task}\n\nThe operator's words: {words}"


def _make_run(entry: AgentEntry) -> Callable[..., dict[str, Any]]:
    agent = entry.build()

    def run_agent(state: ChatState, config: RunnableConfig) -> dict[str, Any]:
        """Run the agent on its own channel with this turn's task; report back to the operator.

        The agent sees its earlier tasks and answers (follow-ups work) but not the operator's
        thread. Its new steps and answer go to the operator's thread; a paused approval stays
        inside the agent's run until a person decides.
        """
        channel = list((state.get("agent_messages") or {}).get(entry.name, []))
        latest = next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
        task = HumanMessage(
            _task_text(state.get("task") or "", latest.text), id=f"task-{latest.id}-{entry.name}"
        )
        out = agent.invoke({"messages": [*channel, task]}, config)
        known = {m.id for m in channel}
        new = [m for m in out["messages"] if m.id not in known]
        return {
            "agent_messages": {entry.name: new},
            "messages": [m for m in new if not isinstance(m, HumanMessage)],
        }

    return run_agent


def build_supervisor_graph(
    *, registry: AgentRegistry | None = None, checkpointer: Checkpointer = None
) -> CompiledStateGraph[ChatState, Context, ChatInput, ChatState]:
    """Build the chat graph: supervisor → one registered agent per turn, on its own channel."""
    entries = (registry or default_registry()).entries()
    builder = StateGraph(ChatState, context_schema=Context, input_schema=ChatInput)
    builder.add_node(
        "supervisor", _make_choose(entries), destinations=(*[e.name for e in entries], END)
    )
    for entry in entries:
        builder.add_node(entry.name, _make_run(entry))
        builder.add_edge(entry.name, END)
    builder.add_edge(START, "supervisor")
    return builder.compile(checkpointer=checkpointer, name="supervisor")
