"""Input hygiene for /api/: body size, NUL bytes, non-finite numbers and 422 answers.

Every request under `/api/` passes `InputGuardMiddleware` before FastAPI parses it:

* a body over `MAX_BODY_BYTES` answers 413, judged by `Content-Length` and, for chunked bodies,
  by counting the bytes as they arrive (nothing past the limit is read);
* a JSON body with NaN, Infinity or a number too large for a float (`1e309`), a NUL byte or an
  unpaired surrogate in any string answers 422 naming the field;
* a NUL byte in a query or path parameter answers 422 naming the parameter.

The input models derive from `ApiInput` (finite numbers only, every string bounded), and the
422 handler installed by `install` echoes only inputs that are short, finite JSON scalars.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1_048_576
"""Largest request body under /api/ (1 MiB); larger ones answer 413."""
MAX_STRING_CHARS = 2_000
"""Default bound of every string in an input model (fields may set a lower one)."""
MAX_ID_CHARS = 64
"""Bound of every id (the store's id columns are 64 characters)."""
MAX_ERRORS = 10
"""At most this many problems are reported per request."""
_ECHO_CHARS = 100

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
"""An id in a body, path or query: 1-64 characters."""


class ApiInput(BaseModel):
    """Base of request bodies: no unknown fields, finite numbers, bounded strings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=MAX_STRING_CHARS)


def install(app: FastAPI) -> None:
    """Add the input guard middleware and the 422 handler to `app`."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(InputGuardMiddleware, owner=app)


def problem(loc: Sequence[str | int], msg: str, kind: str) -> dict[str, Any]:
    """Return one validation problem in FastAPI's shape (`loc`, `msg`, `type`)."""
    return {"loc": [_clean(part) for part in loc], "msg": msg, "type": kind}


def unprocessable(problems: list[dict[str, Any]]) -> JSONResponse:
    """Return the 422 answer: `detail` lists the problems, `message` names each field."""
    shown = problems[:MAX_ERRORS]
    message = "; ".join(f"{_where(p['loc'])}: {p['msg']}" for p in shown)
    return JSONResponse({"detail": shown, "message": message}, status_code=422)


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """Answer a `RequestValidationError` with 422, echoing only safe, short inputs."""
    errs = exc.errors() if isinstance(exc, RequestValidationError) else []
    return unprocessable([_safe(err) for err in errs] or [problem((), str(exc), "invalid")])


def _safe(err: dict[str, Any]) -> dict[str, Any]:
    kind = str(err.get("type", "value_error"))
    loc = list(err.get("loc", ()))
    msg = str(err.get("msg", "invalid value"))
    ctx = err.get("ctx") or {}
    if kind == "finite_number":
        msg = "must be a finite number"
    elif kind == "json_invalid":
        msg = f"is not valid JSON ({_text(ctx.get('error', 'decode error'))})"
        loc = ["body"]
    out = problem(loc, _text(msg, 500), kind)
    if "input" in err and (echo := _echo(err["input"])) is not _NOTHING:
        out["input"] = echo
    return out


_NOTHING = object()


def _echo(value: object) -> object:
    """Return `value` if it is a small JSON scalar worth echoing, else `_NOTHING`."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**18 else _NOTHING
    if isinstance(value, float):
        return value if math.isfinite(value) else _NOTHING
    if isinstance(value, str):
        return _text(value, _ECHO_CHARS)
    return _NOTHING


def _text(value: object, limit: int = 200) -> str:
    """Return `value` as printable, UTF-8-encodable text of at most `limit` characters."""
    text = str(value).replace("\x00", "\\x00")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean(part: object) -> str | int:
    return part if isinstance(part, int) and not isinstance(part, bool) else _text(part, 64)


def _where(loc: Sequence[str | int]) -> str:
    """Name the place of a problem: `duration_hours`, `allowed_zones[0]`, `query parameter x`."""
    if not loc:
        return "request"
    head, rest = loc[0], list(loc[1:])
    if head in {"query", "path", "header", "cookie"} and rest:
        return f"{head} parameter {rest[0]}"
    if head != "body" or not rest:
        return str(head) if not rest else f"{head}.{_dotted(rest)}"
    return _dotted(rest)


def _dotted(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def json_problems(value: object) -> list[dict[str, Any]]:
    """Return the non-finite numbers and bad strings (NUL, unpaired surrogate) in a JSON value.

    The walk is iterative, so deeply nested documents cannot exhaust the stack.
    """
    found: list[dict[str, Any]] = []
    stack: list[tuple[object, tuple[str | int, ...]]] = [(value, ("body",))]
    while stack and len(found) < MAX_ERRORS:
        item, loc = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            found.append(problem(loc, "must be a finite number", "finite_number"))
        elif isinstance(item, str):
            if bad := _string_problem(item):
                found.append(problem(loc, bad, "string_unicode"))
        elif isinstance(item, dict):
            for key, sub in reversed(list(item.items())):
                if bad := _string_problem(key):
                    found.append(problem(loc, f"has a key that {bad}", "string_unicode"))
                stack.append((sub, (*loc, key)))
        elif isinstance(item, list):
            stack.extend((sub, (*loc, i)) for i, sub in reversed(list(enumerate(item))))
    return found


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL bytes (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (it has an unpaired surrogate)"
    return None


def _is_json(scope: Scope) -> bool:
    """Whether FastAPI will read this body as JSON (no content type, or application/*json)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.decode("latin-1").split(";", 1)[0].strip().lower()
            main, _, sub = media.partition("/")
            return main == "application" and (sub == "json" or sub.endswith("+json"))
    return True


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


class InputGuardMiddleware:
    """Check size and content of /api/ requests before FastAPI parses them (see module doc)."""

    def __init__(self, app: ASGIApp, owner: FastAPI, max_body_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.owner = owner
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 400/413/422 for bad input on /api/ paths; pass everything else on."""
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        found = self._parameter_problems(scope)
        if found:
            await unprocessable(found)(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared == -1:
            await _reply(scope, receive, send, 400, "the Content-Length header is not a number")
            return
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and _is_json(scope):
            found = _body_problems(body)
            if found:
                await unprocessable(found)(scope, receive, send)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        await _reply(
            scope, receive, send, 413, f"the request body is over {limit} bytes; send less"
        )

    def _parameter_problems(self, scope: Scope) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        query = scope.get("query_string", b"").decode("latin-1")
        for name, value in parse_qsl(query, keep_blank_values=True):
            for text in (name, value):
                if bad := _string_problem(text):
                    found.append(problem(("query", name), bad, "string_unicode"))
                    break
        if bad := _string_problem(scope["path"]):
            found.append(problem(("path", self._path_parameter(scope)), bad, "string_unicode"))
        return found

    def _path_parameter(self, scope: Scope) -> str:
        """Name the path parameter holding a NUL byte (the route's own name for it)."""
        for route in self.owner.router.routes:
            if isinstance(route, APIRoute):
                match, child = route.matches(scope)
                if match != Match.NONE:
                    for name, value in child.get("path_params", {}).items():
                        if isinstance(value, str) and _string_problem(value):
                            return str(name)
        return "path"


def _body_problems(body: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        why = f"is not valid JSON ({exc.msg} at character {exc.pos})"
    except UnicodeDecodeError:
        why = "is not UTF-8 encoded JSON"
    except ValueError as exc:  # e.g. an integer with more than 4300 digits
        why = f"is not acceptable JSON ({_text(str(exc).split(';', 1)[0])})"
    except RecursionError:
        why = "is nested too deeply"
    else:
        return json_problems(document)
    return [problem(("body",), why, "json_invalid")]


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a `receive` that yields the buffered body once, then the client's own messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _reply(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
