"""The `tgtg` command line: database, seed, grid, scoring, routing, workloads and the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from evals.cli import replay as replay_command
from graphs.settings import Settings
from ui.cli_agents import register as register_agent_commands
from ui.cli_common import (
    GRID_SOURCES,
    CliGroup,
    domain_errors,
    fail,
    one_of,
    print_tables_wide,
    validation_message,
)
from ui.cli_fleet import register as register_fleet_commands
from ui.cli_forecast import forecast_app
from ui.cli_grid import grid_app
from ui.cli_money import register as register_money
from ui.cli_route import register as register_route_commands
from ui.cli_workloads import workloads_app
from ui.services import Services

app = typer.Typer(
    name="tgtg",
    help="Too Green To Go: route GPU work to wherever clean energy is cheapest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=CliGroup,
)
app.add_typer(grid_app, name="grid")
app.add_typer(forecast_app, name="forecast")
app.add_typer(workloads_app, name="workloads")
register_fleet_commands(app)
register_agent_commands(app, grid_app)
register_money(app, workloads_app)
app.command("replay")(domain_errors(replay_command))
register_route_commands(app)


@app.callback()
def main(
    ctx: typer.Context,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Overrides TGTG_DATABASE_URL.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Overrides TGTG_DATA_DIR.")
    ] = None,
    grid_source: Annotated[
        str | None,
        typer.Option(
            "--grid-source", help="sim | recorded | live.", callback=one_of(*GRID_SOURCES)
        ),
    ] = None,
    grid_dir: Annotated[
        Path | None, typer.Option("--grid-dir", help="Recorded CSV directory (TGTG_GRID_DIR).")
    ] = None,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide", help="Print tables at full width, never wrapped to the terminal (for pipes)."
        ),
    ] = False,
) -> None:
    """Too Green To Go: route GPU work to wherever clean energy is cheapest."""
    overrides: dict[str, Any] = {  # Settings validates the values
        k: v
        for k, v in {
            "database_url": database_url,
            "data_dir": data_dir,
            "grid_source": grid_source,
            "grid_dir": grid_dir,
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        # A bad value came from a flag (named as typed) or from the environment / .env file.
        labels = {f: f"TGTG_{f.upper()}" for f in Settings.model_fields}
        labels |= {f: "--" + f.replace("_", "-") for f in overrides}
        raise fail(validation_message(exc, labels, overrides)) from None
    print_tables_wide(wide)
    ctx.obj = {"settings": settings}


def serve_banner(svc: Services, url: str) -> list[str]:
    """Return what `tgtg serve` prints: the address, then the API key and console login.

    A secret is shown only when this start generated it; one from the environment, `.env`, a
    Secret or an earlier start is named by where it lives, never printed.
    """
    lines = [f"Too Green To Go on {url}  (API docs: {url}/docs)"]
    key = svc.api_key_credential()
    if key.generated:
        lines.append(
            f"API key for writes (header X-API-Key), generated into {key.path}: {key.value}"
        )
    elif key.origin == "settings":
        lines.append("API key for writes (header X-API-Key): TGTG_API_KEY (not shown)")
    else:
        lines.append(f"API key for writes (header X-API-Key): in {key.path} (not shown)")
    login = svc.console_credential()
    if login is None:
        lines.append("Console login: off (TGTG_CONSOLE_AUTH=off, loopback only)")
        return lines
    user, _, password = login.value.partition(":")  # validated by console_credential()
    if login.generated:
        lines.append(
            f"Console login, generated into {login.path}: user {user}, password {password}"
        )
    elif login.origin == "settings":
        lines.append(f"Console login: user {user}, password from TGTG_CONSOLE_AUTH (not shown)")
    else:
        lines.append(f"Console login: user {user}, password in {login.path} (not shown)")
    return lines


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Default TGTG_HOST (127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default TGTG_PORT (7860).")] = None,
) -> None:
    """Serve the API and the console (login required) on the embedded database.

    The database is migrated and seeded on first start. The API key and the console login are
    printed only when this start generated them.
    """
    import uvicorn

    from ui.app import create_server

    settings: Settings = ctx.find_root().obj["settings"]
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    svc = Services.from_settings(settings.model_copy(update=updates))
    h, p = svc.settings.host, svc.settings.port
    try:  # the console check first: a refused start generates nothing
        svc.console_credential()
        svc.api_key_credential()
    except ValueError as exc:
        raise fail(str(exc)) from None
    fastapi_app = create_server(svc)
    for line in serve_banner(svc, f"http://[{h}]:{p}" if ":" in h else f"http://{h}:{p}"):
        print(line)
    uvicorn.run(fastapi_app, host=h, port=p, log_level="info")
