"""Approval in the graph: a WRITE a model proposes runs only after a person approves it, once.

The scripted model plays a model that books whether or not the operator asked (a malicious or
over-eager model); the store is checked after every step.
"""

import json
from dataclasses import replace

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from sqlalchemy import func, select

from graphs.broker import make_tool_node
from graphs.chat import chat_turn, decide_turn
from graphs.state import AgentState
from store.models import RoutingDecision, Workload, WriteApproval
from tests.fakes import ScriptedChatModel, tool_call
from tools.agent_tools.broker import route_workload
from tools.errors import ConflictError, InvalidInputError, NotFoundError

SPEC = {"gpu_count": 2, "duration_hours": 3, "gpu_model": "H100"}


def _count(sessions, model):
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def _book_latest(call_id):
    """Book the recommendation of the latest tool result (whatever the operator said)."""

    def step(msgs):
        rec_id = json.loads(msgs[-1].content)["recommendation_id"]
        args = {"recommendation_id": rec_id}
        return AIMessage("", tool_calls=[tool_call("route_workload", args, call_id)])

    return step


def _eager_model(*tail):
    """Hand the turn to the broker, recommend, book at once, then answer each result."""
    return ScriptedChatModel(
        [
            AIMessage("", tool_calls=[tool_call("transfer_to_broker", {"task": "x"}, "h1")]),
            AIMessage("", tool_calls=[tool_call("recommend_placement", SPEC, "r1")]),
            _book_latest("w1"),
            *tail,
        ]
    )


def _echo(msgs):
    return AIMessage(f"result: {msgs[-1].content[:200]}")


@pytest.mark.parametrize(
    "text", ["where would 2 H100 go for 3 hours?", "yes, go ahead and book it"]
)
def test_a_write_never_runs_before_approval_and_runs_once_after(ctx, sessions, text):
    model = _eager_model(_echo)
    scripted = replace(ctx, model=model)
    saver = InMemorySaver()
    first = chat_turn(scripted, saver, text, thread_id="a")
    pending = first["pending_approval"]
    assert pending["tool"] == "route_workload" and pending["args"]["recommendation_id"]
    assert first["tool_calls"] == ["recommend_placement"] and first["written"] is False
    assert first["answer"].startswith("Approval needed: Route 2xH100 for 3 h on ")
    assert _count(sessions, Workload) == 0 and _count(sessions, RoutingDecision) == 0

    approved = decide_turn(scripted, saver, thread_id="a", approve=True, by="ops")
    model.assert_complete()
    assert approved["written"] is True and approved["tool_calls"] == ["route_workload"]
    assert approved["pending_approval"] is None and approved["already_decided"] is False
    assert approved["decision"]["by"] == "ops" and approved["decision"]["approve"] is True
    workload = approved["workload"]
    assert workload["status"] == "routed" and workload["node_id"] == pending["summary"]["node_id"]
    assert _count(sessions, Workload) == 1 and _count(sessions, RoutingDecision) == 1

    again = decide_turn(scripted, saver, thread_id="a", approve=True, by="ops")
    assert again["already_decided"] is True and again["written"] is False
    assert again["workload"]["id"] == workload["id"]
    assert _count(sessions, Workload) == 1 and _count(sessions, RoutingDecision) == 1
    assert _count(sessions, WriteApproval) == 1
    with pytest.raises(ConflictError, match="already approved by ops"):
        decide_turn(scripted, saver, thread_id="a", approve=False, by="ops")


def test_rejecting_writes_nothing_and_the_model_answers(ctx, sessions):
    model = _eager_model(_echo)
    scripted = replace(ctx, model=model)
    saver = InMemorySaver()
    chat_turn(scripted, saver, "book 2 H100 for 3 hours", thread_id="r")
    out = decide_turn(
        scripted, saver, thread_id="r", approve=False, by="ops", reason="wait for tonight"
    )
    model.assert_complete()
    assert out["written"] is False and out["workload"] is None
    assert out["answer"].startswith("result: Error: rejected by ops: wait for tonight")
    assert _count(sessions, Workload) == 0 and _count(sessions, RoutingDecision) == 0
    with sessions() as s:
        (row,) = s.scalars(select(WriteApproval)).all()
    assert (row.approved, row.decided_by, row.reason) == (False, "ops", "wait for tonight")
    with pytest.raises(NotFoundError, match="nothing is waiting for approval on thread 'r'"):
        decide_turn(scripted, saver, thread_id="r", approve=True, by="ops")


def test_a_replayed_booking_returns_the_same_workload(ctx, sessions):
    replay = []

    def book_again(msgs):
        replay.append(msgs)
        rec_id = next(
            json.loads(m.content)["recommendation_id"]
            for m in msgs
            if isinstance(m, ToolMessage) and "recommendation_id" in m.content
        )
        args = {"recommendation_id": rec_id}
        return AIMessage("", tool_calls=[tool_call("route_workload", args, "w2")])

    model = _eager_model(
        _echo,
        AIMessage("", tool_calls=[tool_call("transfer_to_broker", {"task": "x"}, "h2")]),
        book_again,
        _echo,
    )
    scripted = replace(ctx, model=model)
    saver = InMemorySaver()
    chat_turn(scripted, saver, "book it", thread_id="p")
    first = decide_turn(scripted, saver, thread_id="p", approve=True, by="ops")
    replayed = chat_turn(scripted, saver, "book it again", thread_id="p")
    summary = replayed["pending_approval"]["summary"]
    assert summary["existing_workload_id"] == first["workload"]["id"]
    assert "approving writes nothing new" in summary["text"]
    second = decide_turn(scripted, saver, thread_id="p", approve=True, by="ops")
    model.assert_complete()
    assert second["written"] is False and second["workload"]["id"] == first["workload"]["id"]
    assert _count(sessions, Workload) == 1 and _count(sessions, RoutingDecision) == 1


