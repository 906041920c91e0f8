import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk
from pydantic import SecretStr

from graphs.settings import Settings
from store import repo
from tests.fakes import ScriptedChatModel, tool_call
from tools.incidents.alerts import list_audio_alerts
from ui import demo
from ui.console_runtime import ConsoleRuntime, model_label
from ui.services import Services

NOW = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)


def test_a_background_pass_ingests_handles_incidents_and_speaks(runtime):
    runtime.write(
        lambda s: demo.trigger_curtailment(session=s, grid=runtime.svc.grid(), now=NOW, zone="ES")
    )
    made = runtime.write(
        lambda s: demo.create_workload(session=s, grid=runtime.svc.grid(), now=NOW)
    )
    runtime.write(
        lambda s: demo.trigger_carbon_spike(
            session=s, grid=runtime.svc.grid(), now=NOW, workload_id=made.workload.id
        )
    )
    summary = runtime.tick()
    assert summary["ingest"].startswith("sim: 22 readings for 11 zone(s)")
    assert len(summary["handled"]) == 1 and runtime.last_error is None
    spoken = runtime.read(lambda s: list_audio_alerts(session=s))
    expected = {("curtailment", "ES"), ("incident", made.workload.zone)}
    assert {(a.kind, a.zone) for a in spoken} >= expected
    assert summary["spoken"] == len(spoken)
    assert runtime.tick()["handled"] == [] and runtime.tick()["spoken"] == 0


def test_chat_turns_stream_and_keep_their_thread(runtime):
    first = list(runtime.chat_turn("Where should I run 4 H100 for 6 hours?", "t-1"))
    assert [len(x) for x in first] == sorted(len(x) for x in first) and len(first) >= 3
    final = first[-1]
    assert (
        isinstance(final[0], AIMessage) and final[0].tool_calls[0]["name"] == "recommend_placement"
    )
    assert isinstance(final[1], ToolMessage) and "[offline model]" in final[-1].content
    asked = list(runtime.chat_turn("route it", "t-1"))[-1]
    assert asked[0].tool_calls[0]["name"] == "route_workload"
    assert runtime.read(lambda s: repo.list_workloads(session=s)) == []
    runtime.decide("t-1", approve=True, by="ops")
    rows = runtime.read(lambda s: repo.list_workloads(session=s, statuses=["routed"]))
    assert [w.node_id for w in rows] == ["fr-par-h100"]
    other = list(runtime.chat_turn("route it", "t-2"))[-1]
    assert "route_workload" not in [
        c["name"] for m in other if isinstance(m, AIMessage) for c in m.tool_calls
    ]


def test_the_model_label_names_the_model(tmp_path):
    offline = Services.from_settings(Settings(data_dir=tmp_path))
    assert model_label(offline) == "offline model (deterministic, no API key)"
    crusoe = Services.from_settings(
        Settings(
            data_dir=tmp_path,
            llm_api_key=SecretStr("k"),
            llm_model="meta-llama/Llama-3.3-70B-Instruct",
        )
    )
    assert model_label(crusoe) == "Crusoe · meta-llama/Llama-3.3-70B-Instruct"


def test_console_auth_is_validated_and_locks_the_console(console_svc):
    assert Settings().auth_pair() is None  # unset: a login is generated into data_dir
    assert Settings(console_auth=SecretStr("off")).auth_pair() is None
    assert Settings(console_auth=SecretStr("ops:pw")).auth_pair() == ("ops", "pw")
    with pytest.raises(ValueError, match="user:password") as bad:
        Settings(console_auth=SecretStr("nopassword")).auth_pair()
    assert "nopassword" not in str(bad.value)
    from ui.app import create_server

    locked = Services(
        settings=console_svc.settings.model_copy(update={"console_auth": SecretStr("ops:pw")}),
        clock=console_svc.clock,
    )
    with TestClient(create_server(locked)) as client:
        assert client.get("/config").status_code == 401
        assert client.post("/login", data={"username": "ops", "password": "no"}).status_code == 400
        assert client.post("/login", data={"username": "ops", "password": "pw"}).status_code == 200
        assert client.get("/config").status_code == 200
        assert client.get("/api/v1/health").status_code == 200


class _StreamingScript(ScriptedChatModel):
    """The scripted model, streaming its text answers word by word like a served model."""

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        message = self._generate(messages, stop, run_manager, **kwargs).generations[0].message
        if message.tool_calls:
            calls = [
                tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                for i, c in enumerate(message.tool_calls)
            ]
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=calls))
            return
        for word in str(message.content).split(" "):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))


def test_the_console_streams_an_agents_answer_token_by_token(console_svc):
    answer = "Tell me the job size and how long it runs."
    model = _StreamingScript(
        [
            AIMessage("", tool_calls=[tool_call("transfer_to_broker", {"task": "help"}, "t1")]),
            AIMessage(answer),
        ]
    )
    settings = console_svc.settings.model_copy(update={"loop_interval_s": 0})
    rt = ConsoleRuntime(console_svc, settings, model=model)
    rt.start()
    try:
        seen = list(rt.chat_turn("I need GPUs", "s-1"))
    finally:
        rt.stop()
    partials = [str(x[-1].content) for x in seen if x and isinstance(x[-1], AIMessageChunk)]
    assert len(partials) == len(answer.split(" ")) and partials[0] == "Tell "
    assert all(b.startswith(a) for a, b in zip(partials, partials[1:], strict=False))
    final = seen[-1]
    assert len(final) == 1 and not isinstance(final[0], AIMessageChunk)
    assert final[0].content.strip() == answer
    model.assert_complete()


def test_the_console_loop_moves_running_work_only_as_the_settings_say(console_svc, monkeypatch):
    assert ConsoleRuntime(console_svc, console_svc.settings).context().move_running_work is True
    monkeypatch.setenv("TGTG_MOVE_RUNNING_WORK", "false")
    cfg = console_svc.settings
    off = replace(
        console_svc, settings=Settings(database_url=cfg.database_url, data_dir=cfg.data_dir)
    )
    assert off.settings.move_running_work is False
    assert ConsoleRuntime(off, off.settings).context().move_running_work is False
