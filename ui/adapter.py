"""Convert LangChain messages into Gradio chat messages (`{"role", "content", "metadata"}`).

Tool calls become collapsible assistant steps titled with the tool's name; their results are
folded into the same step (status `done`, or a failure title when the tool returned an error).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

MAX_RESULT_CHARS = 1500
TOOL_TITLE = "Used tool"
ERROR_TITLE = "Tool failed"


def text_of(content: str | list[Any]) -> str:
    """Return the text of a message's content (string or list of content blocks)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def _pretty(text: str) -> str:
    try:
        shown = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        shown = text
    if len(shown) > MAX_RESULT_CHARS:
        shown = shown[:MAX_RESULT_CHARS] + f"\n… ({len(shown) - MAX_RESULT_CHARS} more characters)"
    return shown


def _call_step(call: dict[str, Any]) -> dict[str, Any]:
    args = json.dumps(call.get("args", {}), indent=2, ensure_ascii=False)
    return {
        "role": "assistant",
        "content": f"Arguments:\n```json\n{args}\n```",
        "metadata": {
            "title": f"{TOOL_TITLE}: {call['name']}",
            "id": str(call.get("id") or call["name"]),
            "status": "pending",
        },
    }


def to_gradio(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Return Gradio messages for LangChain `messages` (system messages are not shown).

    Args:
        messages: Human, AI and tool messages in conversation order.
    """
    out: list[dict[str, Any]] = []
    steps: dict[str, dict[str, Any]] = {}
    for m in messages:
        if isinstance(m, HumanMessage):
            out.append({"role": "user", "content": text_of(m.content)})
        elif isinstance(m, AIMessage):
            text = text_of(m.content)
            if text.strip():
                out.append({"role": "assistant", "content": text})
            for call in m.tool_calls:
                step = _call_step(dict(call))
                steps[step["metadata"]["id"]] = step
                out.append(step)
        elif isinstance(m, ToolMessage):
            result = _pretty(text_of(m.content))
            failed = m.status == "error"
            known = steps.get(str(m.tool_call_id))
            if known is None:
                step = _call_step({"name": m.name or "tool", "id": m.tool_call_id, "args": {}})
                step["content"] = ""
                out.append(step)
            else:
                step = known
            label = "Error" if failed else "Result"
            step["content"] += f"\n\n{label}:\n```json\n{result}\n```"
            step["metadata"]["status"] = "done"
            if failed:
                step["metadata"]["title"] = f"{ERROR_TITLE}: {m.name or 'tool'}"
    return out


def proposal_markdown(pending: dict[str, Any] | None) -> str:
    """Return the Markdown shown above the Approve / Reject buttons ('' when nothing waits).

    Args:
        pending: The proposal waiting for approval ({tool, args, summary}) or None.
    """
    if not pending:
        return ""
    summary = pending.get("summary") or {}
    facts = [
        f"{label}: **{summary[key]}**"
        for key, label in (
            ("node_id", "node"),
            ("zone", "zone"),
            ("start", "start"),
            ("gpu_count", "GPUs"),
            ("duration_hours", "hours"),
            ("co2_kg", "kg CO2"),
        )
        if summary.get(key) is not None
    ]
    if isinstance(summary.get("cost_minor"), int):
        cost = summary["cost_minor"]
        facts.append(f"cost: **{cost // 100}.{cost % 100:02d} {summary.get('currency', '')}**")
    args = json.dumps(pending.get("args", {}), ensure_ascii=False)
    lines = [
        f"### Approval needed: `{pending.get('tool')}`",
        str(summary.get("text", "")),
        " · ".join(facts),
        f"Arguments: `{args}`",
        "Nothing is written until you approve.",
    ]
    return "\n\n".join(line for line in lines if line)
