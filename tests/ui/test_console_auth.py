"""The console's login: no Gradio event runs without a session, logins are rate-limited, `off`
is for loopback only, and `tgtg serve` prints only the secrets it generated."""

from __future__ import annotations

import asyncio
import json
import stat
import uuid

import gradio as gr
import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select
from starlette.routing import Mount
from typer.testing import CliRunner

from graphs.settings import Settings
from store.models import Workload
from ui.app import create_server
from ui.cli import app as cli_app
from ui.cli import serve_banner
from ui.services import Services


def _console(app) -> gr.routes.App:
    return next(
        r.app for r in app.routes if isinstance(r, Mount) and isinstance(r.app, gr.routes.App)
    )


def _join(dep: dict, session_hash: str) -> dict:
    return {
        "data": [None] * len(dep["inputs"]),
        "fn_index": dep["id"],
        "session_hash": session_hash,
        "event_data": None,
        "trigger_id": dep["targets"][0][0] if dep["targets"] else None,
    }


def _workloads(svc: Services) -> int:
    with svc.sessions() as s:
        return s.scalar(select(func.count()).select_from(Workload)) or 0


def test_every_gradio_event_refuses_a_caller_without_a_session(live_console, console_svc):
    url = live_console.url
    with httpx.Client(timeout=30) as operator:
        assert live_console.login(operator).status_code == 200
        deps = operator.get(url + "/config").json()["dependencies"]
        named = operator.get(url + "/gradio_api/info").json()["named_endpoints"]
    fns = _console(live_console.app).get_blocks().fns
    # Every event the app defines, private ones (api_visibility="private") included.
    assert sorted(d["id"] for d in deps) == sorted(fns) and len(fns) > 20
    assert {"/chat", "/demo_next"} <= set(named)
    before = _workloads(console_svc)

    forged = {f"access-token-{_console(live_console.app).cookie_id}": "forged"}
    for cookies in ({}, forged):
        with httpx.Client(timeout=30, cookies=cookies) as anonymous:
            assert anonymous.get(url + "/config").status_code == 401
            assert anonymous.get(url + "/gradio_api/info").status_code == 401
            for dep in deps:
                join = anonymous.post(url + "/gradio_api/queue/join", json=_join(dep, "anon"))
                assert join.status_code == 401, (dep["id"], join.text)
            for name in named:
                for route in ("call", "run"):
                    call = anonymous.post(f"{url}/gradio_api/{route}{name}", json={"data": []})
                    assert call.status_code == 401, (route, name, call.text)
            for path in ("/gradio_api/cancel", "/gradio_api/upload"):
                assert anonymous.post(url + path, json={}).status_code == 401, path
    assert _workloads(console_svc) == before  # nothing was created, routed or completed


def test_gradio_itself_refuses_every_event_without_a_session(live_console):
    # Gradio's login_check alone (the mounted app, without the guard in front of it).
    console = _console(live_console.app)
    deps = console.get_blocks().config["dependencies"]

    async def sweep() -> list[int]:
        transport = httpx.ASGITransport(app=console)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
            return [
                (await c.post("/gradio_api/queue/join", json=_join(dep, "anon"))).status_code
                for dep in deps
            ]

    codes = asyncio.run(sweep())
    assert len(codes) == len(console.get_blocks().fns) and set(codes) == {401}


def test_a_logged_in_session_runs_a_harmless_event(live_console):
    url = live_console.url
    with httpx.Client(timeout=60) as operator:
        live_console.login(operator)
        deps = operator.get(url + "/config").json()["dependencies"]
        # The first page-load event fills the dashboard header (a read).
        header = next(d for d in deps if any(t[1] == "load" for t in d["targets"]))
        session = uuid.uuid4().hex
        join = operator.post(url + "/gradio_api/queue/join", json=_join(header, session))
        assert join.status_code == 200, join.text
        done = None
        with operator.stream(
            "GET", url + "/gradio_api/queue/data", params={"session_hash": session}
        ) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("msg") in ("process_completed", "close_stream"):
                        done = msg
                        break
    assert done is not None and done["success"] is True
    assert "Nodes online" in json.dumps(done["output"]["data"])


def test_login_attempts_are_rate_limited_per_client_address(console_svc):
    server = create_server(console_svc)
    user, password = console_svc.console_login() or ("", "")
    limit = console_svc.settings.console_login_attempts_per_minute
    wrong = {"username": user, "password": "guess"}
    right = {"username": user, "password": password}

    attacker = TestClient(server, client=("203.0.113.9", 40000))
    for _ in range(limit):
        assert attacker.post("/login", data=wrong).status_code == 400
    refused = attacker.post("/login", data=right)  # even the right password now waits
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "203.0.113.9" in refused.json()["detail"]
    assert attacker.get("/config").status_code == 401

    # Another address is not affected; a successful login clears an address's count.
    operator = TestClient(server, client=("198.51.100.7", 40000))
    for _ in range(limit - 1):
        assert operator.post("/login", data=wrong).status_code == 400
    assert operator.post("/login", data=right).status_code == 200
    for _ in range(limit - 1):
        assert operator.post("/login", data=wrong).status_code == 400
    assert operator.get("/config").status_code == 200


def test_the_console_requires_a_login_by_default(console_svc, tmp_path):
    default = Services(
        settings=console_svc.settings.model_copy(update={"console_auth": None}),
        clock=console_svc.clock,
    )
    client = TestClient(create_server(default))
    assert client.get("/config").status_code == 401
    user, password = (tmp_path / "console_auth").read_text().strip().split(":", 1)
    assert client.post("/login", data={"username": user, "password": password}).status_code == 200
    assert client.get("/config").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "tgtg.example.com", "::"])
