"""Thin LangChain adapters for a billing clerk agent: what is owed, billed, paid and earned.

All READ: moving money stays in the billing graph and its approval step, never in a model's
tool call. Each adapter pulls the session factory from `runtime.context` and returns JSON.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import ToolRuntime
from sqlalchemy.orm import Session, sessionmaker

from store import ledger, repo
from tools.agent_tools.registry import ToolKind, is_tool
from tools.errors import InvalidInputError, NotFoundError
from tools.money.payouts import list_payouts, owed_to
from tools.money.profitability import is_group_by, profitability_report
from tools.money.usage import usage_statement

logger = logging.getLogger(__name__)

DEFAULT_LAMPORTS_PER_MINOR = 50_000


class SessionsContext(Protocol):
    """What the billing tools need from the graph's runtime context: the session factory."""

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory of the store."""
        ...


def _sessions(runtime: ToolRuntime[SessionsContext, Any]) -> sessionmaker[Session]:
    return runtime.context.sessions


def _month(month: str) -> tuple[datetime, datetime]:
    try:
        year, mon = (int(p) for p in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInputError(f"month {month!r}: use YYYY-MM, e.g. '2023-11'") from exc
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def amount_owed(org_id: str, runtime: ToolRuntime[Any, Any]) -> dict[str, Any]:
    """Tell what the platform owes a provider (a gamer or datacenter), in euro cents.

    Args:
        runtime: Injected graph context; never sent to the model.
        org_id: The provider organisation id, e.g. "gamer-giulia".
    """
    with _sessions(runtime)() as session:
        if repo.get_organization(session=session, org_id=org_id) is None:
            raise NotFoundError(f"organization {org_id!r} does not exist")
        return {"org_id": org_id, **owed_to(session=session, org_id=org_id)}


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def billing_statement(org_id: str, month: str, runtime: ToolRuntime[Any, Any]) -> dict[str, Any]:
    """List what a customer was billed in one calendar month (UTC), in euro cents.

    Args:
        runtime: Injected graph context; never sent to the model.
        org_id: The customer organisation id, e.g. "acme-ai".
        month: The month as YYYY-MM, e.g. "2023-11".
    """
    start, end = _month(month)
    with _sessions(runtime)() as session:
        if repo.get_organization(session=session, org_id=org_id) is None:
            raise NotFoundError(f"organization {org_id!r} does not exist")
        return usage_statement(session=session, org_id=org_id, start=start, end=end).model_dump(
            mode="json"
        )


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def ledger_balance(runtime: ToolRuntime[Any, Any]) -> dict[str, Any]:
    """Return the ledger's trial balance (zero when sound) and every account's balance.

    Args:
        runtime: Injected graph context; never sent to the model.
    """
    with _sessions(runtime)() as session:
        return dict(ledger.trial_balance(session=session))


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def list_gamer_payouts(
    runtime: ToolRuntime[Any, Any], status: str | None = None
) -> list[dict[str, Any]]:
    """List Solana payouts to gamers, newest first.

    Args:
        runtime: Injected graph context; never sent to the model.
        status: Only this status: awaiting_approval, approved, signed, sent, posted, voided,
            needs_review or rejected.
    """
    with _sessions(runtime)() as session:
        return [p.model_dump(mode="json") for p in list_payouts(session=session, status=status)]


@is_tool(ToolKind.READ)
@tool(parse_docstring=True, error_on_invalid_docstring=True)
def profitability(runtime: ToolRuntime[Any, Any], group_by: str = "org") -> list[dict[str, Any]]:
    """Report fee revenue, chain costs, margin and carbon ROI (kg CO2 avoided per euro of fee).

    kg CO2 avoided is each workload's carbon-receipt figure: against the cheapest eligible node
    of its first routing decision, at the actual grid intensity (negative: it emitted more).

    Args:
        runtime: Injected graph context; never sent to the model.
        group_by: One of "workload", "org" or "node".
    """
    if not is_group_by(group_by):
        raise InvalidInputError(f"group_by {group_by!r}: use 'workload', 'org' or 'node'")
    with _sessions(runtime)() as session:
        lines = profitability_report(
            session=session,
            group_by=group_by,
            lamports_per_minor=DEFAULT_LAMPORTS_PER_MINOR,
        )
    return [line.model_dump(mode="json") for line in lines]


def billing_tools() -> list[BaseTool]:
    """Return the billing clerk's tools (all READ)."""
    return [amount_owed, billing_statement, ledger_balance, list_gamer_payouts, profitability]
