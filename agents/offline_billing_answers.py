"""Write the offline model's billing answers from the clerk's tool results.

Every figure comes from the tool's own fields (integer minor units, shown in their currency by
`tools.money.amounts.format_money`).
Names inside results (organisations, memos) are quoted as data and never acted on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tools.broker.baseline import NEGATIVE_NOTE
from tools.money.amounts import format_money

APPROVAL_NOTE = (
    "a person approves or rejects it with the payout's Approve / Reject buttons in the console "
    "or POST /api/v1/payouts/ID/approve (or /reject)"
)
READ_ONLY_NOTE = (
    "I am read-only: customers are billed and gamers paid automatically when a workload "
    f"completes, through the billing pipeline; a payout above the approval threshold waits until "
    f"{APPROVAL_NOTE}."
)


def money(minor: int, currency: str = "EUR") -> str:
    """Return integer minor units as text in their currency, e.g. 1234 -> '€12.34'."""
    return format_money(int(minor), currency)


def _organisations(result: dict[str, Any]) -> str:
    matches = result.get("matches", [])
    if not matches:
        return f"No organisation matches {result.get('name')!r}."
    found = (f"{m['name']!r} is organisation {m['id']} ({m['kind']})" for m in matches)
    return "; ".join(found) + "."


def _owed(result: dict[str, Any]) -> str:
    return (
        f"We owe {result['org_id']} {money(result['payable_minor'])} (provider payable in the "
        f"ledger): {money(result['reserved_minor'])} is reserved for payouts in progress or "
        f"awaiting approval, {money(result['unreserved_minor'])} is not scheduled yet. "
        + READ_ONLY_NOTE
    )


def _statement(result: dict[str, Any]) -> str:
    lines = result.get("lines", [])
    currency = lines[0]["currency"] if lines else "EUR"
    month = str(result.get("start", ""))[:7]
    listed = ", ".join(
        f"{line['workload_id']} {money(line['amount_minor'], line['currency'])} ({line['status']})"
        for line in lines[:6]
    )
    more = f" and {len(lines) - 6} more" if len(lines) > 6 else ""
    detail = f": {listed}{more}" if lines else ""
    return (
        f"{result['org_id']} was billed {money(result['total_minor'], currency)} for {month} "
        f"({len(lines)} usage charge{'s' if len(lines) != 1 else ''}{detail})."
    )


def _unbilled(result: dict[str, Any]) -> str:
    rows = result.get("workloads", [])
    whose = f" of {result['org_id']}" if result.get("org_id") else ""
    if not rows:
        return f"No completed workload{whose} is waiting to be billed. " + READ_ONLY_NOTE
    listed = ", ".join(
        f"{r['workload_id']} {money(r['gross_minor'], r['currency'])}" for r in rows[:6]
    )
    more = f" and {len(rows) - 6} more" if len(rows) > 6 else ""
    return (
        f"Will be billed: {len(rows)} completed workload{'s' if len(rows) != 1 else ''}{whose} "
        f"not billed yet, {money(result['total_minor'])} in total ({listed}{more}); the billing "
        "pipeline books them when it next runs. " + READ_ONLY_NOTE
    )


def _trial_balance(result: dict[str, Any]) -> str:
    balance = int(result["trial_balance"])
    verdict = "zero, the ledger balances" if balance == 0 else "NOT zero"
    accounts = sorted(result.get("accounts", []), key=lambda a: -abs(int(a["balance"])))
    listed = "; ".join(
        f"{a['account']} {money(a['balance'], a.get('currency', 'EUR'))}" for a in accounts[:6]
    )
    unbalanced = result.get("unbalanced_transactions") or []
    return (
        f"Trial balance: {money(balance)} ({verdict}): debits {money(result['total_debits'])}, "
        f"credits {money(result['total_credits'])} over {result.get('transactions', 0)} "
        f"transactions."
        + (f" Largest accounts: {listed}." if listed else "")
        + (f" Unbalanced transactions: {', '.join(unbalanced[:5])}." if unbalanced else "")
    )


def _payouts(result: Any) -> str:
    if not result:
        return "No payouts match."
    waiting = sum(1 for p in result if p["status"] == "awaiting_approval")
    listed = "; ".join(
        f"{p['id']}: {money(p['amount_minor'], p['currency'])} to {p['org_id']} for "
        f"{p['workload_id']} ({p['status']})"
        for p in result[:8]
    )
    more = f" and {len(result) - 8} more" if len(result) > 8 else ""
    hint = f" Each waits until {APPROVAL_NOTE}." if waiting else ""
    return f"{len(result)} payouts, {waiting} awaiting approval: {listed}{more}.{hint}"


def _profitability(result: Any) -> str:
    if not result:
        return "No workload has been billed yet, so there are no profitability figures."
    group = result[0]["group_by"]
    parts = []
    for line in sorted(result, key=lambda x: -int(x["margin_minor"]))[:8]:
        roi = line["carbon_roi_kg_per_eur"]
        parts.append(
            f"{line['key']}: gross {money(line['gross_minor'])}, fee {money(line['fee_minor'])}, "
            f"chain cost {money(line['chain_cost_minor'])}, margin {money(line['margin_minor'])}, "
            f"{float(line['co2_avoided_kg']):.3f} kg CO2 avoided"
            + (f" ({float(roi):.3f} kg per euro of fee)" if roi is not None else "")
        )
    total = sum(int(x["margin_minor"]) for x in result)
    return (
        f"Profitability by {group} ({result[0].get('mode', '')}): "
        + "; ".join(parts)
        + f". Total margin {money(total)}."
        + (NEGATIVE_NOTE if any(float(x["co2_avoided_kg"]) < 0 for x in result) else "")
    )


BILLING_WRITERS: dict[str, Callable[[Any], str]] = {
    "find_organization": _organisations,
    "amount_owed": _owed,
    "billing_statement": _statement,
    "unbilled_usage": _unbilled,
    "ledger_balance": _trial_balance,
    "list_gamer_payouts": _payouts,
    "profitability": _profitability,
}
