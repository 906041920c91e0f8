"""Thin LangChain adapters the billing clerk adds to the billing tools (both READ).

`find_organization` resolves what operators call an organisation to its id; `unbilled_usage`
tells what the billing pipeline will book for completed workloads not billed yet.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime

from tools.agent_tools.registry import ToolKind, is_tool
from tools.money.directory import find_organizations
from tools.money.unbilled import unbilled_workloads

logger = logging.getLogger(__name__)


@is_tool(ToolKind.READ)
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


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def unbilled_usage(runtime: ToolRuntime[Any, Any], org_id: str | None = None) -> dict[str, Any]:
    """List completed workloads not billed yet and what billing them will charge, in euro cents.

    The billing pipeline books them when it next runs; this tool only reads.

    Args:
        runtime: Injected graph context; never sent to the model.
        org_id: Only this customer organisation, e.g. "acme-ai"; omit for every customer.
    """
    with runtime.context.sessions() as session:
        rows = unbilled_workloads(session=session, org_id=org_id)
    return {
        "org_id": org_id,
        "total_minor": sum(r.gross_minor for r in rows),
        "workloads": [r.model_dump(mode="json") for r in rows],
    }
