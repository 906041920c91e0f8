"""How the money commands of `tgtg` word their figures: the trial balance, kg CO2 avoided."""

from __future__ import annotations

from tools.broker.baseline import BASELINE_NOTE, NEGATIVE_NOTE


def balance_line(tb: int, transactions: int | None = None) -> str:
    """Return the trial balance as a sentence (debits minus credits over all accounts)."""
    count = "" if transactions is None else f" over {transactions} transaction(s)"
    if tb == 0:
        return f"trial balance: debits equal credits{count}; the books balance"
    side = "debits exceed credits" if tb > 0 else "credits exceed debits"
    return f"trial balance: {side} by {abs(tb)} minor units{count}; the books do NOT balance"


def kg(value: float | None) -> str:
    """Return kilograms with 3 decimals ("" when unknown)."""
    return "" if value is None else f"{value:.3f}"


def avoided_note(values: list[float | None]) -> None:
    """Say what kg CO2 avoided is measured against, and what a negative figure means."""
    if any(v is not None for v in values):
        negative = any(v is not None and v < 0 for v in values)
        print(BASELINE_NOTE + (NEGATIVE_NOTE if negative else ""))
