"""The supervisor's hand-off tools: `transfer_to_<agent>`, one per registered chat agent."""

from __future__ import annotations

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from tools.agent_tools.registry import ToolKind, is_tool


class Handoff(BaseModel):
    """The task handed to a specialist agent."""

    task: str = Field(description="The operator's request restated in one sentence.")


def transfer_tool(name: str, description: str, topics: tuple[str, ...]) -> StructuredTool:
    """Return the `transfer_to_<name>` tool (never executed; the supervisor routes on it).

    The agent's name and request topics are also kept in `metadata` ("agent", "topics") for
    code that routes without reading the description.
    """

    def _transfer(task: str) -> str:
        return f"transferred to {name}: {task}"

    handoff = StructuredTool.from_function(
        _transfer,
        name=f"transfer_to_{name}",
        args_schema=Handoff,
        description=f"{description} Topics: {', '.join(topics)}.",
    )
    handoff.metadata = {"agent": name, "topics": tuple(topics)}
    return is_tool(ToolKind.READ)(handoff)
