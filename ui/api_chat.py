"""The chat routes under /api/v1/chat: send a message, approve or reject the write it proposes.

Every write an agent proposes stops the turn with `pending_approval`; nothing is written until
`POST /api/v1/chat/{thread}/approve`. All three POST routes need the `X-API-Key` header; the
person deciding names themselves in `by` (stored with the decision).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ui.console_runtime import ConsoleRuntime

ThreadId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Conversation id: letters, digits, '_', '.', '-' (1-64 characters).",
    ),
]


class ChatIn(BaseModel):
    """One operator message."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2_000, pattern=r"\S")


class ApproveIn(BaseModel):
    """Who approves."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(default="api", min_length=1, max_length=200, pattern=r"\S")


class RejectIn(ApproveIn):
    """Who rejects, and why (the agent reads the reason)."""

    reason: str | None = Field(default=None, max_length=500)


class PendingApproval(BaseModel):
    """A proposed write waiting for a person."""

    tool: str
    args: dict[str, Any]
    summary: dict[str, Any]
    """Plain facts computed by code: node, zone, start, GPUs, hours, kg CO2, cost, `text`."""


class ChatTurn(BaseModel):
    """What one turn (or one decision) did."""

    answer: str
    tool_calls: list[str]
    node: str | None
    zone: str | None
    written: bool
    pending_approval: PendingApproval | None
    thread: str
    agent: str | None
    decision: dict[str, Any] | None = None
    """For approve/reject: tool, args, approve, by, at, reason."""
    workload: dict[str, Any] | None = None
    """For an approved write: the workload it routed or moved."""
    already_decided: bool = False
    """True when nothing was waiting and the earlier approval is returned unchanged."""


async def _rt(request: Request) -> ConsoleRuntime:
    return request.app.state.console


RuntimeDep = Annotated[ConsoleRuntime, Depends(_rt)]


def register(app: FastAPI, require_key: Callable[..., None]) -> None:
    """Add the chat routes (the console runtime must be registered on `app` first)."""
    router = APIRouter(prefix="/api/v1/chat", tags=["chat"])

    @router.post("/{thread}", response_model=ChatTurn, dependencies=[Depends(require_key)])
    def send(thread: ThreadId, body: ChatIn, rt: RuntimeDep) -> dict[str, Any]:
        """Send a message; the answer, or the write that waits for approval."""
        return rt.chat(body.text, thread)

    @router.get("/{thread}/pending", response_model=PendingApproval | None)
    def pending(thread: ThreadId, rt: RuntimeDep) -> dict[str, Any] | None:
        """Return the write waiting for approval on this conversation, or null."""
        return rt.pending(thread)

    @router.post("/{thread}/approve", response_model=ChatTurn, dependencies=[Depends(require_key)])
    def approve(thread: ThreadId, rt: RuntimeDep, body: ApproveIn | None = None) -> dict[str, Any]:
        """Approve the waiting write: it runs once; approving again returns the same result."""
        return rt.decide(thread, approve=True, by=(body or ApproveIn()).by)

    @router.post("/{thread}/reject", response_model=ChatTurn, dependencies=[Depends(require_key)])
    def reject(thread: ThreadId, rt: RuntimeDep, body: RejectIn | None = None) -> dict[str, Any]:
        """Reject the waiting write: nothing is written; the agent answers the reason."""
        b = body or RejectIn()
        return rt.decide(thread, approve=False, by=b.by, reason=b.reason)

    app.include_router(router)
