"""Fixtures for the console: services on a fresh SQLite file, a started runtime, a live server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn

from graphs.settings import Settings
from tools.broker.fleet import seed_demo
from ui.console_runtime import ConsoleRuntime
from ui.services import Services

NOW = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
KEY = "console-test-key"
AUTH = {"X-API-Key": KEY}
LOGIN = ("operator", "console-test-password")
"""The console login the fixtures configure (TGTG_CONSOLE_AUTH)."""


@pytest.fixture
def console_svc(tmp_path, monkeypatch) -> Services:
    monkeypatch.setenv("TGTG_LOOP_INTERVAL_S", "0")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'console.db'}",
        data_dir=tmp_path,
        api_key=KEY,
        console_auth=":".join(LOGIN),
    )
    return Services.from_settings(settings, at=NOW)


@pytest.fixture
def runtime(console_svc) -> Iterator[ConsoleRuntime]:
    with console_svc.sessions.begin() as session:
        seed_demo(session=session, grid=console_svc.grid("sim"), now=NOW)
    rt = ConsoleRuntime(console_svc, console_svc.settings.model_copy(update={"loop_interval_s": 0}))
    rt.start()
    yield rt
    rt.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """Uvicorn serving the console on 127.0.0.1 in a background thread."""

    def __init__(self, app: object) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the console server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    credentials = LOGIN
    """The console login the `console_svc` fixture configures."""

    def login(self, client: httpx.Client) -> httpx.Response:
        """Log `client` in to the console (Gradio's form login sets the session cookie)."""
        user, password = self.credentials
        return client.post(self.url + "/login", data={"username": user, "password": password})


@pytest.fixture
def live_console(console_svc) -> Iterator[LiveServer]:
    from ui.app import create_server

    with LiveServer(create_server(console_svc)) as server:
        yield server
