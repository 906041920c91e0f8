"""Define the billing clerk agent: its prompt, tools and how the system prompt is rendered."""

from __future__ import annotations

from datetime import datetime

from prompts import render
from tools.agent_tools.billing import billing_tools
from tools.agent_tools.clerk import find_organization, unbilled_usage
from tools.agent_tools.registry import BaseTool

NAME = "billing_clerk"
CLERK_PROMPT = "billing_clerk.system"
DESCRIPTION = (
    "Answers money questions read-only: what we owe a gamer or datacenter, a customer's monthly "
    "statement, the ledger's trial balance, payouts waiting for approval and profitability."
)
TOPICS = ("billing", "invoices", "payouts", "ledger", "profitability")
"""Request kinds the offline supervisor hands to this agent."""


def clerk_tools() -> list[BaseTool]:
    """Return the clerk's tools (all READ): organisation lookup, billing tools, unbilled usage."""
    return [find_organization, *billing_tools(), unbilled_usage]


def clerk_system_prompt(*, now: datetime, org_id: str) -> str:
    """Return the clerk's system prompt for the injected clock's `now` and the acting org."""
    return render(CLERK_PROMPT, now=now.isoformat(), org_id=org_id)
