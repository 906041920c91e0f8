import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from sqlalchemy import func, select

from graphs.broker import build_broker_graph
from graphs.context import CHAT_RECURSION_LIMIT
from graphs.supervisor import AgentRegistry, broker_entry, build_supervisor_graph
from store.models import RoutingDecision, Workload, WriteApproval
from tests.fakes import ScriptedChatModel, tool_call
from tests.graphs.conftest import T0

ASK = "Where should I run a 4xH100 fine-tune for 6 hours, EU only, done within 24 hours?"
EU = {"FR", "DE", "ES", "PT", "NL", "BE", "IT"}


def _turn(graph, ctx, text, thread="t1"):
    cfg = {"configurable": {"thread_id": thread}, "recursion_limit": CHAT_RECURSION_LIMIT}
    return graph.invoke({"messages": [HumanMessage(text)]}, cfg, context=ctx)


def _count(sessions, model):
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def _tool_results(out):
    return [m for m in out["messages"] if isinstance(m, ToolMessage)]


def _decide(graph, ctx, approve, thread="t1", reason=None):
    cfg = {"configurable": {"thread_id": thread}, "recursion_limit": CHAT_RECURSION_LIMIT}
    answer = {"approve": approve, "by": "ops@example", "reason": reason}
    return graph.invoke(Command(resume=answer), cfg, context=ctx)


@pytest.mark.parametrize("build", [build_broker_graph, build_supervisor_graph])
def test_recommend_writes_nothing_then_booking_waits_for_approval(ctx, sessions, build):
    graph = build(checkpointer=InMemorySaver())
    out = _turn(graph, ctx, ASK)
    answer = out["messages"][-1].content
    rec = json.loads(_tool_results(out)[-1].content)
    assert answer.startswith("[offline model]")
    assert rec["written"] is False and rec["best"]["zone"] in EU
    assert rec["recommendation_id"].startswith("rec_") and rec["expires_at"] > rec["at"]
    assert rec["best"]["node_id"] in answer and "kg CO2" in answer and "carbon-agnostic" in answer
    assert {"carbon_term", "price_term", "utilization_term"} <= rec["best"].keys()
    assert _count(sessions, Workload) == 0 and _count(sessions, RoutingDecision) == 0

    out = _turn(graph, ctx, "route it")
    (asked,) = out["__interrupt__"]
    assert asked.value["tool"] == "route_workload"
    assert asked.value["args"] == {"recommendation_id": rec["recommendation_id"]}
    summary = asked.value["summary"]
    assert (summary["node_id"], summary["zone"]) == (rec["best"]["node_id"], rec["best"]["zone"])
    assert (summary["gpu_count"], summary["duration_hours"]) == (4, 6)
    assert summary["co2_kg"] == rec["best"]["co2_kg"] and summary["start"] == T0.isoformat()
    per_hour = rec["best"]["price_per_gpu_hour_minor"]
    assert summary["cost_minor"] == 4 * 6 * per_hour and summary["currency"] == "EUR"
    assert _count(sessions, Workload) == 0 and _count(sessions, WriteApproval) == 0

    out = _decide(graph, ctx, approve=True)
    routed = json.loads(_tool_results(out)[-1].content)
    assert routed["written"] is True and "__interrupt__" not in out
    assert routed["workload"]["node_id"] == rec["best"]["node_id"]
    assert routed["workload"]["status"] == "routed" and routed["workload"]["org_id"] == ctx.org_id
    assert "Routed workload" in out["messages"][-1].content
    assert _count(sessions, Workload) == 1
    with sessions() as s:
        (approval,) = s.scalars(select(WriteApproval)).all()
    assert (approval.approved, approval.decided_by, approval.decided_at) == (
        True,
        "ops@example",
        T0,
    )
    assert approval.tool == "route_workload" and approval.summary == summary
    assert approval.thread_id == "t1" and approval.org_id == ctx.org_id

    out = _turn(graph, ctx, "go ahead")
    assert "already booked" in out["messages"][-1].content and "__interrupt__" not in out
    assert _count(sessions, Workload) == 1


def test_missing_field_gets_one_question_then_the_answer_completes_it(ctx, sessions):
    graph = build_broker_graph(checkpointer=InMemorySaver())
    out = _turn(graph, ctx, "where should 4 H100s run, EU only?")
    assert out["messages"][-1].content.endswith("How long will the job run (e.g. 6 hours)?")
    assert not _tool_results(out)
    out = _turn(graph, ctx, "6 hours")
    rec = json.loads(_tool_results(out)[-1].content)
    assert rec["spec"]["gpu_count"] == 4 and rec["spec"]["duration_hours"] == 6
    assert rec["spec"]["allowed_zones"] == sorted(EU)


def test_unknown_and_billing_are_answered_plainly(ctx):
    registry = AgentRegistry([broker_entry()])  # without the billing clerk
    graph = build_supervisor_graph(registry=registry, checkpointer=InMemorySaver())
    out = _turn(graph, ctx, "sing me a song")
    assert "did not understand" in out["messages"][-1].content
    out = _turn(graph, ctx, "how much was I billed this month?")
    assert "no billing tools are registered" in out["messages"][-1].content


