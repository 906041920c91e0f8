"""Build the operator console (Gradio Blocks) and mount it on the FastAPI app at `/`.

Telemetry is off: the environment variables below are set before Gradio (and huggingface_hub)
are imported, unless the operator set them explicitly.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import asyncio  # noqa: E402
import logging  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import gradio as gr  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from starlette.routing import Mount  # noqa: E402

from ui import console_views as views  # noqa: E402
from ui import dashboard as analytics  # noqa: E402
from ui.api import create_app  # noqa: E402
from ui.console_auth import ConsoleGuard  # noqa: E402
from ui.console_runtime import ConsoleRuntime  # noqa: E402
from ui.services import Services  # noqa: E402
from ui.tabs import (  # noqa: E402
    Refresh,
    alerts,
    chat,
    demo,
    grid,
    nodes,
    payouts,
    profitability,
    workloads,
)

logger = logging.getLogger(__name__)

ACTION_RESULTS = (
    "wl-result",
    "grid-status",
    "chatbot",
    "chat-proposal",
    "demo-log",
    "demo-status",
)
"""Elements only an operator's action writes: when one changes, the header is redrawn at once."""

TABS = (
    ("Chat", "chat", chat.build),
    ("Grid", "grid", grid.build),
    ("Workloads", "workloads", workloads.build),
    ("Nodes", "nodes", nodes.build),
    ("Alerts", "alerts", alerts.build),
    ("Profitability", "profitability", profitability.build),
    ("Payouts", "payouts", payouts.build),
    ("Demo", "demo", demo.build),
)


def _header(rt: ConsoleRuntime) -> tuple[str, str]:
    now = rt.svc.clock.now()
    d = rt.read(lambda s: analytics.dashboard(session=s, grid=rt.svc.grid(), now=now))
    loop = rt.last_pass.get("at", "not yet")
    state = (
        f"last background pass failed: {rt.last_error}"
        if rt.last_error
        else (
            f"background loop every {rt.config.loop_interval_s:g} s; last pass {loop}"
            if rt.config.loop_interval_s > 0
            else "background loop off"
        )
    )
    return views.kpi_cards(d, rt.model_short), f"<small>{now:%Y-%m-%d %H:%M} UTC · {state}</small>"


def build_console(rt: ConsoleRuntime) -> gr.Blocks:
    """Return the console: dashboard header and one tab per concern, refreshed by a timer."""
    with gr.Blocks(title="Too Green To Go", analytics_enabled=False) as blocks:
        gr.Markdown("# Too Green To Go · operator console")
        kpis = gr.HTML(elem_id="dashboard")
        status = gr.HTML(elem_id="loop-status")
        refreshers: list[Refresh] = [(lambda: _header(rt), [], [kpis, status])]
        with gr.Tabs(elem_id="tabs"):
            for label, key, build in TABS:
                with gr.Tab(label, id=key, elem_id=f"tab-{key}") as tab:
                    own = build(rt)
                # Opening a tab shows fresh figures at once (the timer covers the rest).
                for fn, inputs, outputs in [refreshers[0], *own]:
                    tab.select(
                        fn,
                        list(inputs),
                        list(outputs),
                        show_progress="hidden",
                        api_visibility="private",
                    )
                refreshers.extend(own)
        # The header follows every action (each demo step too), not only the timer.
        header_fn, _, header_out = refreshers[0]
        for block in list(blocks.blocks.values()):
            if getattr(block, "elem_id", None) in ACTION_RESULTS and hasattr(block, "change"):
                block.change(
                    header_fn,
                    [],
                    list(header_out),
                    show_progress="hidden",
                    api_visibility="private",
                )
        timer = gr.Timer(rt.config.console_refresh_s)
        for fn, inputs, outputs in refreshers:
            blocks.load(fn, list(inputs), list(outputs), api_visibility="private")
            timer.tick(
                fn, list(inputs), list(outputs), show_progress="hidden", api_visibility="private"
            )
    return blocks


def create_server(svc: Services) -> FastAPI:
    """Return the API with the console mounted at `/` (`/api/v1` and `/docs` keep working).

    The console asks for the login `svc.console_login()` returns (TGTG_CONSOLE_AUTH, else the
    one generated into data_dir); only TGTG_CONSOLE_AUTH=off on a loopback host turns it off.
    The console is built in a worker thread inside its own event loop, so this works with or
    without a running loop in the caller's thread.

    Raises:
        ValueError: the console login is malformed, or off on a non-loopback host.
    """
    auth = svc.console_login()
    app = create_app(svc)
    rt: ConsoleRuntime = app.state.console

    async def build() -> FastAPI:
        # Built inside a running loop: Gradio otherwise opens (and never closes) a fresh asyncio
        # loop for every lock it creates.
        return mount(app, build_console(rt), auth)

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(build())).result()


def mount(app: FastAPI, blocks: gr.Blocks, auth: tuple[str, str] | None) -> FastAPI:
    """Mount `blocks` on `app` at `/` with the console's theme and, unless `auth` is None, a login.

    The login is Gradio's `auth` (its `login_check` dependency on the event routes) with
    `ConsoleGuard` in front of every Gradio API route and `/login`.
    """
    svc: Services = app.state.services
    gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        auth=auth,
        auth_message="Too Green To Go operator console",
        server_name=svc.settings.host,
        server_port=svc.settings.port,
        css=views.CSS,
        footer_links=["api"],
        theme=gr.themes.Soft(primary_hue="green"),
        mcp_server=False,  # never exposed by GRADIO_MCP_SERVER
    )
    if auth is None:
        logger.warning(
            "console login is off (TGTG_CONSOLE_AUTH=off): anyone on this machine can use it"
        )
        return app
    console = next(
        r.app for r in app.routes if isinstance(r, Mount) and isinstance(r.app, gr.routes.App)
    )

    def has_session(cookies: dict[str, str]) -> bool:
        # The cookies Gradio's /login sets; their tokens live in the mounted app.
        names = (f"access-token-{console.cookie_id}", f"access-token-unsecure-{console.cookie_id}")
        return any(console.tokens.get(cookies.get(name, "")) for name in names)

    app.add_middleware(
        ConsoleGuard,
        has_session=has_session,
        attempts_per_minute=svc.settings.console_login_attempts_per_minute,
    )
    return app
