"""Tools: deterministic domain functions and their thin LangChain adapters.

Registry: every adapter is marked READ or WRITE in its `metadata["kind"]` (see `tool_kind`) so
replays re-execute only writes, metrics count them, and graphs gate them. An agent that joins
later (e.g. billing) marks its own tools the same way; nothing here needs editing.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol


class ToolKind(StrEnum):
    """Whether a tool only reads state or changes it."""

    READ = "read"
    WRITE = "write"


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
