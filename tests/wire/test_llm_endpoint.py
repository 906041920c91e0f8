"""The real ChatOpenAI / openai client against a local OpenAI-compatible server on 127.0.0.1."""

import json
import operator
from collections.abc import Callable
from functools import reduce

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import SecretStr
from sqlalchemy import func, select

from agents.models import ModelEndpointError, check_model_served, make_chat_model
from agents.offline import OfflineChatModel
from agents.workload import WorkloadSpec, evaluate_workload
from graphs.broker import build_broker_graph
from graphs.context import Context
from graphs.settings import Settings
from store.db import make_session_factory
from store.models import Workload
from store.seed import seed_fleet
from tests.fakes import FakeHTTPServer, Reply, Seen, completion, models_list, stream_chunks
from tests.graphs.conftest import T0
from tools.agent_tools.broker import broker_tools
from tools.clock import FixedClock
from tools.grid import SimulatedGrid

MODEL = "meta-llama/Llama-3.3-70B-Instruct"


class Script:
    """Answers /v1/models and plays /v1/chat/completions replies in order."""

    def __init__(self, *replies: Reply | Callable[[Seen], Reply]) -> None:
        self.replies = list(replies)
        self.chat: list[Seen] = []

    def __call__(self, req: Seen) -> Reply:
        if req.path.endswith("/models"):
            return Reply(200, models_list(MODEL, "other/model"))
        self.chat.append(req)
        if not self.replies:
            return Reply(500, {"error": {"message": "script exhausted"}})
        reply = self.replies.pop(0)
        return reply(req) if callable(reply) else reply


def _settings(url: str, *, timeout: float = 5.0, retries: int = 2, **kw) -> Settings:
    values = {
        "llm_base_url": f"{url}/v1",
        "llm_api_key": SecretStr("sk-test"),
        "llm_model": MODEL,
        "llm_timeout_s": timeout,
        "llm_max_retries": retries,
    } | kw
    return Settings(**values)


def test_without_a_key_the_offline_model_is_used():
    assert isinstance(
        make_chat_model(Settings(llm_api_key=None).model_endpoint()), OfflineChatModel
    )


def test_startup_check_accepts_a_served_model_and_names_settings_otherwise():
    with FakeHTTPServer(Script()) as server:
        assert MODEL in check_model_served(_settings(server.url).model_endpoint())
        with pytest.raises(ModelEndpointError, match="set TGTG_LLM_MODEL to one of"):
            make_chat_model(_settings(server.url, llm_model="nope/unknown").model_endpoint())
    with FakeHTTPServer(lambda r: Reply(401, {"errors": ["Authentication failed"]})) as server:
        with pytest.raises(ModelEndpointError, match="check TGTG_LLM_API_KEY"):
            make_chat_model(_settings(server.url, retries=0).model_endpoint())
    with FakeHTTPServer(lambda r: Reply(404, {"error": "no route"})) as server:
        with pytest.raises(ModelEndpointError, match="check TGTG_LLM_BASE_URL"):
            make_chat_model(_settings(server.url, retries=0).model_endpoint())


def test_plain_completion_request_shape():
    script = Script(Reply(200, completion("FR is cleanest.")))
    with FakeHTTPServer(script) as server:
        model = make_chat_model(_settings(server.url).model_endpoint())
        assert model.invoke([HumanMessage("cleanest zone?")]).content == "FR is cleanest."
    (req,) = script.chat
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.body["model"] == MODEL and req.body["temperature"] == 0.0
    assert req.body["messages"] == [{"role": "user", "content": "cleanest zone?"}]


@pytest.mark.parametrize("streaming", [False, True])
def test_tool_calls_parse_streamed_or_not(streaming):
    call = {
        "id": "call_abc",
        "name": "recommend_placement",
        "arguments": {"gpu_count": 4, "duration_hours": 6, "gpu_model": "H100"},
    }
    reply = (
        Reply(200, chunks=stream_chunks(tool_calls=[call]))
        if streaming
        else Reply(200, completion(tool_calls=[call]))
    )
    script = Script(reply)
    with FakeHTTPServer(script) as server:
        model = make_chat_model(_settings(server.url).model_endpoint())

        bound = model.bind_tools(broker_tools())
        msg = (
            reduce(operator.add, bound.stream([HumanMessage("x")]))
            if streaming
            else bound.invoke([HumanMessage("x")])
        )
    assert msg.tool_calls[0]["name"] == "recommend_placement"
    assert msg.tool_calls[0]["args"] == call["arguments"]
    sent = script.chat[0].body
    assert sent.get("stream", False) is streaming
    names = [t["function"]["name"] for t in sent["tools"]]
    assert "route_workload" in names and "recommend_placement" in names
    assert "runtime" not in json.dumps(sent["tools"])  # injected context never reaches the model


def test_streamed_text_is_joined():
    script = Script(Reply(200, chunks=stream_chunks("Route to FR now.")))
    with FakeHTTPServer(script) as server:
        model = make_chat_model(_settings(server.url).model_endpoint())
        text = "".join(str(c.content) for c in model.stream([HumanMessage("x")]))
    assert text.strip() == "Route to FR now."


