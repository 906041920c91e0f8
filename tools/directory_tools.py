"""Thin LangChain adapter over the organisation directory (READ)."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime

from tools import ToolKind
from tools.directory import find_organizations

logger = logging.getLogger(__name__)


@tool(parse_docstring=True, error_on_invalid_docstring=True)
def find_organization(
    name: str, runtime: ToolRuntime[Any, Any], kind: str | None = None
) -> dict[str, Any]:
    """Look up organisation ids by name, e.g. "Jonas" -> "gamer-jonas", "Acme AI" -> "acme-ai".

    Args:
        name: What the operator called the organisation (a name, part of it, or its id).
        runtime: Injected graph context; never sent to the model.
        kind: Only organisations of this kind: "enterprise", "datacenter" or "gamer".
    """
    with runtime.context.sessions() as session:
        matches = find_organizations(session=session, query=name, kind=kind)
    return {"name": name, "matches": [m.model_dump(mode="json") for m in matches]}


find_organization.metadata = {"kind": ToolKind.READ}
