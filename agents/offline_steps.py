"""Steps of the offline model's conversation: tool calls, results read as JSON, bookings.

Shared by `agents.offline`: build a tool call or a labelled answer, read earlier tool results
(JSON, never regex), find the latest recommendation and whether it was booked since, and
continue a multi-step request one write at a time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agents.offline_answers import labelled
from agents.offline_parser import ParsedRequest


def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Return a tool call; ids are random like a real server's (nothing depends on them)."""
    return {"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "tool_call"}


def say(text: str) -> AIMessage:
    """Return an answer labelled as the offline model's."""
    return AIMessage(content=labelled(text))


def last_human(messages: Sequence[BaseMessage]) -> int:
    """Return the index of the operator's latest message, or -1."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i
    return -1


def last_call_args(messages: Sequence[BaseMessage], name: str) -> dict[str, Any] | None:
    """Return the arguments of the latest call of tool `name`, or None."""
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            for call in reversed(message.tool_calls):
                if call["name"] == name:
                    return dict(call["args"])
    return None


def results(messages: Sequence[BaseMessage]) -> list[tuple[str, dict[str, Any]]]:
    """Return `(tool name, JSON result)` of every successful tool call, in order."""
    names: dict[str, str] = {}
    out: list[tuple[str, dict[str, Any]]] = []
    for message in messages:
        if isinstance(message, AIMessage):
            names |= {str(c["id"]): c["name"] for c in message.tool_calls}
        elif isinstance(message, ToolMessage) and message.status != "error":
            try:
                result = json.loads(str(message.content))
            except ValueError:
                continue
            if isinstance(result, dict):
                out.append((names.get(message.tool_call_id, message.name or ""), result))
    return out


def latest_recommendation(
    messages: Sequence[BaseMessage],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Return the latest recommendation's result and the workload booked from it since, if any.

    An empty result means no recommendation was made in this conversation.
    """
    latest: dict[str, Any] = {}
    booked: dict[str, Any] | None = None
    for name, result in results(messages):
        if name == "recommend_placement":
            latest, booked = result, None
        elif name == "route_workload" and latest:
            if result.get("recommendation_id") == latest.get("recommendation_id"):
                booked = dict(result.get("workload") or {})
    return latest, booked


def book(messages: Sequence[BaseMessage], at: int) -> AIMessage:
    """Propose booking the latest recommendation (a person approves it), or say why not."""
    latest, booked = latest_recommendation(messages[:at])
    if booked is not None:
        return say(
            f"That recommendation is already booked as workload {booked.get('id')} on node "
            f"{booked.get('node_id')} in {booked.get('zone')}. "
            "Describe a new job to place another one."
        )
    if not latest:
        return say(
            "There is no recommendation to book yet. Describe the job first (GPUs, hours, zones)."
        )
    rec_id = latest.get("recommendation_id")
    if not rec_id:
        return say(
            "The last recommendation found no node for the job, so there is nothing to book."
        )
    return AIMessage(content="", tool_calls=[call("route_workload", {"recommendation_id": rec_id})])


def next_write(
    request: ParsedRequest, messages: Sequence[BaseMessage], at: int
) -> AIMessage | None:
    """Continue a booking or a reroute of several workloads after this turn's tool results.

    One write per step: after "book it" with a new job, the recommendation comes first and the
    booking of its id follows; a reroute of several named workloads proposes one at a time.
    """
    calls = [c for m in messages[at + 1 :] if isinstance(m, AIMessage) for c in m.tool_calls]
    names = [c["name"] for c in calls]
    if request.intent == "route" and names == ["recommend_placement"]:
        done = results(messages[at + 1 :])
        if done and done[-1][0] == "recommend_placement":
            rec_id = done[-1][1].get("recommendation_id")
            if rec_id:
                return AIMessage(
                    content="",
                    tool_calls=[call("route_workload", {"recommendation_id": rec_id})],
                )
    if request.intent == "reroute" and names and set(names) == {"reroute_workload"}:
        moved = {c["args"].get("workload_id") for c in calls}
        rest = [w for w in request.workload_ids if w not in moved]
        if rest:
            return AIMessage(
                content="", tool_calls=[call("reroute_workload", {"workload_id": rest[0]})]
            )
    return None
