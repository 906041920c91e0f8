"""Define the broker agent: its prompt and how the system prompt is rendered."""

from __future__ import annotations

from datetime import datetime

from agents.workload import EU_ZONES, KNOWN_ZONES
from prompts import render

NAME = "broker"
BROKER_PROMPT = "broker.system"
DESCRIPTION = (
    "Places GPU workloads: recommends nodes, routes and reroutes work, compares grid zones, "
    "lists nodes, explains decisions and reports incidents."
)
TOPICS = ("recommend", "route", "reroute", "compare", "explain", "nodes", "incident")
"""Request kinds the offline supervisor hands to this agent."""


def broker_system_prompt(*, now: datetime) -> str:
    """Return the broker's system prompt for the injected clock's `now`."""
    return render(
        BROKER_PROMPT,
        now=now.isoformat(),
        zones=", ".join(KNOWN_ZONES),
        eu_zones=", ".join(EU_ZONES),
    )
