"""Read what real models answer: tool calls written into the text become tool calls.

Small instruct models served without a tool-call parser (or with one that misses their format)
often answer `{"name": "recommend_placement", "arguments": {...}}` as plain text, sometimes in a
```json fence or `<tool_call>` / `<tools>` tags, sometimes several on separate lines. Left as
text, the operator sees JSON and nothing runs. `recover_tool_calls` turns such an answer into
the tool calls it spells out, so they take the normal path: argument validation, and for a WRITE
tool the operator's approval. Nothing is recovered from an answer that mixes prose with JSON:
prose is an answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.messages.tool import ToolCall

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_TAGS = re.compile(r"</?(?:tool_call|tools|function_call)>")


def _objects(text: str) -> list[Any] | None:
    """Return the JSON values `text` consists of (one, a list, or one per line), else None."""
    body = _TAGS.sub("\n", text).strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except ValueError:
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        try:
            return [json.loads(line) for line in lines] if len(lines) > 1 else None
        except ValueError:
            return None
    return value if isinstance(value, list) else [value]


def _call(obj: Any, tool_names: Collection[str]) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters"))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if args is None and obj["name"] in tool_names:
        args = {}
    if not isinstance(args, dict):
        return None
    return obj["name"], args


def recover_tool_calls(reply: AIMessage, tool_names: Collection[str]) -> AIMessage:
    """Return `reply` with the tool calls its text spells out, or `reply` unchanged.

    A call naming a tool the model was not given is kept too: the tool node answers it with a
    correctable error instead of the operator reading raw JSON.
    """
    if reply.tool_calls or not isinstance(reply.content, str) or not reply.content.strip():
        return reply
    objects = _objects(reply.content)
    if not objects:
        return reply
    calls = [_call(obj, tool_names) for obj in objects]
    if any(c is None for c in calls):
        return reply
    digest = hashlib.sha256(reply.content.encode()).hexdigest()[:12]
    tool_calls = [
        ToolCall(name=name, args=args, id=f"call_text_{digest}_{i}", type="tool_call")
        for i, (name, args) in enumerate(c for c in calls if c is not None)
    ]
    return reply.model_copy(update={"content": "", "tool_calls": tool_calls})
