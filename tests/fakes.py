"""Test doubles: a strict scripted chat model and local HTTP fakes on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr

Step = AIMessage | Callable[[list[BaseMessage]], AIMessage]


class UnexpectedModelCall(AssertionError):
    """The code under test called the model more often than the script allows."""


class UnconsumedModelSteps(AssertionError):
    """The script still had steps when the test ended."""


@dataclass
class ModelCall:
    """One recorded call: the messages received and the names of the bound tools."""

    messages: list[BaseMessage]
    tool_names: list[str] = field(default_factory=list)
    tool_choice: Any = None


class ScriptedChatModel(BaseChatModel):
    """A chat model that replays a fixed script of `AIMessage`s (or callables of the messages)."""

    steps: list[Any]
    _cursor: int = PrivateAttr(default=0)
    _calls: list[ModelCall] = PrivateAttr(default_factory=list)

    def __init__(self, steps: Sequence[Step], **kwargs: Any) -> None:
        super().__init__(steps=list(steps), **kwargs)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> list[ModelCall]:
        return self._calls

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        names = [t["function"]["name"] for t in kwargs.get("tools") or []]
        self._calls.append(ModelCall(list(messages), names, kwargs.get("tool_choice")))
        if self._cursor >= len(self.steps):
            raise UnexpectedModelCall(
                f"model call #{self._cursor + 1} but the script has {len(self.steps)} steps; "
                f"last message: {messages[-1].content!r}"
            )
        step = self.steps[self._cursor]
        self._cursor += 1
        message = step(list(messages)) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=message)])

    def assert_complete(self) -> None:
        if self._cursor != len(self.steps):
            raise UnconsumedModelSteps(
                f"{len(self.steps) - self._cursor} of {len(self.steps)} scripted steps unused"
            )


def tool_call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    """Return a tool-call dict the way an OpenAI-compatible server reports it."""
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


# --- Local HTTP fakes (stdlib, 127.0.0.1) ----------------------------------------------------


@dataclass
class Reply:
    """A canned HTTP answer; `chunks` streams server-sent events instead of `body`."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[str] | None = None
    delay_s: float = 0.0


@dataclass
class Seen:
    """One request the fake server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeHTTPServer:
    """A threaded HTTP server on 127.0.0.1 answering with `handler(request) -> Reply`."""

    def __init__(self, handler: Callable[[Seen], Reply]) -> None:
        self.handler = handler
        self.requests: list[Seen] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw.decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                seen = Seen(self.command, self.path, headers, body)
                outer.requests.append(seen)
                reply = outer.handler(seen)
                if reply.delay_s:
                    threading.Event().wait(reply.delay_s)
                if reply.chunks is not None:
                    self.send_response(reply.status)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("connection", "close")
                    self.end_headers()
                    for chunk in reply.chunks:
                        self.wfile.write(f"data: {chunk}\n\n".encode())
                        self.wfile.flush()
                    self.close_connection = True
                    return
                data = json.dumps(reply.body).encode() if reply.body is not None else b""
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(handler: Callable[[Seen], Reply]) -> Iterator[FakeHTTPServer]:
    """Yield a running fake server (use from a fixture)."""
    with FakeHTTPServer(handler) as server:
        yield server


# --- OpenAI-compatible responses ---------------------------------------------------------------


def completion(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    model: str = "test-model",
) -> dict[str, Any]:
    """Return a `/v1/chat/completions` body; tool_calls are `{"id","name","arguments"}` dicts."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in tool_calls
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_764_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def stream_chunks(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    model: str = "test-model",
) -> list[str]:
    """Return SSE `data:` payloads streaming a completion the way vLLM/OpenAI do."""
    base = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1_764_000_000,
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return json.dumps(
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        )

    out = [chunk({"role": "assistant", "content": ""})]
    for word in (content or "").split(" ") if content else []:
        out.append(chunk({"content": word + " "}))
    for i, call in enumerate(tool_calls or []):
        args = json.dumps(call["arguments"])
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        for j in range(0, len(args), 12):
            out.append(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j : j + 12]}}]})
            )
    out.append(chunk({}, "tool_calls" if tool_calls else "stop"))
    out.append("[DONE]")
    return out


def models_list(*ids: str) -> dict[str, Any]:
    """Return a `/v1/models` body serving `ids`."""
    return {
        "object": "list",
        "data": [{"id": i, "object": "model", "created": 0, "owned_by": "test"} for i in ids],
    }
