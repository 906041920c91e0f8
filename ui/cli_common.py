"""Shared plumbing of the `tgtg` sub-commands: settings from the root options, output, errors.

Every failure a person can fix ends the same way: exit code 2 and one line on stderr,
`error: <option or value>: <what to change>`, never a traceback. Usage errors (bad option
values, missing options) are turned into that line by `CliGroup`; errors raised while a command
runs (domain rules, validation, the database: see `ui.cli_db`) by `domain_errors`.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from sqlalchemy.orm import Session
from typer.core import TyperGroup

from graphs.settings import Settings
from tools.clock import parse_time_in_range
from tools.errors import DomainError
from ui.cli_db import store_problem
from ui.services import Services

P = ParamSpec("P")
R = TypeVar("R")

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")
GRID_SOURCES = ("sim", "recorded", "live")

console = Console()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error to stderr and return the exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


# --- usage errors: option values refused while the command line is parsed ---------------------


class BadValueError(typer.BadParameter):
    """An option value refused by a check; the error line names the option and the value."""

    def __init__(self, value: object, message: str) -> None:
        """Keep the refused value for the error line."""
        super().__init__(message)
        self.value = value


_NO_VALUE = object()


def _refused_value(exc: typer.BadParameter) -> object:
    """Return the value a bad-parameter error refused, or _NO_VALUE when it is not known."""
    if isinstance(exc, BadValueError):
        return exc.value
    cause = exc.__cause__
    if isinstance(cause, ValidationError) and cause.errors():
        return cause.errors()[0].get("input", _NO_VALUE)
    return _NO_VALUE


def _plain(message: str) -> str:
    """Return a pydantic or click message as one line without the 'Value error, ' prefix."""
    return " ".join(message.removeprefix("Value error, ").split())


def usage_message(exc: typer.TyperException) -> str:
    """Return the one-line text of a usage error, naming the option and the value refused."""
    if isinstance(exc, typer.BadParameter) and exc.param is not None:
        value = _refused_value(exc)
        if value is not _NO_VALUE:
            label = exc.param.get_error_hint().replace("'", "")
            return f"{label} {str(value)!r}: {_plain(exc.message)}"
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return _plain(exc.format_message()) + hint


class CliGroup(TyperGroup):
    """The root `tgtg` group: usage errors print as one line on stderr and exit 2."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; report usage errors as `error: ...` on one line."""
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:
            if type(exc).__name__ != "NoArgsIsHelpError":  # that one has printed the help
                print(f"error: {usage_message(exc)}", file=sys.stderr)
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def one_of(*allowed: str) -> Callable[[Any], Any]:
    """Return an option callback that accepts only `allowed` values (one or a repeated list)."""

    def check(value: Any) -> Any:
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None and v not in allowed:
                raise BadValueError(v, f"use one of {', '.join(allowed)}")
        return value

    return check


SOURCE_OPTION = typer.Option(
    None, "--source", help="sim | recorded | live.", callback=one_of(*GRID_SOURCES)
)
AT_OPTION = typer.Option(None, "--at", help="Pretend it is this time (ISO-8601, UTC if no zone).")


def cli_time(text: str, option: str) -> datetime:
    """Parse an ISO-8601 time given as `option` (`tools.clock.parse_time_in_range`)."""
    return parse_time_in_range(text, what=option)


# --- services -----------------------------------------------------------------------------------


def services(ctx: typer.Context, at: str | None = None) -> Services:
    """Return services built from the root options (flags beat environment beat defaults).

    Their database connections are closed when the command finishes.
    """
    settings: Settings = ctx.find_root().obj["settings"]
    svc = Services.from_settings(settings, at=cli_time(at, "--at") if at else None)
    ctx.call_on_close(lambda: _close(svc))
    return svc


def _close(svc: Services) -> None:
    """Close the database connections of `svc` if it opened any (the command has finished)."""
    engine = svc.__dict__.get("engine")  # the cached engine, if the command built one
    if engine is not None:
        engine.dispose()


@contextmanager
def transaction(svc: Services) -> Iterator[Session]:
    """Open a session whose work is committed whole, or rolled back on any error."""
    with svc.sessions.begin() as session:
        yield session


# --- errors raised while a command runs ---------------------------------------------------------


