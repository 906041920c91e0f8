"""Replay recorded /v1/chat/completions JSON through httpx2.MockTransport (no socket)."""

import json
from pathlib import Path

import httpx2
import pytest
from langchain_core.messages import HumanMessage
from pydantic import SecretStr

from agents.models import make_chat_model
from graphs.settings import Settings
from tools.agent_tools.broker import broker_tools

RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "llm"


class Replayer:
    """Serve one recording per request; fail on unexpected requests or unused recordings."""

    def __init__(self, *names: str) -> None:
        self.pending = [json.loads((RECORDINGS / f"{n}.json").read_text()) for n in names]
        self.seen: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(request)
        if not self.pending:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        rec = self.pending.pop(0)
        assert request.method == rec["request"]["method"]
        assert request.url.path == rec["request"]["path"]
        body = json.loads(request.content)
        assert body["model"] == rec["request"]["model"]
        assert [t["function"]["name"] for t in body["tools"]] == rec["request"]["tool_names"]
        return httpx2.Response(200, json=rec["response"])

    def assert_used(self) -> None:
        assert not self.pending, f"{len(self.pending)} recordings were never requested"


def test_every_recording_is_json_and_described():
    files = sorted(RECORDINGS.glob("*.json"))
    assert files
    for f in files:
        data = json.loads(f.read_text())
        assert {"description", "request", "response"} <= data.keys()


@pytest.mark.parametrize("name", ["recommend_tool_call"])
def test_recorded_tool_call_round_trip(name):
    replay = Replayer(name)
    client = httpx2.Client(transport=httpx2.MockTransport(replay))
    settings = Settings(
        llm_base_url="https://api.inference.crusoecloud.com/v1", llm_api_key=SecretStr("sk-rec")
    )
    model = make_chat_model(settings.model_endpoint(), verify=False, http_client=client)
    msg = model.bind_tools(broker_tools()).invoke([HumanMessage("4xH100 for 6h, EU only")])
    replay.assert_used()
    (request,) = replay.seen
    assert request.url.host == "api.inference.crusoecloud.com"
    assert request.headers["authorization"] == "Bearer sk-rec"
    assert msg.tool_calls[0]["name"] == "recommend_placement"
    assert msg.tool_calls[0]["args"]["gpu_count"] == 4
