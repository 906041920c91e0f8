"""Record a real model's chat completions on the agent tasks, and replay them through `ChatOpenAI`.

Recording wraps the real HTTP transport of the OpenAI SDK (`httpx2`): every
`/v1/chat/completions` exchange of one task is kept, request summary and full JSON response, in a
cassette (`<task id>.json`). Replaying serves those responses in order to the same `ChatOpenAI`
client through `httpx2.MockTransport`, so the graphs meet exactly what the real model said (tool
calls, prose instead of tool calls, malformed arguments) with no model and no socket.

Ids the store draws at random (`rec_…`, `wl_…`: a prefix and 12 hex digits) differ between the
recording and the replay. A recorded answer's id that the replayed conversation does not contain
is read as the newest id of the same kind that it does contain (the one the tools just returned);
an answer naming no such id is served unchanged.

A replay checks each request against its recording (path, model, tool names, the last message's
role) and fails loudly when the graphs ask something else: a changed prompt or tool list means the
cassette must be recorded again (`python -m evals agents --record DIR …`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

CASSETTE_KEYS = {"description", "task_id", "model", "reward", "exchanges"}
_ID = re.compile(r"\b([a-z]{2,4})_[0-9a-f]{12}\b")


def translate_ids(recorded: str, conversation: str) -> str:
    """Replace ids in `recorded` that `conversation` lacks by its newest id of the same prefix."""
    newest: dict[str, str] = {}
    for m in _ID.finditer(conversation):
        newest[m.group(1)] = m.group(0)

    def swap(m: re.Match[str]) -> str:
        if m.group(0) in conversation or m.group(1) not in newest:
            return m.group(0)
        return newest[m.group(1)]

    return _ID.sub(swap, recorded)


class CassetteMismatch(AssertionError):
    """The graphs sent a request the cassette did not record."""


def _summary(request: httpx2.Request) -> dict[str, Any]:
    body = json.loads(request.content or b"{}")
    messages = body.get("messages") or [{}]
    return {
        "path": request.url.path,
        "model": body.get("model"),
        "tool_names": [t["function"]["name"] for t in body.get("tools") or []],
        "last_role": messages[-1].get("role"),
        "messages": len(messages),
    }


@dataclass
class Recorder:
    """Keep every chat-completion exchange that passes through `transport()`."""

    exchanges: list[dict[str, Any]] = field(default_factory=list)

    def _keep(self, request: httpx2.Request, response: httpx2.Response) -> None:
        if request.url.path.endswith("/chat/completions"):
            self.exchanges.append(
                {
                    "request": _summary(request),
                    "status": response.status_code,
                    "response": json.loads(response.content or b"null"),
                }
            )

    def client(self, **kwargs: Any) -> httpx2.Client:
        """Return an `httpx2.Client` that records what the real server answers."""
        recorder = self

        class _Recording(httpx2.HTTPTransport):
            def handle_request(self, request: httpx2.Request) -> httpx2.Response:
                response = super().handle_request(request)
                response.read()
                recorder._keep(request, response)
                return response

        return httpx2.Client(transport=_Recording(), **kwargs)

    def save(self, path: Path, *, task_id: str, model: str, reward: float, note: str) -> None:
        """Write the cassette for one task trial."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "description": note,
            "task_id": task_id,
            "model": model,
            "reward": reward,
            "exchanges": self.exchanges,
        }
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


class Replayer:
    """Serve a cassette's responses in order; refuse requests it did not record."""

    def __init__(self, cassette: dict[str, Any]) -> None:
        self.task_id = str(cassette["task_id"])
        self.pending = list(cassette["exchanges"])
        self.served = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one request with the next recorded response."""
        if not request.url.path.endswith("/chat/completions"):
            raise CassetteMismatch(f"{self.task_id}: unexpected request to {request.url.path}")
        if not self.pending:
            raise CassetteMismatch(
                f"{self.task_id}: request {self.served + 1} was not recorded; record again"
            )
        rec = self.pending.pop(0)
        got, want = _summary(request), rec["request"]
        for key in ("model", "tool_names", "last_role"):
            if got[key] != want[key]:
                raise CassetteMismatch(
                    f"{self.task_id}: request {self.served + 1} {key} is {got[key]!r}, the "
                    f"recording has {want[key]!r}; record the cassette again"
                )
        self.served += 1
        body = translate_ids(json.dumps(rec["response"]), request.content.decode())
        return httpx2.Response(rec["status"], json=json.loads(body))

    def client(self) -> httpx2.Client:
        """Return an `httpx2.Client` answered by this cassette."""
        return httpx2.Client(transport=httpx2.MockTransport(self))

    def assert_used(self) -> None:
        """Fail when the graphs stopped before asking for every recorded response."""
        if self.pending:
            raise CassetteMismatch(
                f"{self.task_id}: {len(self.pending)} recorded responses were never requested"
            )


def load_cassette(path: Path) -> dict[str, Any]:
    """Read one cassette and check its keys."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    missing = CASSETTE_KEYS - data.keys()
    if missing:
        raise ValueError(f"{path}: cassette lacks {sorted(missing)}")
    return data