def test_console_auth_off_is_refused_on_a_host_others_can_reach(console_svc, host):
    open_svc = Services(
        settings=console_svc.settings.model_copy(
            update={"console_auth": SecretStr("off"), "host": host}
        ),
        clock=console_svc.clock,
    )
    with pytest.raises(ValueError, match=rf"loopback host only .* not on '{host}'"):
        create_server(open_svc)


def test_console_auth_off_on_loopback_serves_without_a_login(console_svc):
    for host in ("127.0.0.1", "::1", "[::1]", "localhost"):
        Settings(console_auth="off", host=host).refuse_open_console(host)
    local = Services(
        settings=console_svc.settings.model_copy(update={"console_auth": SecretStr(" OFF ")}),
        clock=console_svc.clock,
    )
    assert local.console_login() is None
    client = TestClient(create_server(local))
    assert client.get("/config").status_code == 200
    assert client.get("/gradio_api/info").status_code == 200


@pytest.fixture
def tgtg(tmp_path, monkeypatch):
    """Run `tgtg serve` in-process without a server: the app build and uvicorn are stubbed."""
    started: list[tuple[str, int]] = []
    monkeypatch.setattr("ui.app.create_server", lambda svc: object())
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, **kw: started.append((host, port)))
    for name in ("TGTG_API_KEY", "TGTG_CONSOLE_AUTH", "TGTG_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TGTG_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None):
        result = runner.invoke(cli_app, ["serve", *args], env=env)
        return result, started

    return run


def test_serve_refuses_console_auth_off_on_a_public_host(tgtg, tmp_path):
    result, started = tgtg(env={"TGTG_CONSOLE_AUTH": "off", "TGTG_HOST": "0.0.0.0"})
    assert result.exit_code == 2 and not started
    assert "TGTG_CONSOLE_AUTH=off" in result.stderr and "'0.0.0.0'" in result.stderr
    assert not (tmp_path / "api_key").exists()  # a refused start generates no secret
    result, started = tgtg("--host", "10.0.0.5", env={"TGTG_CONSOLE_AUTH": "off"})
    assert result.exit_code == 2 and not started and "'10.0.0.5'" in result.stderr
    result, started = tgtg(env={"TGTG_CONSOLE_AUTH": "admin-no-colon"})
    assert result.exit_code == 2 and not started
    assert "user:password" in result.stderr and "admin-no-colon" not in result.output
    result, started = tgtg("--port", "7999", env={"TGTG_CONSOLE_AUTH": "off"})
    assert result.exit_code == 0 and started == [("127.0.0.1", 7999)]
    assert "Console login: off" in result.stdout


def test_serve_prints_secrets_only_when_this_start_generated_them(tgtg, tmp_path):
    first, _ = tgtg()
    assert first.exit_code == 0, first.output
    key = (tmp_path / "api_key").read_text().strip()
    login = (tmp_path / "console_auth").read_text().strip()
    user, password = login.split(":", 1)
    assert user == "operator" and len(password) >= 20
    for path in ("api_key", "console_auth"):
        assert stat.S_IMODE((tmp_path / path).stat().st_mode) == 0o600
    assert key in first.stdout and password in first.stdout

    again, _ = tgtg()  # the same files, read back: named, not shown
    assert again.exit_code == 0
    assert key not in again.output and password not in again.output
    assert f"in {tmp_path / 'api_key'} (not shown)" in again.stdout
    assert f"user operator, password in {tmp_path / 'console_auth'} (not shown)" in again.stdout

    env = {"TGTG_API_KEY": "env-key-4711", "TGTG_CONSOLE_AUTH": "ops:env-password-4711"}
    from_env, _ = tgtg(env=env)
    assert from_env.exit_code == 0
    assert "4711" not in from_env.output
    assert "TGTG_API_KEY (not shown)" in from_env.stdout
    assert "user ops, password from TGTG_CONSOLE_AUTH (not shown)" in from_env.stdout


def test_serve_banner_decides_from_where_each_secret_came(console_svc, tmp_path):
    # console_svc has both secrets in its settings: nothing to show.
    lines = serve_banner(console_svc, "http://127.0.0.1:7860")
    assert "console-test-key" not in str(lines) and "console-test-password" not in str(lines)
    fresh = Services.from_settings(Settings(data_dir=tmp_path / "fresh"))
    lines = serve_banner(fresh, "http://127.0.0.1:7860")
    assert fresh.api_key() in lines[1] and fresh.console_login()[1] in lines[2]
    assert fresh.api_key_credential().generated and fresh.console_credential().generated
    assert fresh.api_key() not in repr(fresh.api_key_credential())
    later = Services.from_settings(Settings(data_dir=tmp_path / "fresh"))
    assert later.api_key() == fresh.api_key() and not later.api_key_credential().generated
    assert later.console_login() == fresh.console_login()


def test_stored_secrets_must_not_be_empty_or_malformed(tmp_path):
    (tmp_path / "api_key").write_text("\n")
    (tmp_path / "console_auth").write_text("operator-without-password\n")
    svc = Services.from_settings(Settings(data_dir=tmp_path))
    with pytest.raises(ValueError, match="api_key is empty"):
        svc.api_key()
    with pytest.raises(ValueError, match=r"console_auth must look like 'user:password'"):
        svc.console_login()