def test_compare_and_nodes_and_explain(ctx):
    graph = build_broker_graph(checkpointer=InMemorySaver())
    out = _turn(graph, ctx, "compare FR and DE over the next 6 hours")
    result = json.loads(_tool_results(out)[-1].content)
    assert [r["zone"] for r in result["zones"]] == sorted(
        ["FR", "DE"],
        key=lambda z: next(r["carbon_intensity"] for r in result["zones"] if r["zone"] == z),
    )
    assert result["hours"] == 6
    out = _turn(graph, ctx, "list H100 nodes in France")
    nodes = json.loads(_tool_results(out)[-1].content)["nodes"]
    assert [n["id"] for n in nodes] == ["fr-par-h100"]
    out = _turn(graph, ctx, "why was wl_000000000000 placed there?")
    assert (
        "refused" in out["messages"][-1].content and "does not exist" in out["messages"][-1].content
    )


def test_scripted_model_transcript(ctx, sessions):
    args = {"gpu_count": 2, "duration_hours": 3, "gpu_model": "A100"}
    model = ScriptedChatModel(
        [
            AIMessage("", tool_calls=[tool_call("recommend_placement", args, "call_rec_1")]),
            lambda msgs: AIMessage(f"Best is {json.loads(msgs[-1].content)['best']['node_id']}."),
        ]
    )
    graph = build_broker_graph(checkpointer=InMemorySaver())
    out = _turn(graph, ctx.__class__(**{**ctx.__dict__, "model": model}), "2 A100 for 3h?")
    model.assert_complete()
    assert out["messages"][-1].content.startswith("Best is ")
    assert model.calls[0].tool_names == [
        "recommend_placement",
        "compare_zones",
        "list_nodes",
        "explain_decision",
        "incident_status",
        "route_workload",
        "reroute_workload",
    ]
    assert "The current time is 2026-11-26T10:00:00+00:00" in model.calls[0].messages[0].content
    assert _count(sessions, Workload) == 0


def test_a_write_the_operator_did_not_ask_for_waits_and_a_rejection_writes_nothing(ctx, sessions):
    def book(msgs):
        rec_id = json.loads(msgs[-1].content)["recommendation_id"]
        return AIMessage(
            "", tool_calls=[tool_call("route_workload", {"recommendation_id": rec_id}, "call_w")]
        )

    args = {"gpu_count": 2, "duration_hours": 3}
    model = ScriptedChatModel(
        [
            AIMessage("", tool_calls=[tool_call("recommend_placement", args, "call_r")]),
            book,
            lambda msgs: AIMessage(f"Not booked: {msgs[-1].content}"),
        ]
    )
    scripted = ctx.__class__(**{**ctx.__dict__, "model": model})
    graph = build_broker_graph(checkpointer=InMemorySaver())
    out = _turn(graph, scripted, "where would 2 GPUs go?")
    assert out["__interrupt__"][0].value["tool"] == "route_workload"
    assert _count(sessions, Workload) == 0
    out = _decide(graph, scripted, approve=False, reason="too expensive")
    model.assert_complete()
    rejection = _tool_results(out)[-1]
    assert (
        rejection.status == "error"
        and "rejected by ops@example: too expensive" in rejection.content
    )
    assert out["messages"][-1].content.startswith("Not booked: Error: rejected by ops@example")
    assert _count(sessions, Workload) == 0 and _count(sessions, RoutingDecision) == 0
    with sessions() as s:
        (approval,) = s.scalars(select(WriteApproval)).all()
    assert approval.approved is False and approval.reason == "too expensive"


def test_operator_reroutes_own_workload_by_chat(ctx, sessions):
    from tests.graphs.conftest import T0
    from tools.broker.routing import JobSpec, route_workload, submit_workload
    from tools.incidents.detection import add_spike, grid_with_overrides

    with sessions.begin() as s:
        spec = JobSpec(gpu_count=4, gpu_model="H100", duration_hours=6)
        wl = submit_workload(session=s, org_id=ctx.org_id, name="mine", spec=spec, now=T0)
        route_workload(session=s, grid=ctx.grid, workload_id=wl.id, now=T0)
        add_spike(
            session=s, zone="FR", carbon_factor=20, price_factor=1, hours=3, reason="t", now=T0
        )
    with sessions() as s:
        spiked = ctx.__class__(
            **{**ctx.__dict__, "grid": grid_with_overrides(session=s, grid=ctx.grid, now=T0)}
        )
    graph = build_broker_graph(checkpointer=InMemorySaver())
    out = _turn(graph, spiked, f"please reroute {wl.id}")
    summary = out["__interrupt__"][0].value["summary"]
    assert summary["would_move"] is True and summary["node_id"] == "fr-par-h100"
    out = _decide(graph, spiked, approve=True)
    result = json.loads(_tool_results(out)[-1].content)
    assert result["decision"]["node_id"] == summary["best_node_id"]
    assert result["decision"]["outcome"] == "rerouted"
    assert f"Moved workload {wl.id} from fr-par-h100" in out["messages"][-1].content


def test_every_broker_tool_is_marked_read_or_write():
    from langchain_core.tools import tool

    from tools.agent_tools.broker import broker_tools
    from tools.agent_tools.registry import ToolKind, read_tool_names, tool_kind, write_tool_names

    tools = broker_tools()
    assert write_tool_names(tools) == {"route_workload", "reroute_workload"}
    assert read_tool_names(tools) | write_tool_names(tools) == {t.name for t in tools}

    @tool
    def unmarked() -> str:
        """Do nothing."""
        return ""

    with pytest.raises(ValueError, match="'unmarked' is not marked READ or WRITE"):
        tool_kind(unmarked)
    assert tool_kind(tools[0]) is ToolKind.READ
