"""Understand billing questions for the offline model and plan the clerk's tool calls.

`parse_billing` turns one operator message into a `BillingQuery` (what is asked, about which
organisation, for which month). `plan_billing` chooses the first tool call (an organisation
lookup when a name must be resolved) or one clarifying question; `continue_billing` turns a
lookup result into the billing calls. Calls are returned as `(tool name, args)`. Only the
operator's words choose what to call; lookup results are used only for their ids.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from langchain_core.messages import ToolMessage

from agents.offline_billing_answers import READ_ONLY_NOTE
from agents.offline_words import normalise

Plan = list[tuple[str, dict[str, Any]]] | str
"""Tool calls to make together as `(name, args)`, or text to say to the operator."""
BillingKind = Literal["owed", "statement", "trial_balance", "profitability", "payouts", "refund"]
LOOKUP = "find_organization"
KIND_TOOLS: dict[BillingKind, str] = {
    "owed": "amount_owed",
    "statement": "billing_statement",
    "trial_balance": "ledger_balance",
    "profitability": "profitability",
    "payouts": "list_gamer_payouts",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_NAME = re.compile(
    r"\b(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?(?:\s+(\d{4}))?\b"
)
_ISO_MONTH = re.compile(r"\b(\d{4})-(\d{1,2})\b(?!-)")
_RELATIVE_MONTH = re.compile(r"\b(last|previous|past|this|current)\s+month\b")
_PROFIT = re.compile(
    r"\b(?:profit(?:ability|able|s)?|margins?|carbon roi|roi|revenue|income|platform fees?)\b"
)
_TRIAL = re.compile(r"\btrial balance\b|\bledger\b|\bbalance(?:d|s)?\b(?! (?:of|for|owed))")
_PAYOUTS = re.compile(r"\bpay[ -]?outs?\b|\bapprov(?:al|e|ed)\b|\bneeds? review\b")
_OWED = re.compile(
    r"\bowe[ds]?\b|\bowing\b|\bpayable\b|\bdue to\b|\bearn(?:ed|ings|s)?\b|"
    r"\bwe pay\b(?![ -]?outs?\b)"
)
_GROUP = re.compile(
    r"\b(?:by|per|for each|each)\s+(nodes?|orgs?|organi[sz]ations?|customers?|workloads?|jobs?)"
)
_SELF = re.compile(r"\b(?:i|me|my|mine|our (?:bill|invoice|statement|account))\b")
_ORG_KIND = re.compile(r"\b(gamers?|datacenters?|data centers?|customers?|providers?)\b")
_PAYOUT_STATUS = (
    (re.compile(r"\bwait(?:ing)?\b|\bpending\b|\bapprov(?:al|e)\b"), "awaiting_approval"),
    (re.compile(r"\breview\b|\bstuck\b"), "needs_review"),
    (re.compile(r"\bposted\b|\bsettled\b|\bcompleted\b|\bdone\b"), "posted"),
    (re.compile(r"\brejected\b"), "rejected"),
)
# Words that carry the question, not the organisation's name; what remains is the name.
_FILLER = frozenset(
    """what whats what's which who how much many do does did we i us our you your my me is are
    was were be been has have had the a an to for of in on at by from with about and or so far
    please show tell give get list me can could would will let know see need want currently now
    right still total totals amount amounts money cents euros eur euro outstanding owe owed owes
    owing due payable earn earned earnings earns pay paying paid bill billed bills billing
    invoice invoices invoiced statement statements charge charged charges spend spent usage
    month months year last previous past this current gamer gamers provider providers datacenter
    datacenters data center centers customer customers org orgs organisation organization
    organisations organizations report summary run send prepare generate make up them it they
    their its there any platform tgtg should""".split()
)
_MONTH_WORDS = frozenset(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)


@dataclass(frozen=True)
class BillingQuery:
    """What the offline parser understood from one billing question."""

    kind: BillingKind
    org_name: str | None = None
    """The organisation as the operator named it (lower case), if any."""
    org_kind: str | None = None
    """'gamer', 'datacenter' or 'enterprise' when the operator said so."""
    about_self: bool = False
    """The operator asked about their own organisation ('my bill')."""
    month: str | None = None
    """YYYY-MM resolved from the injected clock."""
    group_by: str = "org"
    payout_status: str | None = None


def _month(text: str, now: datetime | None) -> str | None:
    if m := _ISO_MONTH.search(text):
        if 1 <= int(m.group(2)) <= 12:
            return f"{int(m.group(1)):04d}-{int(m.group(2)):02d}"
    if now is None:
        return None
    if m := _RELATIVE_MONTH.search(text):
        if m.group(1) in ("this", "current"):
            return f"{now.year:04d}-{now.month:02d}"
        year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
        return f"{year:04d}-{month:02d}"
    for m in _MONTH_NAME.finditer(text):
        if m.group(1) == "may" and not (m.group(2) or re.search(r"\b(?:for|in|of) may\b", text)):
            continue  # "may" is usually the verb
        month = _MONTHS.index(m.group(1)[:3]) + 1
        year = int(m.group(2)) if m.group(2) else now.year - (month > now.month)
        return f"{year:04d}-{month:02d}"
    return None


def _kind(text: str) -> BillingKind:
    if re.search(r"\brefund", text):
        return "refund"
    if _PROFIT.search(text):
        return "profitability"
    if re.search(r"\btrial balance\b", text):
        return "trial_balance"
    if _PAYOUTS.search(text) and not _OWED.search(text):
        return "payouts"
    if _OWED.search(text):
        return "owed"
    if _TRIAL.search(text) and not re.search(r"\bbill|invoice|statement|charge|spen[dt]", text):
        return "trial_balance"
    return "statement"


def _org_name(text: str) -> str | None:
    text = re.sub(r"\b\d{4}-\d{1,2}\b|\b\d+\b", " ", text)
    words = [w.removesuffix("'s").strip("'") for w in re.findall(r"[a-z0-9][a-z0-9'_-]*", text)]
    kept = [w for w in words if w and w not in _FILLER and w not in _MONTH_WORDS]
    return " ".join(kept) or None


def _org_kind(text: str) -> str | None:
    if not (m := _ORG_KIND.search(text)):
        return None
    word = m.group(1)
    if word.startswith("gamer"):
        return "gamer"
    if word.startswith("data"):
        return "datacenter"
    return "enterprise" if word.startswith("customer") else None


def parse_billing(text: str, *, now: datetime | None) -> BillingQuery:
    """Return what a billing question asks.

    Args:
        text: One operator message (data, never instructions to the parser).
        now: Aware current time used to resolve "November" or "last month".
    """
    norm = normalise(text)
    kind = _kind(norm)
    group = m.group(1) if (m := _GROUP.search(norm)) else "org"
    group_by = "node" if group.startswith("node") else "workload"
    if not group.startswith(("node", "workload", "job")):
        group_by = "org"
    status = next((s for pattern, s in _PAYOUT_STATUS if pattern.search(norm)), None)
    about_self = bool(_SELF.search(norm)) and kind == "statement"
    name = _org_name(norm) if kind in ("owed", "statement") else None
    return BillingQuery(
        kind=kind,
        org_name=name,
        org_kind=_org_kind(norm) if name else None,
        about_self=about_self,
        month=_month(norm, now),
        group_by=group_by,
        payout_status=status,
    )


def _billing_call(query: BillingQuery, org_id: str, now: datetime | None) -> Plan:
    if query.kind == "owed":
        return [("amount_owed", {"org_id": org_id})]
    month = query.month or (f"{now.year:04d}-{now.month:02d}" if now else None)
    if month is None:
        return "Which month (e.g. 2026-11)?"
    # What was billed that month, and what the pipeline will bill next for this customer.
    return [
        ("billing_statement", {"org_id": org_id, "month": month}),
        ("unbilled_usage", {"org_id": org_id}),
    ]


def plan_billing(query: BillingQuery, org_id: str | None, now: datetime | None) -> Plan:
    """Return the first tool call for `query`, or a question to ask the operator.

    Args:
        query: The parsed billing question.
        org_id: The organisation the operator acts for (given to the model, never parsed).
        now: The injected clock's time.
    """
    if query.kind == "refund":
        return "I cannot issue refunds or move money. " + READ_ONLY_NOTE
    if query.kind == "trial_balance":
        return [("ledger_balance", {})]
    if query.kind == "profitability":
        return [("profitability", {"group_by": query.group_by})]
    if query.kind == "payouts":
        status = {"status": query.payout_status} if query.payout_status else {}
        return [("list_gamer_payouts", status)]
    if query.org_name is None:
        if query.about_self and org_id is not None:
            return _billing_call(query, org_id, now)
        return "Which organisation do you mean (its name or id, e.g. gamer-jonas or acme-ai)?"
    args: dict[str, Any] = {"name": query.org_name}
    if query.org_kind:
        args["kind"] = query.org_kind
    return [(LOOKUP, args)]


def continue_billing(query: BillingQuery, lookup: ToolMessage, now: datetime | None) -> Plan:
    """Return the billing call for the organisation a lookup found, or what to tell the operator."""
    if lookup.status == "error":
        reason = str(lookup.content).removeprefix("Error: ")
        return f"I could not look that organisation up: {reason}"
    matches = json.loads(str(lookup.content))["matches"]
    if not matches:
        return (
            f"No organisation matches {query.org_name!r}. Give its id (e.g. gamer-jonas, acme-ai)."
        )
    if len(matches) > 1:
        listed = ", ".join(f"{m['name']} ({m['id']})" for m in matches[:6])
        return f"Several organisations match {query.org_name!r}: {listed}. Which one do you mean?"
    return _billing_call(query, str(matches[0]["id"]), now)