def test_unknown_and_expired_recommendations_are_errors_the_model_can_fix(ctx, sessions, clock):
    saver = InMemorySaver()
    model = _eager_model(_echo)
    scripted = replace(ctx, model=model)
    chat_turn(scripted, saver, "book it", thread_id="e")
    clock.advance(minutes=31)
    out = decide_turn(scripted, saver, thread_id="e", approve=True, by="ops")
    model.assert_complete()
    assert "expired at 2026-11-26T10:30:00+00:00" in out["answer"]
    assert out["written"] is False and out["decision"] is None
    assert _count(sessions, Workload) == 0 and _count(sessions, WriteApproval) == 0

    forged = ScriptedChatModel(
        [
            AIMessage("", tool_calls=[tool_call("transfer_to_broker", {"task": "x"}, "h")]),
            AIMessage(
                "",
                tool_calls=[
                    tool_call("route_workload", {"recommendation_id": "rec_nope12345678"}, "w")
                ],
            ),
            _echo,
        ]
    )
    out = chat_turn(replace(ctx, model=forged), saver, "book it", thread_id="u")
    assert out["pending_approval"] is None
    assert "recommendation 'rec_nope12345678' does not exist" in out["answer"]


def test_a_new_message_supersedes_a_waiting_proposal(ctx, sessions):
    saver = InMemorySaver()
    chat_turn(ctx, saver, "2 H100 for 3 hours, EU only", thread_id="s")
    asked = chat_turn(ctx, saver, "book it", thread_id="s")
    assert asked["pending_approval"]["tool"] == "route_workload"
    moved_on = chat_turn(ctx, saver, "compare zones now", thread_id="s")
    assert moved_on["pending_approval"] is None and moved_on["tool_calls"] == ["compare_zones"]
    with pytest.raises(NotFoundError):
        decide_turn(ctx, saver, thread_id="s", approve=True, by="ops")
    assert _count(sessions, Workload) == 0


def test_bad_decisions_are_refused_naming_the_value(ctx):
    with pytest.raises(InvalidInputError, match="approval 'by' ''"):
        decide_turn(ctx, InMemorySaver(), thread_id="x", approve=True, by="")
    with pytest.raises(InvalidInputError, match="rejection reason"):
        decide_turn(ctx, InMemorySaver(), thread_id="x", approve=False, by="o", reason="x" * 501)


def _guarded(decisions, args):
    graph = StateGraph(AgentState)
    graph.add_node("tools", make_tool_node([route_workload]))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    call = tool_call("route_workload", args, "w9")
    state = {"messages": [AIMessage("", tool_calls=[call])], "write_decisions": decisions}
    return graph.compile().invoke(state)["messages"][-1]


@pytest.mark.parametrize(
    ("decisions", "expected"),
    [
        ({}, "runs only after the operator approves it"),
        (
            {"w9": {"approve": True, "by": "ops", "args": {"recommendation_id": "rec_other"}}},
            "approved with other arguments",
        ),
        (
            {"w9": {"approve": True, "by": "policy", "args": {"recommendation_id": "rec_mine"}}},
            "refused",
        ),
    ],
)
def test_the_tool_node_runs_a_write_only_as_approved(decisions, expected):
    message = _guarded(decisions, {"recommendation_id": "rec_mine"})
    assert message.status == "error" and expected in message.content


def test_a_call_decided_elsewhere_first_is_not_run_twice(ctx, sessions, clock):
    from graphs.chat import thread_messages
    from graphs.supervisor import build_supervisor_graph
    from store.approvals import record_approval

    model = _eager_model(_echo)
    scripted = replace(ctx, model=model)
    saver = InMemorySaver()
    chat_turn(scripted, saver, "book it", thread_id="d")
    proposal = thread_messages(build_supervisor_graph(checkpointer=saver), "d")[-1]
    with sessions.begin() as s:  # a concurrent approval of the same call was stored first
        record_approval(
            session=s,
            thread_id="chat:d",
            tool_call_id=f"{proposal.id}/w1",
            org_id=ctx.org_id,
            tool="route_workload",
            args={},
            summary={},
            approved=True,
            decided_by="someone else",
            decided_at=clock.now(),
            reason=None,
        )
    out = decide_turn(scripted, saver, thread_id="d", approve=True, by="ops")
    model.assert_complete()
    assert "this call was already decided" in out["answer"] and out["written"] is False
    assert _count(sessions, Workload) == 0 and _count(sessions, WriteApproval) == 1


def test_a_model_that_reuses_call_ids_still_gets_each_booking_decided(ctx, sessions):
    def turn():  # fresh messages each turn, with the same call ids
        return [
            AIMessage("", tool_calls=[tool_call("transfer_to_broker", {"task": "x"}, "h1")]),
            AIMessage("", tool_calls=[tool_call("recommend_placement", SPEC, "r1")]),
            _book_latest("w1"),
            _echo,
        ]

    model = ScriptedChatModel(turn() + turn())
    scripted = replace(ctx, model=model)
    saver = InMemorySaver()
    for _ in range(2):
        chat_turn(scripted, saver, "book 2 H100 for 3 hours", thread_id="same-ids")
        done = decide_turn(scripted, saver, thread_id="same-ids", approve=True, by="ops")
        assert done["written"] is True
    model.assert_complete()
    assert _count(sessions, Workload) == 2 and _count(sessions, WriteApproval) == 2
