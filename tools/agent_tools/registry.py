"""The tool registry: every agent tool declares READ or WRITE where it is defined.

`@is_tool(ToolKind.WRITE)` stands next to `@tool` and records the kind in the tool's
`metadata["kind"]`, so replays re-execute only writes, metrics count them and graphs gate them.
Graphs and agents take LangChain's tool types from here: only `tools.agent_tools` imports
`langchain_core.tools`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Protocol, TypeVar

from langchain_core.tools import BaseTool, ToolException

__all__ = [
    "BaseTool",
    "ToolException",
    "ToolKind",
    "is_tool",
    "read_tool_names",
    "tool_kind",
    "write_tool_names",
]

ToolT = TypeVar("ToolT", bound=BaseTool)


class ToolKind(StrEnum):
    """Whether a tool only reads state or changes it."""

    READ = "read"
    WRITE = "write"


def is_tool(kind: ToolKind) -> Callable[[ToolT], ToolT]:
    """Mark the tool below as READ or WRITE (use next to `@tool`)."""

    def mark(t: ToolT) -> ToolT:
        t.metadata = {**(t.metadata or {}), "kind": kind}
        return t

    return mark


class _HasMetadata(Protocol):
    name: str
    metadata: dict[str, object] | None


def tool_kind(tool: _HasMetadata) -> ToolKind:
    """Return the kind recorded on `tool`, refusing unmarked tools.

    Raises:
        ValueError: The tool has no `metadata["kind"]`; mark it READ or WRITE.
    """
    kind = (tool.metadata or {}).get("kind")
    if kind not in (ToolKind.READ, ToolKind.WRITE):
        raise ValueError(f"tool {tool.name!r} is not marked READ or WRITE in metadata['kind']")
    return ToolKind(str(kind))


def write_tool_names(tools: Iterable[_HasMetadata]) -> frozenset[str]:
    """Return the names of the WRITE tools among `tools`."""
    return frozenset(t.name for t in tools if tool_kind(t) is ToolKind.WRITE)


def read_tool_names(tools: Iterable[_HasMetadata]) -> frozenset[str]:
    """Return the names of the READ tools among `tools`."""
    return frozenset(t.name for t in tools if tool_kind(t) is ToolKind.READ)
