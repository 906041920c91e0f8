"""Checkpoints on the store's database: conversations and incidents survive a restart."""

from dataclasses import replace

from langchain_core.messages import AIMessage, HumanMessage
from sqlalchemy import func, select

from agents.offline import OfflineChatModel
from graphs.broker import build_broker_graph
from graphs.chat import chat_turn, decide_turn
from graphs.checkpoint import open_checkpointer
from graphs.context import CHAT_RECURSION_LIMIT, Context
from graphs.incident_watch import run_once
from store.db import make_session_factory
from store.models import Workload
from store.seed import seed_fleet
from tests.fakes import ScriptedChatModel, tool_call
from tests.graphs.conftest import T0
from tools.broker.routing import JobSpec, route_workload, submit_workload
from tools.clock import FixedClock
from tools.grid import SimulatedGrid
from tools.incidents.detection import add_spike
from tools.integrations.incidentio import DemoAlerts

ASK = "Where should I run a 4xH100 fine-tune for 6 hours, EU only, done within 24 hours?"


def _ctx(engine, **kw):
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        seed_fleet(session=s, now=T0)
    clock = FixedClock(T0)
    return Context(
        model=kw.pop("model", OfflineChatModel(clock=clock, org_id="acme-ai")),
        sessions=sessions,
        grid=SimulatedGrid(seed=7),
        clock=clock,
        alerts=DemoAlerts(),
        **kw,
    )


def test_conversation_and_its_approval_resume_from_the_store_database(engine):
    ctx = _ctx(engine)
    with open_checkpointer(engine) as saver:  # first process
        first = chat_turn(ctx, saver, ASK, thread_id="conv-1")
        asked = chat_turn(ctx, saver, "yes, go ahead and book it", thread_id="conv-1")
    assert first["written"] is False and asked["pending_approval"]["tool"] == "route_workload"
    with open_checkpointer(engine) as saver:  # a new process, same database
        second = decide_turn(ctx, saver, thread_id="conv-1", approve=True, by="ops")
        other = chat_turn(ctx, saver, "route it", thread_id="conv-2")
    assert second["written"] is True
    assert second["node"] == first["node"]
    assert other["written"] is False and "no recommendation" in other["answer"]
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Workload)) == 1


def test_step_limit_ends_the_turn_with_an_answer(sqlite_engine):
    looping = [
        AIMessage("", tool_calls=[tool_call("list_nodes", {}, f"call_{i}")]) for i in range(5)
    ]
    model = ScriptedChatModel(looping)
    ctx = _ctx(sqlite_engine, model=model)
    graph = build_broker_graph()
    out = graph.invoke(
        {"messages": [HumanMessage("list nodes")]},
        {"recursion_limit": CHAT_RECURSION_LIMIT},
        context=ctx,
    )
    model.assert_complete()
    assert "step limit" in out["messages"][-1].content


def test_incident_summary_is_written_by_a_configured_model(sqlite_engine):
    model = ScriptedChatModel(
        [
            lambda msgs: AIMessage(
                "FR spiked; moved 1 job."
                if "ADAPTING -> RESOLVED" in msgs[0].content and "fr-par-h100" in msgs[0].content
                else "bad"
            ),
        ]
    )
    ctx = replace(_ctx(sqlite_engine, model=model), model_summaries=True)
    with ctx.sessions.begin() as s:
        spec = JobSpec(gpu_count=4, gpu_model="H100", duration_hours=6)
        wl = submit_workload(session=s, org_id="acme-ai", name="ft", spec=spec, now=T0)
        route_workload(session=s, grid=ctx.grid, workload_id=wl.id, now=T0)
        add_spike(
            session=s, zone="FR", carbon_factor=20, price_factor=1, hours=3, reason="t", now=T0
        )
    with open_checkpointer(sqlite_engine) as saver:
        (report,) = run_once(ctx, saver)
    model.assert_complete()
    assert report["summary"] == "FR spiked; moved 1 job."
    prompt = model.calls[0].messages[0].content
    assert "EVALUATING -> ADAPTING" in prompt and f"{wl.id}: rerouted fr-par-h100" in prompt


def test_price_spike_alone_opens_a_price_incident(sqlite_engine):
    ctx = _ctx(sqlite_engine)
    with ctx.sessions.begin() as s:
        spec = JobSpec(gpu_count=4, gpu_model="H100", duration_hours=6)
        wl = submit_workload(session=s, org_id="acme-ai", name="ft", spec=spec, now=T0)
        route_workload(session=s, grid=ctx.grid, workload_id=wl.id, now=T0)
        add_spike(
            session=s, zone="FR", carbon_factor=1, price_factor=4, hours=3, reason="t", now=T0
        )
    with open_checkpointer(sqlite_engine) as saver:
        (report,) = run_once(ctx, saver)
    assert report["trigger"] == "price_spike" and "EUR/MWh" in report["transitions"][1]["reason"]
    assert len(report["states"]) == 5
