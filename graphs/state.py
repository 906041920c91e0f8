"""Define the graph state schemas and their reducers (plain JSON-shaped data only)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, cast

from langchain_core.messages import AnyMessage
from langgraph.graph import add_messages
from typing_extensions import TypedDict


class WriteDecision(TypedDict, total=False):
    """What happens to one proposed WRITE call (decided in code or by a person, never a model)."""

    approve: bool
    by: str
    """Who decided: the person who approved or rejected, or "policy" for a refusal in code."""
    at: str
    """When (ISO-8601, from the injected clock)."""
    reason: str | None
    """Why it was rejected or refused (goes back to the model as the tool's result)."""
    approval_id: int | None
    """The stored `write_approvals` row of a person's decision."""
    args: dict[str, Any]
    """The exact arguments decided on; a call with other arguments does not run."""


def merge_decisions(
    old: dict[str, WriteDecision] | None, new: dict[str, WriteDecision] | None
) -> dict[str, WriteDecision]:
    """Reducer: add the decisions of newly proposed calls, keyed by tool call id."""
    return {**(old or {}), **(new or {})}


def merge_channels(
    old: dict[str, list[AnyMessage]] | None, new: dict[str, list[AnyMessage]] | None
) -> dict[str, list[AnyMessage]]:
    """Reducer: append each agent's new messages to that agent's channel (`add_messages`)."""
    merged = dict(old or {})
    for agent, messages in (new or {}).items():
        combined = add_messages(merged.get(agent, []), messages)  # type: ignore[arg-type]
        merged[agent] = cast(list[AnyMessage], combined)
    return merged


class ChatInput(TypedDict):
    """What a caller passes for one chat turn."""

    messages: Annotated[list[AnyMessage], add_messages]


class ChatState(TypedDict, total=False):
    """A chat conversation as the supervisor keeps it (one thread per conversation)."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The operator's thread: what the operator said and what each agent did and answered."""
    agent_messages: Annotated[dict[str, list[AnyMessage]], merge_channels]
    """Each agent's own message channel by agent name: the tasks handed to it, its tool calls
    and answers. An agent sees only its channel, never the operator's whole thread."""
    route_to: str
    """Agent chosen by the supervisor for the current turn."""
    task: str
    """The task the supervisor handed to `route_to` this turn."""


class AgentState(TypedDict, total=False):
    """One agent's run over its own channel (the agent graphs' state)."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The agent's channel: its tasks, tool calls, tool results and answers."""
    write_decisions: Annotated[dict[str, WriteDecision], merge_decisions]
    """Decisions on proposed WRITE calls by tool call id; a WRITE runs only when approved."""


class IncidentInput(TypedDict):
    """What the watcher passes to start an incident run."""

    incident_id: str


class IncidentState(TypedDict, total=False):
    """One incident's run (one thread per incident)."""

    incident_id: str
    zone: str
    trigger: str
    states: Annotated[list[str], operator.add]
    """State names entered by this run, in order (the store holds the authoritative list)."""
    affected: list[str]
    """Workload ids running or routed in the zone when the anomaly was confirmed."""
    evaluations: list[dict[str, Any]]
    """Per affected workload: current node and score, best alternative and its score."""
    reroutes: Annotated[list[dict[str, Any]], operator.add]
    """Each reroute attempt made while ADAPTING, with its decision id and outcome."""
    stuck: list[dict[str, Any]]
    """Workloads ADAPTING could not move while the anomaly holds (non-empty: ESCALATED)."""
    resolution: str
    """Set by MONITORING of a later attempt when the anomaly cleared: the RESOLVED reason."""
    summary: str


class BillingInput(TypedDict):
    """What a caller passes to settle one completed workload."""

    workload_id: str


class BillingState(TypedDict, total=False):
    """One workload's settlement (one thread per workload: `billing:<workload id>`)."""

    workload_id: str
    settlement: dict[str, Any]
    """The Settlement (ledger charge, meter event, payout, receipt) as JSON."""
    payout: dict[str, Any] | None
    """The latest PayoutView as JSON, or None when no Solana payout is owed."""
    decision: dict[str, Any] | None
    """A person's answer to the approval interrupt: {"approve": bool, "by": str}."""
    profitability: dict[str, Any]