@pytest.mark.parametrize(
    "failure",
    [
        Reply(429, {"error": {"message": "slow down"}}, {"retry-after": "0"}),
        Reply(500, {"error": {"message": "boom"}}),
        Reply(200, completion("late"), delay_s=1.5),
    ],
    ids=["429", "500", "timeout"],
)
def test_transient_failures_are_retried(failure):
    script = Script(failure, Reply(200, completion("ok")))
    with FakeHTTPServer(script) as server:
        model = make_chat_model(_settings(server.url, timeout=0.75, retries=2).model_endpoint())
        assert model.invoke([HumanMessage("x")]).content == "ok"
    assert len(script.chat) == 2


def test_retries_are_bounded():
    script = Script(*[Reply(500, {"error": {"message": "down"}})] * 3)
    with FakeHTTPServer(script) as server:
        model = make_chat_model(_settings(server.url, retries=1).model_endpoint())
        with pytest.raises(Exception, match="down") as info:
            model.invoke([HumanMessage("x")])
    assert getattr(info.value, "status_code", None) == 500
    assert len(script.chat) == 2


def test_structured_output_gives_a_validated_workload_spec():
    args = {
        "gpu_count": 4,
        "gpu_model": "h100",
        "duration_hours": 6,
        "allowed_zones": ["fr", "de"],
        "max_carbon_intensity": 100,
    }
    script = Script(
        Reply(200, completion(tool_calls=[{"id": "c1", "name": "WorkloadSpec", "arguments": args}]))
    )
    with FakeHTTPServer(script) as server:
        model = make_chat_model(_settings(server.url).model_endpoint())
        spec = evaluate_workload("4 H100 for 6h in FR or DE, max 100 g", model=model, now=T0)
    assert spec == WorkloadSpec(
        gpu_count=4,
        gpu_model="H100",
        duration_hours=6,
        allowed_zones=["DE", "FR"],
        max_carbon_intensity=100,
    )
    body = script.chat[0].body
    assert body["tools"][0]["function"]["name"] == "WorkloadSpec"
    assert "2026-11-26T10:00:00+00:00" in body["messages"][0]["content"]


def test_offline_structured_output_uses_the_same_parser():
    spec = evaluate_workload(
        "four H100s for half a day, not in Germany", model=OfflineChatModel(), now=T0
    )
    assert (spec.gpu_count, spec.gpu_model, spec.duration_hours, spec.denied_zones) == (
        4,
        "H100",
        12,
        ["DE"],
    )


def test_broker_graph_runs_over_the_socket(sqlite_engine):
    sessions = make_session_factory(sqlite_engine)
    with sessions.begin() as s:
        seed_fleet(session=s, now=T0)
    call = {
        "id": "call_1",
        "name": "recommend_placement",
        "arguments": {
            "gpu_count": 4,
            "duration_hours": 6,
            "gpu_model": "H100",
            "allowed_zones": ["FR", "DE", "NL"],
        },
    }

    def final(req: Seen) -> Reply:
        tool_msg = req.body["messages"][-1]
        assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "call_1"
        best = json.loads(tool_msg["content"])["best"]
        return Reply(200, completion(f"Run it on {best['node_id']} in {best['zone']}."))

    script = Script(Reply(200, completion(tool_calls=[call])), final)
    with FakeHTTPServer(script) as server:
        ctx = Context(
            model=make_chat_model(_settings(server.url).model_endpoint()),
            sessions=sessions,
            grid=SimulatedGrid(seed=7),
            clock=FixedClock(T0),
        )
        graph = build_broker_graph(checkpointer=InMemorySaver())
        out = graph.invoke(
            {"messages": [HumanMessage("where should 4xH100 run for 6h?")]},
            {"configurable": {"thread_id": "w"}, "recursion_limit": 12},
            context=ctx,
        )
    assert out["messages"][-1].content == "Run it on fr-par-h100 in FR."
    assert isinstance(out["messages"][1], AIMessage)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Workload)) == 0


def test_a_real_client_booking_waits_for_approval_over_the_socket(sqlite_engine):
    from langgraph.types import Command

    sessions = make_session_factory(sqlite_engine)
    with sessions.begin() as s:
        seed_fleet(session=s, now=T0)
    recommend = {
        "id": "call_r",
        "name": "recommend_placement",
        "arguments": {"gpu_count": 2, "duration_hours": 3, "gpu_model": "H100"},
    }

    def book(req: Seen) -> Reply:
        rec_id = json.loads(req.body["messages"][-1]["content"])["recommendation_id"]
        call = {
            "id": "call_b",
            "name": "route_workload",
            "arguments": {"recommendation_id": rec_id},
        }
        return Reply(200, completion(tool_calls=[call]))

    def answer(req: Seen) -> Reply:
        return Reply(200, completion(f"Result: {req.body['messages'][-1]['content'][:80]}"))

    script = Script(Reply(200, completion(tool_calls=[recommend])), book, answer)
    with FakeHTTPServer(script) as server:
        ctx = Context(
            model=make_chat_model(_settings(server.url).model_endpoint()),
            sessions=sessions,
            grid=SimulatedGrid(seed=7),
            clock=FixedClock(T0),
        )
        graph = build_broker_graph(checkpointer=InMemorySaver())
        cfg = {"configurable": {"thread_id": "w"}, "recursion_limit": 12}
        out = graph.invoke(
            {"messages": [HumanMessage("book 2 H100 for 3 hours")]}, cfg, context=ctx
        )
        assert out["__interrupt__"][0].value["tool"] == "route_workload"
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(Workload)) == 0
        out = graph.invoke(Command(resume={"approve": True, "by": "ops"}), cfg, context=ctx)
    assert out["messages"][-1].content.startswith('Result: {"written": true')
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Workload)) == 1
