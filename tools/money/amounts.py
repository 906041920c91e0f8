"""How an integer amount in minor units reads for people: "€12.34", "-$0.05", "CHF 7.00".

Amounts are stored and computed as integer minor units with an ISO-4217 code beside them
(`store.models`); this is the one place that turns them into text, for the console, the API's
display fields and the CLI. Rounding happens nowhere else: the integer is exact, only the
decimal point moves.
"""

from __future__ import annotations

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
"""Currencies written with a symbol before the amount; others are written as their code."""
MINOR_DIGITS = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3}
"""Digits after the decimal point where they are not 2 (ISO 4217 minor unit)."""


def format_money(minor: int, currency: str = "EUR") -> str:
    """Return `minor` units of `currency` as text with the currency, e.g. 1234 EUR -> "€12.34".

    Thousands are separated by commas; a negative amount puts the sign first ("-€1.20").
    """
    code = currency.upper()
    digits = MINOR_DIGITS.get(code, 2)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(int(minor)), 10**digits)
    number = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
    symbol = SYMBOLS.get(code)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{code} {number}"
