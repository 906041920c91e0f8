from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import AIMessage, ToolMessage
from pydantic import SecretStr

from graphs.settings import Settings
from store import repo
from tools.incidents.alerts import list_audio_alerts
from ui import demo
from ui.console_runtime import model_label
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
