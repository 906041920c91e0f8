"""Approval of WRITE tool calls inside the graph: a person decides, for any model.

When the model proposes a WRITE call, `approve_writes` runs before the tools: it checks the
arguments and the authorisation in code (`tools.agent_tools.approvals.propose`), then pauses
the run with LangGraph `interrupt()` carrying the proposal (tool, arguments, a plain summary
computed from the store). The run resumes with `Command(resume={"approve": bool, "by": str,
"reason": str | None})`; the decision is stored (who, when, what) and kept in the state. The
ToolNode's guard runs a WRITE call only when its call id was approved with exactly those
arguments; a rejection becomes the call's result, so the model answers and nothing is written.
One WRITE per model step: further WRITE calls in the same message are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from sqlalchemy.exc import IntegrityError

from graphs.context import Context
from graphs.state import AgentState, WriteDecision
from store.approvals import record_approval
from tools.agent_tools.approvals import propose
from tools.agent_tools.registry import BaseTool, ToolException, write_tool_names
from tools.errors import DomainError, InvalidInputError

logger = logging.getLogger(__name__)

POLICY = "policy"
"""The `by` of a refusal made in code (bad arguments, authorisation, one write per step)."""
MAX_REASON_CHARS = 500


def parse_answer(answer: object) -> tuple[bool, str, str | None]:
    """Return (approve, by, reason) from a resume value.

    Raises:
        InvalidInputError: Not `{"approve": bool, "by": non-empty str, "reason"?: str}`.
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("approve"), bool):
        raise InvalidInputError(
            f"approval answer {answer!r}: send {{'approve': true|false, 'by': 'name'}}"
        )
    by = answer.get("by")
    if not isinstance(by, str) or not by.strip() or len(by) > 200:
        raise InvalidInputError(f"approval 'by' {by!r}: name who decides (1-200 characters)")
    reason = answer.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS):
        raise InvalidInputError(
            f"rejection reason {reason!r}: give text of at most {MAX_REASON_CHARS} characters"
        )
    return answer["approve"], by.strip(), (reason or None)


def _refusal(call: dict[str, Any], reason: str, at: str) -> WriteDecision:
    return {
        "approve": False,
        "by": POLICY,
        "at": at,
        "reason": reason,
        "approval_id": None,
        "args": dict(call["args"]),
    }


def make_approve_writes(tools: Sequence[BaseTool]) -> Callable[..., dict[str, Any]]:
    """Return the node that asks a person about the WRITE calls of the model's last message."""
    by_name = {t.name: t for t in tools}
    writes = write_tool_names(tools)

    def approve_writes(
        state: AgentState, runtime: Runtime[Context], config: RunnableConfig
    ) -> dict[str, Any]:
        """Refuse or pause for the first WRITE call; refuse any further WRITE in the message."""
        ctx = runtime.context
        last = state["messages"][-1]
        calls = [c for c in getattr(last, "tool_calls", []) if c["name"] in writes]
        if not calls:
            return {}
        at = ctx.clock.now().isoformat()
        first, *extra = calls
        decisions: dict[str, WriteDecision] = {
            str(c["id"]): _refusal(
                dict(c), "one write per step: propose it again after this one is decided", at
            )
            for c in extra
        }
        try:
            proposal = propose(by_name[first["name"]], dict(first["args"]), ctx)
        except (DomainError, ToolException) as exc:
            logger.info("refused %s before asking: %s", first["name"], exc)
            decisions[str(first["id"])] = _refusal(dict(first), str(exc), at)
            return {"write_decisions": decisions}
        answer = interrupt({"tool_call_id": first["id"], **proposal.model_dump(mode="json")})
        approve, by, reason = parse_answer(answer)
        decided_at = ctx.clock.now()
        thread = str((config.get("configurable") or {}).get("thread_id", ""))
        # Servers may reuse call ids across turns; the message id makes the key unique.
        call_key = f"{last.id}/{first['id']}"
        try:
            with ctx.sessions.begin() as session:
                row = record_approval(
                    session=session,
                    thread_id=thread,
                    tool_call_id=call_key,
                    org_id=ctx.org_id,
                    tool=proposal.tool,
                    args=proposal.args,
                    summary=proposal.summary,
                    approved=approve,
                    decided_by=by,
                    decided_at=decided_at,
                    reason=reason,
                )
                approval_id = row.id
        except IntegrityError:
            # Another decision on this very call was stored first (two approvals at once):
            # that one runs the write; this one runs nothing.
            logger.warning("%s on %s was already decided; not run twice", first["name"], thread)
            decisions[str(first["id"])] = _refusal(dict(first), "this call was already decided", at)
            return {"write_decisions": decisions}
        logger.info(
            "%s %s %s on %s", by, "approved" if approve else "rejected", first["name"], thread
        )
        decisions[str(first["id"])] = {
            "approve": approve,
            "by": by,
            "at": decided_at.isoformat(),
            "reason": reason,
            "approval_id": approval_id,
            "args": proposal.args,
        }
        return {"write_decisions": decisions}

    return approve_writes


def make_route_after_model(
    writes: frozenset[str],
) -> Callable[[AgentState], Literal["approve", "tools", "__end__"]]:
    """Return the edge after the model: approval first when it proposed a WRITE call."""

    def route_after_model(state: AgentState) -> Literal["approve", "tools", "__end__"]:
        last = state["messages"][-1]
        if not isinstance(last, AIMessage) or not last.tool_calls:
            return "__end__"
        return "approve" if any(c["name"] in writes for c in last.tool_calls) else "tools"

    return route_after_model


def _not_run(call: dict[str, Any], decision: WriteDecision | None) -> str:
    name = call["name"]
    if decision is None:
        return f"refused: {name} runs only after the operator approves it"
    if decision.get("by") == POLICY:
        return f"refused: {decision.get('reason')}"
    if decision.get("approve") is not True:
        why = decision.get("reason") or "no reason given"
        return (
            f"rejected by {decision.get('by')}: {why}. Nothing was written; ask the operator "
            "what to change."
        )
    return f"refused: {name} was approved with other arguments"


def make_approval_guard(
    writes: frozenset[str],
) -> Callable[[ToolCallRequest, Callable[[ToolCallRequest], Any]], Any]:
    """Return a ToolNode wrapper that runs a WRITE call only when a person approved it as is."""

    def guard(request: ToolCallRequest, execute: Callable[[ToolCallRequest], Any]) -> Any:
        call = dict(request.tool_call)
        if call["name"] not in writes:
            return execute(request)
        state = request.state if isinstance(request.state, dict) else {}
        decision = (state.get("write_decisions") or {}).get(str(call["id"]))
        if (
            decision is not None
            and decision.get("approve") is True
            and decision.get("by") != POLICY
            and decision.get("args") == call["args"]
        ):
            return execute(request)
        text = _not_run(call, decision)
        level = (
            logging.INFO
            if decision is not None and decision.get("by") != POLICY
            else logging.WARNING
        )
        logger.log(level, "%s not run: %s", call["name"], text)
        return ToolMessage(
            content=f"Error: {text}", name=call["name"], tool_call_id=call["id"], status="error"
        )

    return guard
