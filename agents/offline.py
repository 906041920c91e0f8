"""Provide the offline chat model: deterministic, tool-calling, no network, no key.

It reads only the operator's messages to decide what to do (tool results are data it reports,
never instructions), emits real tool calls for the tools it is bound to, writes its answer
from their results, asks one question when a required job field is missing, and says plainly
when it does not understand. Every answer is labelled as coming from the offline model.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from agents.offline_answers import CAPABILITIES, answer_from_tool, labelled
from agents.offline_billing import LOOKUP, Plan, continue_billing, parse_billing, plan_billing
from agents.offline_parser import ParsedRequest, parse_request
from agents.workload import WorkloadSpec
from tools.agent_tools.registry import BaseTool

_NOW = re.compile(r"current time is (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\+00:00)")
_QUESTIONS = {
    "gpu_count": "How many GPUs does the job need (and which model, e.g. 4xH100)?",
    "duration_hours": "How long will the job run (e.g. 6 hours)?",
}
_INTENT_TOOLS = {
    "recommend": "recommend_placement",
    "route": "route_workload",
    "reroute": "reroute_workload",
    "compare": "compare_zones",
    "explain": "explain_decision",
    "incident": "incident_status",
    "nodes": "list_nodes",
}


def _now(messages: Sequence[BaseMessage]) -> datetime | None:
    for message in messages:
        if isinstance(message, SystemMessage) and (m := _NOW.search(str(message.content))):
            return datetime.fromisoformat(m.group(1))
    return None


def _call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    # Ids are random like a real server's; the graph never depends on their value.
    return {"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "tool_call"}


def _say(text: str) -> AIMessage:
    return AIMessage(content=labelled(text))


def _last_human(messages: Sequence[BaseMessage]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i
    return -1


def _pending_spec(messages: Sequence[BaseMessage], upto: int, now: datetime | None) -> WorkloadSpec:
    """Merge the job fields of the human turns since the last tool call (answers to questions)."""
    spec = WorkloadSpec()
    start = 0
    for i in range(upto - 1, -1, -1):
        message = messages[i]
        if isinstance(message, AIMessage) and message.tool_calls:
            start = i + 1
            break
    for message in messages[start:upto]:
        if isinstance(message, HumanMessage):
            spec = spec.merged(parse_request(str(message.content), now=now).spec)
    return spec


def _last_call_args(messages: Sequence[BaseMessage], name: str) -> dict[str, Any] | None:
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            for call in reversed(message.tool_calls):
                if call["name"] == name:
                    return dict(call["args"])
    return None


def _routed_since_recommendation(messages: Sequence[BaseMessage]) -> str | None:
    """Return the workload id routed after the latest recommendation, if any."""
    names: dict[str, str] = {}
    routed: str | None = None
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                names[str(call["id"])] = call["name"]
                if call["name"] == "recommend_placement":
                    routed = None
        elif isinstance(message, ToolMessage) and message.status != "error":
            if names.get(message.tool_call_id) == "route_workload":
                match = re.search(r'"id": ?"(wl_[0-9a-z]+)"', str(message.content))
                routed = match.group(1) if match else "(unknown id)"
    return routed


def _transfer_for(intent: str, tools: dict[str, dict[str, Any]]) -> str | None:
    for name, schema in tools.items():
        topics = str(schema.get("description", "")).lower()
        if name.startswith("transfer_to_") and re.search(rf"\btopics:.*\b{intent}\b", topics):
            return name
    return None


def _billing_step(plan: Plan) -> AIMessage:
    if isinstance(plan, str):
        return _say(plan)
    return AIMessage(content="", tool_calls=[_call(name, args) for name, args in plan])


def _billing_text(messages: Sequence[BaseMessage], at: int) -> str:
    """Return the billing request of turn `at`, joined to the question it answers.

    When the previous assistant turn ended with a question ("Which organisation do you mean?"),
    a bare reply ("gamer Jonas") completes the request that prompted it.
    """
    text = str(messages[at].content)
    asked = next((m for m in reversed(messages[:at]) if isinstance(m, AIMessage)), None)
    if asked is None or asked.tool_calls or not str(asked.content).rstrip().endswith("?"):
        return text
    before = _last_human(messages[: messages.index(asked)])
    return f"{messages[before].content} {text}" if before >= 0 else text


def _billing_follow_up(
    messages: Sequence[BaseMessage], at: int, now: datetime | None
) -> AIMessage | None:
    """After an organisation lookup and nothing else, make the billing call it enables."""
    calls = [
        c["name"] for m in messages[at + 1 :] if isinstance(m, AIMessage) for c in m.tool_calls
    ]
    last = messages[-1]
    if calls != [LOOKUP] or not isinstance(last, ToolMessage):
        return None
    query = parse_billing(_billing_text(messages, at), now=now)
    return _billing_step(continue_billing(query, last, now))


def _plan(
    request: ParsedRequest,
    messages: Sequence[BaseMessage],
    at: int,
    tools: dict[str, Any],
    now: datetime | None,
) -> AIMessage:
    intent = request.intent
    if request.problems:
        return _say(f"I could not use {', '.join(request.problems)}; please restate those values.")
    billing_text = _billing_text(messages, at)
    if LOOKUP in tools and (intent == "billing" or billing_text != str(messages[at].content)):
        query = parse_billing(billing_text, now=now)
        return _billing_step(plan_billing(query, messages, now))
    if (
        intent in ("help", "unknown")
        or (transfer := _transfer_for(intent, tools)) is None
        and _INTENT_TOOLS.get(intent) not in tools
    ):
        if intent == "billing":
            return _say(
                "Billing questions are not available here yet: no billing tools are registered."
            )
        if intent == "help":
            return _say(f"I can {CAPABILITIES}.")
        if intent == "unknown":
            return _say(f"I did not understand that. I can {CAPABILITIES}.")
        return _say(
            f"I cannot do that here: the {_INTENT_TOOLS.get(intent, intent)} tool is not available."
        )
    if transfer is not None:
        return AIMessage(
            content="", tool_calls=[_call(transfer, {"task": str(messages[at].content)[:500]})]
        )
    tool = _INTENT_TOOLS[intent]
    if intent in ("recommend", "route"):
        spec = _pending_spec(messages, at, now).merged(request.spec)
        if intent == "route" and spec.missing():
            previous = _last_call_args(messages[:at], "recommend_placement")
            if (routed := _routed_since_recommendation(messages[:at])) is not None:
                return _say(
                    f"That recommendation is already routed as workload {routed}. "
                    "Describe a new job to place another one."
                )
            if previous is None:
                return _say(
                    "There is no recommendation to route yet. "
                    "Describe the job first (GPUs, hours, zones)."
                )
            spec = WorkloadSpec.model_validate(previous).merged(request.spec)
        if missing := spec.missing():
            return _say(_QUESTIONS[missing[0]])
        return AIMessage(content="", tool_calls=[_call(tool, spec.tool_args())])
    if intent in ("reroute", "explain"):
        if not request.workload_ids:
            return _say("Which workload? Give its id (it looks like wl_1a2b3c4d5e6f).")
        return AIMessage(
            content="", tool_calls=[_call(tool, {"workload_id": w}) for w in request.workload_ids]
        )
    if intent == "compare":
        return AIMessage(
            content="",
            tool_calls=[_call(tool, {"zones": request.zones, "hours": request.horizon_hours})],
        )
    if intent == "nodes":
        args: dict[str, Any] = {}
        # Named zones ("in France or Spain"), else a region ("in the US", "EU only").
        zones = request.zones or request.spec.allowed_zones
        if zones:
            args["zones"] = list(zones)
        if request.spec.gpu_model:
            args["gpu_model"] = request.spec.gpu_model
        return AIMessage(content="", tool_calls=[_call(tool, args)])
    return AIMessage(content="", tool_calls=[_call(tool, {})])


def _report(messages: Sequence[BaseMessage], at: int) -> AIMessage:
    names: dict[str, str] = {}
    parts: list[str] = []
    for message in messages[at + 1 :]:
        if isinstance(message, AIMessage):
            names |= {call_id: c["name"] for c in message.tool_calls if (call_id := c.get("id"))}
        elif isinstance(message, ToolMessage):
            name = names.get(message.tool_call_id, message.name or "tool")
            parts.append(
                answer_from_tool(name, str(message.content), is_error=message.status == "error")
            )
    return _say(" ".join(parts))


def _structured(
    schema_name: str, messages: Sequence[BaseMessage], now: datetime | None
) -> AIMessage:
    at = _last_human(messages)
    text = str(messages[at].content) if at >= 0 else ""
    spec = parse_request(text, now=now).spec
    return AIMessage(content="", tool_calls=[_call(schema_name, spec.model_dump(mode="json"))])


def respond(
    messages: Sequence[BaseMessage], tools: dict[str, dict[str, Any]], tool_choice: Any
) -> AIMessage:
    """Return the offline model's next message for a conversation.

    Args:
        messages: The conversation so far (system, human, AI and tool messages).
        tools: The bound tools as OpenAI tool schemas' `function` objects, keyed by name.
        tool_choice: The forced tool, if any (structured output forces `WorkloadSpec`).
    """
    now = _now(messages)
    if "WorkloadSpec" in tools and tool_choice is not None:
        return _structured("WorkloadSpec", messages, now)
    at = _last_human(messages)
    if at < 0:
        return _say(f"Hello. I can {CAPABILITIES}.")
    if any(isinstance(m, ToolMessage) for m in messages[at + 1 :]):
        return _billing_follow_up(messages, at, now) or _report(messages, at)
    request = parse_request(str(messages[at].content), now=now)
    return _plan(request, messages, at, tools, now)


class OfflineChatModel(BaseChatModel):
    """A deterministic chat model for running the product with no model endpoint."""

    @property
    def _llm_type(self) -> str:
        return "tgtg-offline"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools the way OpenAI-compatible models do (schemas in the request)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = {t["function"]["name"]: t["function"] for t in kwargs.get("tools") or []}
        message = respond(messages, tools, kwargs.get("tool_choice"))
        return ChatResult(generations=[ChatGeneration(message=message)])


def is_offline(model: BaseModel | object) -> bool:
    """Return True when `model` is the offline model (callers label its output)."""
    return isinstance(model, OfflineChatModel)


__all__ = ["OfflineChatModel", "is_offline", "respond"]
