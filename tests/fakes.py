"""Test doubles: a strict scripted chat model (see tests/README rules; not an installed package)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
