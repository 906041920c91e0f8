"""Shared plumbing of the `tgtg` sub-commands: settings from the root options, output, errors."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from graphs.settings import Settings
from tools.clock import parse_time
from tools.errors import DomainError
from ui.services import Services

P = ParamSpec("P")
R = TypeVar("R")

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")
AT_OPTION = typer.Option(None, "--at", help="Pretend it is this time (ISO-8601, UTC if no zone).")

console = Console()


def services(ctx: typer.Context, at: str | None = None) -> Services:
    """Return services built from the root options (flags beat environment beat defaults)."""
    settings: Settings = ctx.find_root().obj["settings"]
    return Services.from_settings(settings, at=parse_time(at, what="--at") if at else None)


@contextmanager
def transaction(svc: Services) -> Iterator[Session]:
    """Open a session whose work is committed whole, or rolled back on any error."""
    with svc.sessions.begin() as session:
        yield session


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error to stderr and return the exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def domain_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn domain and validation errors into exit code 2 with the message on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except DomainError as exc:
            raise fail(str(exc)) from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
            )
            raise fail(problems) from None

    return wrapper


def jsonable(data: Any) -> Any:
    """Convert pydantic models (and lists/dicts of them) to JSON-ready data."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [jsonable(d) for d in data]
    if isinstance(data, dict):
        return {k: jsonable(v) for k, v in data.items()}
    if isinstance(data, datetime):
        return data.isoformat()
    return data


def emit_json(data: Any) -> None:
    """Print data as JSON on stdout."""
    print(json.dumps(jsonable(data), indent=2, default=str))


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a rich table for people."""
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console.print(t)
