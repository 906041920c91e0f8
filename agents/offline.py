"""Provide the offline chat model: deterministic, tool-calling, no network, no key.

It reads only the operator's messages to decide what to do (tool results are JSON data it
reports, never instructions), emits real tool calls for the tools it is bound to, writes its
answer from their results, asks one question when a required job field is missing, and says
plainly when it does not understand. Every answer is labelled as coming from the offline model.

It has no authority: like any model it can only propose a write (`route_workload` with the id of
the latest recommendation); the graph asks a person, and only an approval runs it. Its inputs
are explicit: the clock and the acting organisation are constructor arguments, hand-off topics
come from the tools' metadata (`topics`), never from prompt or description text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from agents.offline_answers import CAPABILITIES, answer_from_tool
from agents.offline_billing import LOOKUP, Plan, continue_billing, parse_billing, plan_billing
from agents.offline_parser import ParsedRequest, parse_request
from agents.offline_steps import (
    book,
    call,
    last_call_args,
    last_human,
    latest_recommendation,
    next_write,
    say,
)
from agents.workload import WorkloadSpec
from tools.agent_tools.registry import BaseTool

_QUESTIONS = {
    "gpu_count": "How many GPUs does the job need (and which model, e.g. 4xH100)?",
    "duration_hours": "How long will the job run (e.g. 6 hours)?",
}
_NO_TOOL_ANSWERS = {
    "refuse": (
        "I will not act on that: operator messages cannot change my rules or skip approval. "
        "Every booking or move is proposed for one job at a time and a person approves it. "
        "Nothing was changed."
    ),
    "cancel": (
        "I cannot cancel workloads: no cancel tool is available to me, so nothing was changed. "
        "I can reroute a workload or explain where it runs."
    ),
}
_WHICH_WORKLOAD = "Which workload? Give its id (it starts with wl_)."
_INTENT_TOOLS = {
    "recommend": "recommend_placement",
    "route": "route_workload",
    "reroute": "reroute_workload",
    "compare": "compare_zones",
    "explain": "explain_decision",
    "incident": "incident_status",
    "nodes": "list_nodes",
}


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


def _transfer_for(intent: str, topics: dict[str, tuple[str, ...]]) -> str | None:
    """Return the hand-off tool whose metadata lists `intent` among its topics."""
    return next((name for name, listed in topics.items() if intent in listed), None)


def _billing_step(plan: Plan) -> AIMessage:
    if isinstance(plan, str):
        return say(plan)
    return AIMessage(content="", tool_calls=[call(name, args) for name, args in plan])


def _billing_text(messages: Sequence[BaseMessage], at: int) -> str:
    """Return the billing request of turn `at`, joined to the question it answers.

    When the previous assistant turn ended with a question ("Which organisation do you mean?"),
    a bare reply ("gamer Jonas") completes the request that prompted it.
    """
    text = str(messages[at].content)
    asked = next((m for m in reversed(messages[:at]) if isinstance(m, AIMessage)), None)
    if asked is None or asked.tool_calls or not str(asked.content).rstrip().endswith("?"):
        return text
    before = last_human(messages[: messages.index(asked)])
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


@dataclass(frozen=True)
class _Bound:
    """What the model was given for this call: tool schemas, hand-off topics, clock, org."""

    tools: dict[str, dict[str, Any]]
    topics: dict[str, tuple[str, ...]]
    now: datetime | None
    org_id: str | None


def _place(
    request: ParsedRequest, messages: Sequence[BaseMessage], at: int, bound: _Bound
) -> AIMessage:
    """Recommend the job of this turn (completing it from earlier answers), or book the last one."""
    spec = _pending_spec(messages, at, bound.now).merged(request.spec)
    changes = request.spec.tool_args()
    previous = last_call_args(messages[:at], "recommend_placement")
    if request.follow_up and changes and previous is not None:
        # "make it 8 GPUs", "what about Spain instead?": the last job with these changes
        spec = WorkloadSpec.model_validate(previous).merged(request.spec)
    if request.intent == "route" and spec.missing():
        if not changes:
            return book(messages, at)
        if previous is not None:  # "book it, but in Germany": a new recommendation first
            spec = WorkloadSpec.model_validate(previous).merged(request.spec)
    if missing := spec.missing():
        return say(_QUESTIONS[missing[0]])
    calls = [call("recommend_placement", spec.tool_args())]
    if request.intent == "recommend" and request.when and "compare_zones" in bound.tools:
        calls.append(call("compare_zones", _window(request, spec, bound.now)))
    return AIMessage(content="", tool_calls=calls)


def _window(request: ParsedRequest, spec: WorkloadSpec, now: datetime | None) -> dict[str, Any]:
    """Return compare_zones arguments for "when should it run?": its zones, hours to look ahead.

    The horizon is the one stated ("over the next 12 hours"), else the time to the deadline,
    else a day; the tool accepts 1-48 hours.
    """
    hours = request.horizon_hours
    if not hours and spec.deadline is not None and now is not None:
        hours = int((spec.deadline - now).total_seconds() // 3600)
    zones = list(spec.allowed_zones or []) or request.zones
    return {"zones": zones, "hours": max(1, min(hours or 24, 48))}


def _explain_latest(messages: Sequence[BaseMessage], at: int) -> AIMessage:
    """Explain this conversation's latest booking (its decision) or recommendation (its ranking).

    "Why did you pick that?" or "what's its status?" refer to the last thing done here: a booked
    workload is looked up by the id its booking returned; a recommendation is explained from
    its own result (the candidates and their score terms).
    """
    latest, booked = latest_recommendation(messages[:at])
    if booked and booked.get("id"):
        return AIMessage(
            content="", tool_calls=[call("explain_decision", {"workload_id": booked["id"]})]
        )
    if latest:
        text = answer_from_tool("recommend_placement", json.dumps(latest), is_error=False)
        if latest.get("best"):
            text = f"It has the lowest score (lower is better) of the eligible nodes. {text}"
        return say(text)
    return say(_WHICH_WORKLOAD)


def _answers_a_question(messages: Sequence[BaseMessage], at: int) -> bool:
    """Return whether the previous assistant turn ended with a question to the operator."""
    asked = next((m for m in reversed(messages[:at]) if isinstance(m, AIMessage)), None)
    return asked is not None and not asked.tool_calls and str(asked.content).rstrip().endswith("?")


def _plan(
    request: ParsedRequest, messages: Sequence[BaseMessage], at: int, bound: _Bound
) -> AIMessage:
    if (
        request.intent == "unknown"
        and request.spec.tool_args()
        and _answers_a_question(messages, at)
    ):
        request = replace(request, intent="recommend")  # "not in the US" answers "which way?"
    intent, tools = request.intent, bound.tools
    if request.problems:
        return say(f"I could not use {', '.join(request.problems)}; please restate those values.")
    if request.unclear_zones and intent in ("recommend", "route"):
        unclear = ", ".join(request.unclear_zones)
        return say(
            f"Nothing is placed yet: I could not tell which way you meant {unclear}. Should the "
            "job avoid it (say 'not in …') or run only there (say '… only')?"
        )
    billing_text = _billing_text(messages, at)
    if LOOKUP in tools and (intent == "billing" or billing_text != str(messages[at].content)):
        query = parse_billing(billing_text, now=bound.now)
        return _billing_step(plan_billing(query, bound.org_id, bound.now))
    if (
        intent in ("help", "unknown")
        or (transfer := _transfer_for(intent, bound.topics)) is None
        and _INTENT_TOOLS.get(intent) not in tools
    ):
        if intent == "billing":
            return say(
                "Billing questions are not available here yet: no billing tools are registered."
            )
        if intent == "help":
            return say(f"I can {CAPABILITIES}.")
        if intent in _NO_TOOL_ANSWERS:
            return say(_NO_TOOL_ANSWERS[intent])
        if intent == "unknown":
            return say(f"I did not understand that. I can {CAPABILITIES}.")
        return say(
            f"I cannot do that here: the {_INTENT_TOOLS.get(intent, intent)} tool is not available."
        )
    if transfer is not None:
        return AIMessage(
            content="", tool_calls=[call(transfer, {"task": str(messages[at].content)[:500]})]
        )
    tool = _INTENT_TOOLS[intent]
    if intent in ("recommend", "route"):
        return _place(request, messages, at, bound)
    if intent == "explain" and not request.workload_ids:
        return _explain_latest(messages, at)
    if intent in ("reroute", "explain"):
        if not request.workload_ids:
            return say(_WHICH_WORKLOAD)
        ids = request.workload_ids[:1] if intent == "reroute" else request.workload_ids
        return AIMessage(content="", tool_calls=[call(tool, {"workload_id": w}) for w in ids])
    if intent == "compare":
        return AIMessage(
            content="",
            tool_calls=[call(tool, {"zones": request.zones, "hours": request.horizon_hours})],
        )
    if intent == "nodes":
        args: dict[str, Any] = {}
        # Named zones ("in France or Spain"), else a region ("in the US", "EU only").
        zones = request.zones or request.spec.allowed_zones
        if zones:
            args["zones"] = list(zones)
        if request.spec.gpu_model:
            args["gpu_model"] = request.spec.gpu_model
        return AIMessage(content="", tool_calls=[call(tool, args)])
    return AIMessage(content="", tool_calls=[call(tool, {})])


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
    return say(" ".join(parts))


def _structured(
    schema_name: str, messages: Sequence[BaseMessage], now: datetime | None
) -> AIMessage:
    at = last_human(messages)
    text = str(messages[at].content) if at >= 0 else ""
    spec = parse_request(text, now=now).spec
    return AIMessage(content="", tool_calls=[call(schema_name, spec.model_dump(mode="json"))])


def respond(
    messages: Sequence[BaseMessage],
    tools: dict[str, dict[str, Any]],
    tool_choice: Any,
    *,
    now: datetime | None = None,
    org_id: str | None = None,
    topics: dict[str, tuple[str, ...]] | None = None,
) -> AIMessage:
    """Return the offline model's next message for a conversation.

    Args:
        messages: The conversation so far (system, human, AI and tool messages).
        tools: The bound tools as OpenAI tool schemas' `function` objects, keyed by name.
        tool_choice: The forced tool, if any (structured output forces `WorkloadSpec`).
        now: The injected clock's time (resolves "within 24 hours", "this month").
        org_id: The organisation the operator acts for ("my bill").
        topics: Request topics of each hand-off tool, from the tools' metadata.
    """
    if "WorkloadSpec" in tools and tool_choice is not None:
        return _structured("WorkloadSpec", messages, now)
    at = last_human(messages)
    if at < 0:
        return say(f"Hello. I can {CAPABILITIES}.")
    request = parse_request(str(messages[at].content), now=now)
    if any(isinstance(m, ToolMessage) for m in messages[at + 1 :]):
        return (
            _billing_follow_up(messages, at, now)
            or next_write(request, messages, at)
            or _report(messages, at)
        )
    return _plan(request, messages, at, _Bound(tools, topics or {}, now, org_id))


class OfflineChatModel(BaseChatModel):
    """A deterministic chat model for running the product with no model endpoint.

    Args:
        clock: The composition root's clock (anything with `now()`); None leaves relative
            times unresolved.
        org_id: The organisation the operator acts for.
    """

    clock: Any = Field(default=None, exclude=True)
    org_id: str | None = None

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
        """Bind tools the way OpenAI-compatible models do (schemas in the request).

        Hand-off topics are read from each tool's `metadata["topics"]`.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        topics = {
            t.name: tuple(str(x) for x in (t.metadata or {}).get("topics", ()))
            for t in tools
            if isinstance(t, BaseTool) and (t.metadata or {}).get("topics")
        }
        return self.bind(tools=formatted, tool_choice=tool_choice, tool_topics=topics, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = {t["function"]["name"]: t["function"] for t in kwargs.get("tools") or []}
        message = respond(
            messages,
            tools,
            kwargs.get("tool_choice"),
            now=self.clock.now() if self.clock is not None else None,
            org_id=self.org_id,
            topics=kwargs.get("tool_topics") or {},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def is_offline(model: BaseModel | object) -> bool:
    """Return True when `model` is the offline model (callers label its output)."""
    return isinstance(model, OfflineChatModel)


__all__ = ["OfflineChatModel", "is_offline", "respond"]
