"""Run chat turns and approval decisions through the supervisor graph; summarise them for callers.

One conversation is one checkpoint thread. A turn that proposes a WRITE stops for approval:
its summary carries `pending_approval` ({tool, args, summary}) and nothing is written until
`decide_turn` resumes the run with a person's decision (CLI, API and console all go through
here). Deciding again when nothing waits returns the earlier decision and its workload;
nothing changes.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot

from graphs.approval import parse_answer
from graphs.checkpoint import chat_thread
from graphs.context import CHAT_RECURSION_LIMIT, Context
from graphs.supervisor import AgentRegistry, build_supervisor_graph
from store.approvals import latest_approval
from tools.broker.recommendations import committed_workload
from tools.broker.workloads import WorkloadView, load_workload
from tools.errors import ConflictError, NotFoundError

logger = logging.getLogger(__name__)
ChatGraph = CompiledStateGraph[Any, Any, Any, Any]


def chat_config(thread_id: str) -> Any:
    """Return the run config of conversation `thread_id`."""
    return {
        "configurable": {"thread_id": chat_thread(thread_id)},
        "recursion_limit": CHAT_RECURSION_LIMIT,
    }


def _chosen(name: str, result: dict[str, Any]) -> tuple[str | None, str | None]:
    if name == "recommend_placement" and result.get("best"):
        return result["best"]["node_id"], result["best"]["zone"]
    if name == "route_workload":
        wl = result.get("workload", {})
        return wl.get("node_id"), wl.get("zone")
    if name == "reroute_workload":
        d = result.get("decision", {})
        return d.get("node_id"), d.get("zone")
    return None, None


def _messages(snapshot: StateSnapshot) -> list[BaseMessage]:
    """Return the operator's thread so far, plus the steps of an agent paused for approval.

    A paused agent's steps are still only in its own run; its task (a human message on its
    channel) and its earlier steps (already on the thread) are not repeated.
    """
    thread = list(snapshot.values.get("messages", []))
    known = {m.id for m in thread}
    for task in snapshot.tasks:
        if task.interrupts and isinstance(task.state, StateSnapshot):
            thread += [
                m
                for m in _messages(task.state)
                if m.id not in known and not isinstance(m, HumanMessage)
            ]
    return thread


def thread_messages(graph: ChatGraph, thread_id: str) -> list[BaseMessage]:
    """Return every message of conversation `thread_id`, a paused agent's steps included."""
    return _messages(graph.get_state(chat_config(thread_id), subgraphs=True))


def pending_approval(graph: ChatGraph, thread_id: str) -> dict[str, Any] | None:
    """Return the proposal waiting for approval on `thread_id` ({tool, args, summary}), or None."""
    snapshot = graph.get_state(chat_config(thread_id), subgraphs=True)
    for item in snapshot.interrupts:
        value = item.value
        if isinstance(value, dict) and "tool" in value:
            return {k: value[k] for k in ("tool", "args", "summary") if k in value}
    return None


