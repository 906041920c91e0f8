"""Real model endpoint (Crusoe, vLLM, Ollama): structure only, never exact prose.

Run with `make test-live` and LIVE_LLM_BASE_URL / LIVE_LLM_API_KEY / LIVE_LLM_MODEL set; these
tests never run in the default `make test`.
"""

import os
from datetime import UTC, datetime

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import SecretStr
from sqlalchemy import func, select

from agents.models import check_model_served, make_chat_model
from agents.workload import WorkloadSpec, evaluate_workload
from graphs.broker import build_broker_graph
from graphs.context import Context
from graphs.settings import Settings
from store.db import make_session_factory
from store.models import Workload
from store.seed import seed_fleet
from tools.clock import FixedClock
from tools.grid import SimulatedGrid

pytestmark = pytest.mark.live_llm
T0 = datetime(2026, 11, 26, 10, tzinfo=UTC)


@pytest.fixture
def live_settings() -> Settings:
    base = os.environ.get("LIVE_LLM_BASE_URL")
    if not base:
        pytest.skip("set LIVE_LLM_BASE_URL (and LIVE_LLM_API_KEY, LIVE_LLM_MODEL) to run")
    return Settings(
        llm_base_url=base,
        llm_api_key=SecretStr(os.environ.get("LIVE_LLM_API_KEY", "none")),
        llm_model=os.environ.get("LIVE_LLM_MODEL", "meta-llama/Llama-3.3-70B-Instruct"),
        llm_temperature=0.0,
    )


def test_the_model_is_served(live_settings):
    check_model_served(live_settings.model_endpoint())


def test_free_text_becomes_a_valid_workload_spec(live_settings):
    spec = evaluate_workload(
        "Fine-tune on four H100s for six hours, EU only, done within a day",
        model=make_chat_model(live_settings.model_endpoint()),
        now=T0,
    )
    assert isinstance(spec, WorkloadSpec)
    assert spec.gpu_count == 4 and spec.duration_hours == pytest.approx(6)


def test_broker_recommends_without_writing(live_settings, sqlite_engine):
    sessions = make_session_factory(sqlite_engine)
    with sessions.begin() as s:
        seed_fleet(session=s, now=T0)
    ctx = Context(
        model=make_chat_model(live_settings.model_endpoint()),
        sessions=sessions,
        grid=SimulatedGrid(seed=7),
        clock=FixedClock(T0),
    )
    graph = build_broker_graph(checkpointer=InMemorySaver())
    out = graph.invoke(
        {"messages": [HumanMessage("Where should a 2xH100 job for 3 hours run? Don't route yet.")]},
        {"configurable": {"thread_id": "live"}, "recursion_limit": 12},
        context=ctx,
    )
    called = [c["name"] for m in out["messages"] for c in getattr(m, "tool_calls", [])]
    assert "recommend_placement" in called
    assert out["messages"][-1].content
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Workload)) == 0