def validation_message(
    exc: ValidationError,
    labels: Mapping[str, str] | None = None,
    values: Mapping[str, object] | None = None,
) -> str:
    """Return a pydantic error as one line naming each field (or its option) and the value.

    Args:
        exc: The validation error.
        labels: Field name -> what the person typed it as (an option or an environment variable);
            the key "" labels errors about the whole model.
        values: Field name -> the raw value as typed (default: the value pydantic saw).
    """
    labels, values = labels or {}, values or {}
    problems = []
    for e in exc.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        label = labels.get(field) or ".".join(str(p) for p in e["loc"])
        if field:
            value = values.get(field, e.get("input"))
            label = label if value is None else f"{label} {str(value)!r}"
        problems.append(f"{label}: {_plain(e['msg'])}" if label else _plain(e["msg"]))
    return "; ".join(problems)


def _context_in(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Return the command's click context argument (typer hands commands one), or None."""
    return next((a for a in (*args, *kwargs.values()) if hasattr(a, "find_root")), None)


def _refuse_non_finite(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse NaN or an infinity in any number option before the command computes with it."""
    ctx = _context_in(args, kwargs)
    params = {p.name: p for p in ctx.command.params} if ctx is not None else {}
    for name, value in kwargs.items():
        if isinstance(value, float) and not math.isfinite(value):
            param = params.get(name)
            option = param.opts[0] if param is not None else "--" + name.replace("_", "-")
            raise fail(f"{option} {str(value)!r}: give a finite number")


def _settings_in(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Settings | None:
    """Return the root settings from the command's context argument, if any."""
    ctx = _context_in(args, kwargs)
    obj = ctx.find_root().obj if ctx is not None else None
    settings = obj.get("settings") if isinstance(obj, dict) else None
    return settings if isinstance(settings, Settings) else None


def domain_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn domain, validation and database errors into exit code 2 with one line on stderr.

    Number options holding NaN or an infinity are refused (exit 2) before the command runs.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _refuse_non_finite(args, kwargs)
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except DomainError as exc:
            raise fail(" ".join(str(exc).split())) from None
        except ValidationError as exc:
            raise fail(validation_message(exc)) from None
        except Exception as exc:
            settings = _settings_in(args, kwargs)
            problem = store_problem(exc, settings.resolved_database_url) if settings else None
            if problem is None:
                raise
            raise fail(problem) from None

    return wrapper


# --- output --------------------------------------------------------------------------------------


def jsonable(data: Any) -> Any:
    """Convert pydantic models (and lists/dicts of them) to JSON-ready data."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list | tuple):
        return [jsonable(d) for d in data]
    if isinstance(data, dict):
        return {k: jsonable(v) for k, v in data.items()}
    if isinstance(data, datetime):
        return data.isoformat()
    return data


def _non_finite_at(data: Any, path: str = "") -> str | None:
    """Return the path of the first NaN or infinity in JSON-ready data, or None."""
    if isinstance(data, float) and not math.isfinite(data):
        return path or "the result"
    if isinstance(data, dict):
        items: list[tuple[str, Any]] = [(f"{path}.{k}".lstrip("."), v) for k, v in data.items()]
    elif isinstance(data, list):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(data)]
    else:
        return None
    for where, value in items:
        found = _non_finite_at(value, where)
        if found:
            return found
    return None


def emit_json(data: Any) -> None:
    """Print data as strict JSON on stdout (no NaN or Infinity: those exit 2 instead)."""
    ready = jsonable(data)
    where = _non_finite_at(ready)
    if where is not None:
        raise fail(
            f"--json: {where} is not a finite number, which JSON cannot carry; "
            "check the inputs and TGTG_ settings that produced it"
        )
    print(json.dumps(ready, indent=2, default=str, allow_nan=False))


TEXT_COLUMNS = frozenset({"name", "reason", "note", "text"})
"""Columns of free text: the only ones that wrap onto more lines when the terminal is narrow."""


_layout = {"wide": False}


def print_tables_wide(wide: bool) -> None:
    """Print this command's tables at their natural width (`tgtg --wide`) or to fit."""
    _layout["wide"] = wide


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table for people, never cutting a value short.

    Ids, numbers and amounts keep their full width on one line, so they can be copied; only
    free text (`TEXT_COLUMNS`) wraps when the terminal is narrow. A table that still does not
    fit, or any table under `tgtg --wide`, is printed at its natural width.
    """
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    t = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        title_justify="left",
    )
    for i, c in enumerate(columns):
        natural = max([len(c), *(len(r[i]) for r in cells)])
        if c in TEXT_COLUMNS:
            t.add_column(c, overflow="fold", min_width=min(natural, 10))
        else:
            t.add_column(c, no_wrap=True, min_width=natural)
    for r in cells:
        t.add_row(*r)
    size = Measurement.get(console, console.options.update(max_width=100_000), t)
    if _layout["wide"] or size.minimum > console.width:
        Console(width=size.maximum).print(t)
    else:
        console.print(t)