def _summary(graph: ChatGraph, thread_id: str, seen: set[str]) -> dict[str, Any]:
    snapshot = graph.get_state(chat_config(thread_id), subgraphs=True)
    messages = _messages(snapshot)
    new = [m for m in messages if m.id not in seen and not isinstance(m, HumanMessage)]
    names = {c["id"]: c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    args = {c["id"]: c["args"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    node = zone = None
    written = False
    calls: list[str] = []
    call_args: list[dict[str, Any]] = []
    for m in new:
        if not isinstance(m, ToolMessage):
            continue
        name = names.get(m.tool_call_id, m.name or "")
        calls.append(name)
        call_args.append({"name": name, "args": dict(args.get(m.tool_call_id) or {})})
        if m.status == "error":
            continue
        try:
            result = json.loads(str(m.content))
        except ValueError:
            continue
        if not isinstance(result, dict):  # list results (payouts, profitability) write nothing
            continue
        written = written or bool(result.get("written"))
        picked = _chosen(name, result)
        if picked[0] is not None:
            node, zone = picked
    pending = pending_approval(graph, thread_id)
    if pending is not None:
        answer = (
            f"Approval needed: {pending['summary'].get('text', pending['tool'])} "
            "Approve or reject it; nothing is written until then."
        )
    else:
        last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        answer = str(last.content) if last is not None else ""
    return {
        "answer": answer,
        "tool_calls": calls,
        "tool_call_args": call_args,
        "node": node,
        "zone": zone,
        "written": written,
        "pending_approval": pending,
        "thread": thread_id,
        "agent": snapshot.values.get("route_to"),
    }


def _seen(graph: ChatGraph, thread_id: str) -> set[str]:
    snapshot = graph.get_state(chat_config(thread_id), subgraphs=True)
    return {m.id for m in _messages(snapshot) if m.id}


def run_turn(graph: ChatGraph, ctx: Context, text: str, *, thread_id: str) -> dict[str, Any]:
    """Send `text` on `thread_id` through a compiled chat graph and summarise the turn.

    A proposal still waiting for approval is dropped: the new message supersedes it.
    """
    seen = _seen(graph, thread_id)
    graph.invoke({"messages": [HumanMessage(text)]}, chat_config(thread_id), context=ctx)
    return _summary(graph, thread_id, seen)


def _workload_of(ctx: Context, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
    with ctx.sessions() as session:
        if tool == "route_workload" and isinstance(args.get("recommendation_id"), str):
            wl = committed_workload(session=session, recommendation_id=args["recommendation_id"])
            return WorkloadView.of(wl).model_dump(mode="json") if wl is not None else None
        if tool == "reroute_workload" and isinstance(args.get("workload_id"), str):
            try:
                found = load_workload(session=session, workload_id=args["workload_id"])
            except NotFoundError:
                return None
            return WorkloadView.of(found).model_dump(mode="json")
    return None


def _already_decided(ctx: Context, thread_id: str, *, approve: bool) -> dict[str, Any]:
    """Answer a decision when nothing waits: repeat an approval, refuse anything else."""
    with ctx.sessions() as session:
        last = latest_approval(session=session, thread_id=chat_thread(thread_id))
    if last is None or not last.approved:
        raise NotFoundError(
            f"nothing is waiting for approval on thread {thread_id!r}; ask the agent for a "
            "recommendation and to book it first"
        )
    when = last.decided_at.isoformat()
    if not approve:
        raise ConflictError(
            f"{last.tool} on thread {thread_id!r} was already approved by {last.decided_by} at "
            f"{when}; nothing is waiting for approval"
        )
    workload = _workload_of(ctx, last.tool, dict(last.args))
    target = f": workload {workload['id']}" if workload else ""
    return {
        "answer": (
            f"Nothing is waiting for approval: {last.decided_by} already approved {last.tool} "
            f"at {when}{target}. Nothing changed."
        ),
        "tool_calls": [],
        "tool_call_args": [],
        "node": workload.get("node_id") if workload else None,
        "zone": workload.get("zone") if workload else None,
        "written": False,
        "pending_approval": None,
        "thread": thread_id,
        "agent": None,
        "already_decided": True,
        "decision": _decision_view(
            last.tool, dict(last.args), last.approved, last.decided_by, when, last.reason
        ),
        "workload": workload,
    }


def _decision_view(
    tool: str, args: dict[str, Any], approve: bool, by: str, at: str, reason: str | None
) -> dict[str, Any]:
    return {"tool": tool, "args": args, "approve": approve, "by": by, "at": at, "reason": reason}


def run_decision(
    graph: ChatGraph,
    ctx: Context,
    *,
    thread_id: str,
    approve: bool,
    by: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """Approve or reject the write waiting on `thread_id`, run the rest of the turn, summarise.

    Raises:
        InvalidInputError: `by` or `reason` is unusable (named in the message).
        NotFoundError: Nothing waits and nothing was approved on this thread.
        ConflictError: A rejection when the last proposal was already approved.
    """
    answer = {"approve": approve, "by": by, "reason": reason if not approve else None}
    parse_answer(answer)
    pending = pending_approval(graph, thread_id)
    if pending is None:
        return _already_decided(ctx, thread_id, approve=approve)
    seen = _seen(graph, thread_id)
    with ctx.sessions() as session:
        before = latest_approval(session=session, thread_id=chat_thread(thread_id))
    graph.invoke(Command(resume=answer), chat_config(thread_id), context=ctx)
    out = _summary(graph, thread_id, seen)
    with ctx.sessions() as session:
        last = latest_approval(session=session, thread_id=chat_thread(thread_id))
    out["decision"] = out["workload"] = None
    if last is not None and (before is None or last.id != before.id):
        out["decision"] = _decision_view(
            last.tool,
            dict(last.args),
            last.approved,
            last.decided_by,
            last.decided_at.isoformat(),
            last.reason,
        )
        out["workload"] = _workload_of(ctx, last.tool, dict(last.args)) if last.approved else None
    out["already_decided"] = False
    return out


@functools.cache
def _default_graph() -> ChatGraph:
    return build_supervisor_graph()


def chat_graph(
    checkpointer: BaseCheckpointSaver[Any] | None, *, registry: AgentRegistry | None = None
) -> ChatGraph:
    """Return the chat graph over `checkpointer`; the default agents' graph compiles once.

    Compiling takes longer than an offline turn, so the process keeps one compiled graph and
    binds each caller's checkpointer to a copy of it.
    """
    if registry is not None:
        return build_supervisor_graph(registry=registry, checkpointer=checkpointer)
    return _default_graph().copy(update={"checkpointer": checkpointer})


def chat_turn(
    ctx: Context,
    checkpointer: BaseCheckpointSaver[Any],
    text: str,
    *,
    thread_id: str,
    registry: AgentRegistry | None = None,
) -> dict[str, Any]:
    """Send `text` on conversation `thread_id` and return the answer and what the tools did.

    Returns:
        `answer`, `tool_calls` (names in order; `tool_call_args`: `{name, args}` of each),
        `node` and `zone` when a node was chosen,
        `written` (a WRITE tool wrote), `pending_approval` ({tool, args, summary} when the turn
        stopped for approval, else None), `thread` and `agent`.
    """
    graph = chat_graph(checkpointer, registry=registry)
    return run_turn(graph, ctx, text, thread_id=thread_id)


def decide_turn(
    ctx: Context,
    checkpointer: BaseCheckpointSaver[Any],
    *,
    thread_id: str,
    approve: bool,
    by: str,
    reason: str | None = None,
    registry: AgentRegistry | None = None,
) -> dict[str, Any]:
    """Approve or reject the write waiting on `thread_id` (see `run_decision`).

    Returns:
        The turn summary of `chat_turn` plus `decision` ({tool, args, approve, by, at, reason}),
        `workload` (the workload the approved write touched) and `already_decided`.
    """
    graph = chat_graph(checkpointer, registry=registry)
    return run_decision(graph, ctx, thread_id=thread_id, approve=approve, by=by, reason=reason)
