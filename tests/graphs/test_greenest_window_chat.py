"""The chat answers "where and when": the recommend tool plans the start, the booking approval
says when, and the approved booking is scheduled for that window."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.broker import build_broker_graph
from graphs.context import CHAT_RECURSION_LIMIT
from store import repo
from tests.fakes import ScriptedChatModel, tool_call
from tests.graphs.conftest import T0
from tests.unit.test_scheduling import DailyGrid

CFG = {"configurable": {"thread_id": "w"}, "recursion_limit": CHAT_RECURSION_LIMIT}


def _recommend_then_book(args: dict) -> ScriptedChatModel:
    """A model that asks for a recommendation with `args`, then books it."""

    def book(msgs):
        rec = json.loads(msgs[-1].content)
        return AIMessage(
            "",
            tool_calls=[
                tool_call("route_workload", {"recommendation_id": rec["recommendation_id"]}, "b")
            ],
        )

    return ScriptedChatModel(
        [
            AIMessage("", tool_calls=[tool_call("recommend_placement", args, "r")]),
            book,
            lambda msgs: AIMessage("booked"),
        ]
    )


def test_greenest_window_is_recommended_approved_and_scheduled(ctx, sessions):
    deadline = (T0 + timedelta(hours=24)).isoformat()
    args = {
        "gpu_count": 2,
        "duration_hours": 3,
        "deadline": deadline,
        "allowed_zones": ["FR", "DE"],
    }

    model = _recommend_then_book(args)
    chat = replace(ctx, model=model, grid=DailyGrid())
    graph = build_broker_graph(checkpointer=InMemorySaver())
    out = graph.invoke({"messages": [HumanMessage("greenest window today?")]}, CFG, context=chat)
    rec = json.loads([m for m in out["messages"] if isinstance(m, ToolMessage)][-1].content)
    start = datetime.fromisoformat(rec["start_at"])
    # within FR's clean hours (00:00-06:00), all equally clean
    assert start > T0 and start.hour < 6 and rec["node"].startswith("fr-")
    assert rec["co2_kg"] < rec["co2_kg_if_started_now"] and rec["saving_pct"] > 50
    assert "greenest forecast window" in rec["why"]

    (asked,) = out["__interrupt__"]
    summary = asked.value["summary"]
    assert summary["text"].startswith("Schedule ") and summary["node_id"] == rec["node"]
    assert datetime.fromisoformat(summary["start"]) == start
    answer = {"approve": True, "by": "ops@example", "reason": None}
    graph.invoke(Command(resume=answer), CFG, context=chat)
    model.assert_complete()
    with sessions() as s:
        (w,) = repo.list_workloads(session=s)
        assert w.status == "scheduled" and w.planned_start_at == start and w.node_id == rec["node"]


def test_the_chat_books_work_that_cannot_checkpoint_as_not_movable(ctx, sessions):
    args = {"gpu_count": 1, "duration_hours": 2, "movable": False}

    model = _recommend_then_book(args)
    chat = replace(ctx, model=model)
    graph = build_broker_graph(checkpointer=InMemorySaver())
    config = {**CFG, "configurable": {"thread_id": "pinned"}}
    out = graph.invoke(
        {"messages": [HumanMessage("book 1 GPU, no checkpoints")]}, config, context=chat
    )
    assert out["__interrupt__"]
    answer = {"approve": True, "by": "ops@example", "reason": None}
    graph.invoke(Command(resume=answer), config, context=chat)
    model.assert_complete()
    with sessions() as s:
        (w,) = repo.list_workloads(session=s)
        assert w.node_id is not None and w.movable is False
