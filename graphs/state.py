"""Define the graph state schemas and their reducers (plain JSON-shaped data only)."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph import add_messages
from typing_extensions import TypedDict


class WriteGrant(TypedDict):
    """What the operator's latest message allows the agent to change (decided in code)."""

    tools: list[str]
    """WRITE tools the operator asked for in plain words (e.g. route_workload for 'route it')."""
    workload_ids: list[str]
    """Workloads the operator named; a reroute may touch only these."""


class ChatInput(TypedDict):
    """What a caller passes for one chat turn."""

    messages: Annotated[list[AnyMessage], add_messages]


class ChatState(TypedDict, total=False):
    """A chat conversation (one thread per conversation)."""

    messages: Annotated[list[AnyMessage], add_messages]
    write_grant: WriteGrant
    """Replaced at the start of every operator turn; never set by the model."""
    route_to: str
    """Agent chosen by the supervisor for the current turn."""


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
