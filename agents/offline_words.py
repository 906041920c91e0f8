"""Normalise operator text for the offline parser: numbers in words, unit phrases, zone names.

The parser works on the output of `normalise`: lower case, number words turned into digits,
fixed phrases ("half a day", "an hour and a half") turned into plain quantities.
"""

from __future__ import annotations

import re

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "single": 1,
    "dozen": 12,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, "hundred"], key=len, reverse=True))
_NUMBER_RUN = re.compile(
    rf"\b(?:{_NUMBER_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_NUMBER_WORD}))*\b", re.IGNORECASE
)

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
    (r"\ba dozen ", "12 "),
    (r"\bfortnight\b", "14 days"),
)
_UNIT_AFTER_A = re.compile(
    r"\b(?:an?|one)\s+(?=(?:single\s+)?(?:hour|hr|day|week|minute|gpu|card|h100|h200|a100|"
    r"l40s|l4|a10g?|v100|t4|rtx|mi300x|b200|4090\b|3090\b))"
)
_AND_A_HALF = re.compile(r"\b(\d+)\s+and\s+a\s+half\s+(hours?|days?)\b")


def _words_to_number(run: str) -> str:
    total = 0
    current = 0
    for word in re.split(r"[\s-]+", run.lower()):
        if word == "and" or not word:
            continue
        if word == "hundred":
            current = max(current, 1) * 100
        elif word in _TENS:
            current += _TENS[word]
        else:
            current += _UNITS[word]
    total += current
    return str(total)


def normalise(text: str) -> str:
    """Return `text` lower-cased with number words and fixed quantity phrases as digits.

    Args:
        text: Operator text as typed.
    """
    out = text.lower().replace("\u00d7", "x").replace("\u2013", "-").replace("\u2014", "-")
    out = out.replace("\u2019", "'")
    for pattern, replacement in _PHRASES:
        out = re.sub(pattern, replacement, out)
    out = _NUMBER_RUN.sub(lambda m: _words_to_number(m.group(0)), out)
    out = _AND_A_HALF.sub(lambda m: f"{m.group(1)}.5 {m.group(2)}", out)
    out = _UNIT_AFTER_A.sub("1 ", out)
    return re.sub(r"\s+", " ", out).strip()


# Zone names and synonyms; two-letter codes are matched case-sensitively on the original text
# because "it", "be", "es" and "de" are ordinary words too.
ZONE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "FR": ("france", "french"),
    "DE": ("germany", "german"),
    "ES": ("spain", "spanish"),
    "PT": ("portugal", "portuguese"),
    "NL": ("netherlands", "the netherlands", "holland", "dutch"),
    "BE": ("belgium", "belgian"),
    "IT": ("italy", "italian"),
    "GB": ("great britain", "britain", "british", "united kingdom", "uk", "england", "gb"),
    "US-CAL-CISO": ("california", "caiso", "us-cal-ciso", "cal-iso"),
    "US-NY-NYIS": ("new york", "nyiso", "us-ny-nyis"),
    "US-TEX-ERCO": ("texas", "ercot", "us-tex-erco"),
}
_ZONE_NAME = re.compile(
    r"\b("
    + "|".join(sorted((s for ss in ZONE_SYNONYMS.values() for s in ss), key=len, reverse=True))
    + r")\b"
)
_ZONE_CODE = re.compile(r"\b(FR|DE|ES|PT|NL|BE|IT|GB|UK)\b")
_NAME_TO_ZONE = {s: zone for zone, ss in ZONE_SYNONYMS.items() for s in ss}


def zone_mentions(normalised: str, original: str) -> list[tuple[int, int, str]]:
    """Return `(start, end, zone)` for each zone named in the text, in order of appearance.

    Positions refer to `normalised`; code matches found only in `original` are placed at the
    same relative offset, which is good enough to decide which phrase a zone belongs to.
    """
    found = [
        (m.start(), m.end(), _NAME_TO_ZONE[m.group(1)]) for m in _ZONE_NAME.finditer(normalised)
    ]
    scale = len(normalised) / max(len(original), 1)
    for m in _ZONE_CODE.finditer(original):
        zone = "GB" if m.group(1) == "UK" else m.group(1)
        pos = int(m.start() * scale)
        if not any(abs(p - pos) < 4 and z == zone for p, _e, z in found):
            found.append((pos, pos + 2, zone))
    return sorted(found)
