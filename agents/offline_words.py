"""Normalise operator text for the offline parser: numbers in words and unit phrases.

The parser works on the output of `normalise`: lower case, number words turned into digits
(by `text_to_num.alpha2digit`), fixed phrases ("half a day", "a pair of") turned into plain
quantities.
"""

from __future__ import annotations

import re

from text_to_num import alpha2digit

# Phrases replaced before numbers are read (order matters: longest first).
_PHRASES: tuple[tuple[str, str], ...] = (
    (r"\ban? hour and a half\b", "1.5 hours"),
    (r"\ba day and a half\b", "36 hours"),
    (r"\bhalf an hour\b", "0.5 hours"),
    (r"\bhalf a day\b", "12 hours"),
    (r"\ba half[- ]day\b", "12 hours"),
    (r"\bhalf[- ]day\b", "12 hours"),
    (r"\bfull day\b", "24 hours"),
    (r"\ba couple (?:of )?", "2 "),
    (r"\ba pair of ", "2 "),
    (r"\b(?:a )?dozen ", "12 "),
    (r"\b(?:an? )?single ", "1 "),
    (r"\bfortnight\b", "14 days"),
)
_SMALL = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
_TEEN_TENS = "thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty"
_TEEN_TENS += "|fifty|sixty|seventy|eighty|ninety|hundred"
# "two-GPU", "sixteen-hour": split a number word from the word it qualifies (keeps "twenty-four").
_NUMBER_HYPHEN = re.compile(
    rf"\b({_SMALL}|{_TEEN_TENS})-(?!(?:one|two|three|four|five|six|seven|eight|nine)\b)(?=[a-z])"
)
_UNIT_AFTER_A = re.compile(
    r"\b(?:an?|one)\s+(?=(?:hour|hr|day|week|minute|gpu|card|h100|h200|a100|"
    r"l40s|l4|a10g?|v100|t4|rtx|mi300x|b200|4090\b|3090\b))"
)
_AND_A_HALF = re.compile(r"\b(\d+)\s+and\s+a\s+half\s+(hours?|days?)\b")


def normalise(text: str) -> str:
    """Return `text` lower-cased with number words and fixed quantity phrases as digits.

    Args:
        text: Operator text as typed.
    """
    out = text.lower().replace("\u00d7", "x").replace("\u2013", "-").replace("\u2014", "-")
    out = out.replace("\u2019", "'").replace("\u2212", "-")
    for pattern, replacement in _PHRASES:
        out = re.sub(pattern, replacement, out)
    out = _NUMBER_HYPHEN.sub(r"\1 ", out)
    out = alpha2digit(out, "en", threshold=0)
    out = _AND_A_HALF.sub(lambda m: f"{m.group(1)}.5 {m.group(2)}", out)
    out = _UNIT_AFTER_A.sub("1 ", out)
    return re.sub(r"\s+", " ", out).strip()
