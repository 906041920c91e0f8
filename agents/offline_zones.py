"""Read zones from operator text: zone names, region aliases, negation and preference.

`zone_mentions` finds zones and regions ("EU", "Europe", "Iberia", "the US", "America") with
their positions; `parse_zones` decides for each mention whether it is allowed, denied or only
preferred, from the phrase that governs it. Negation is read conservatively: a mention under
a negation ("not in", "anywhere but", "outside", "no US zones", "EU minus Germany", "Germany is
off limits") or continuing a negated list is only ever denied, never allowed.
"""

from __future__ import annotations

import re

from agents.workload import EU_ZONES
from tools.grid.zones import REGIONS as DOMAIN_REGIONS

US_ZONES: tuple[str, ...] = DOMAIN_REGIONS["US"]

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
REGIONS: dict[str, tuple[str, ...]] = {
    "EU": EU_ZONES,
    "US": US_ZONES,
    "IBERIA": ("ES", "PT"),
    "BENELUX": ("BE", "NL"),
}
"""Region aliases and the zones they stand for ("Europe" is read as the EU)."""
REGION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "EU": ("eu", "e.u.", "european union", "europe", "european", "eu-only"),
    "US": ("usa", "u.s.a.", "u.s.", "united states", "north america", "america", "american"),
    "IBERIA": ("iberia", "iberian peninsula", "iberian"),
    "BENELUX": ("benelux",),
}
_ZONE_NAME = re.compile(
    r"(?<![\w-])("
    + "|".join(sorted((re.escape(s) for ss in ZONE_SYNONYMS.values() for s in ss), key=len)[::-1])
    + r")(?![\w-])"
)
_REGION_NAME = re.compile(
    r"(?<![\w.])("
    + "|".join(sorted((re.escape(s) for ss in REGION_SYNONYMS.values() for s in ss), key=len)[::-1])
    + r")(?![\w-])"
)
# Lower-case "us" is a pronoun; it is the region only in these phrases.
_US_WORD = re.compile(
    r"(?:(?<=\bthe )|(?<=\bin )|(?<=\bno )|(?<=\bnon-))us(?![\w-])|"
    r"\bus(?=[ -](?:only|zones?|grids?|regions?|nodes?|data ?cent\w*|sites?|based)\b)"
)
_ZONE_CODE = re.compile(r"\b(FR|DE|ES|PT|NL|BE|IT|GB|UK|US|USA|EU)\b(?!-)")
_NAME_TO_ZONES: dict[str, tuple[str, ...]] = {
    s: (zone,) for zone, ss in ZONE_SYNONYMS.items() for s in ss
} | {s: REGIONS[region] for region, ss in REGION_SYNONYMS.items() for s in ss}


def zone_mentions(normalised: str, original: str) -> list[tuple[int, int, tuple[str, ...]]]:
    """Return `(start, end, zones)` for each zone or region named in the text, in order.

    Positions refer to `normalised`; code matches found only in `original` are placed at the
    same relative offset, which is good enough to decide which phrase a zone belongs to.
    """
    found = [
        (m.start(), m.end(), _NAME_TO_ZONES[m.group(1)])
        for pattern in (_ZONE_NAME, _REGION_NAME)
        for m in pattern.finditer(normalised)
    ]
    found += [(m.start(), m.end(), US_ZONES) for m in _US_WORD.finditer(normalised)]
    scale = len(normalised) / max(len(original), 1)
    for m in _ZONE_CODE.finditer(original):
        code = {"UK": "GB", "USA": "US"}.get(m.group(1), m.group(1))
        zones = REGIONS.get(code, (code,))
        pos = int(m.start() * scale)
        if not any(abs(p - pos) < 6 and z == zones for p, _e, z in found):
            found.append((pos, pos + len(m.group(1)), zones))
    return sorted(found)


_DENY_LEAD = re.compile(
    r"(?:\b(?:not(?: in| on| using)?|avoid(?:ing)?|except(?: for)?|excluding|exclude|no|"
    r"never(?: in)?|anywhere but|anything but|all but|any zone but|anywhere except|"
    r"outside(?: of)?|but not|nor|without|out of|away from|other than|apart from|minus|less|"
    r"ban|block|steer clear of|(?:nothing|nowhere|none) (?:in|on)|"
    r"no (?:data|jobs?|workloads?|work|gpus?|nodes?|compute) (?:in|on|from)|"
    r"(?:must|should|can|may|could)(?:n't|'t| not|not) (?:be|run|go|land|use)(?: in| on| to)?|"
    r"(?:don't|do not|never) (?:use|run (?:it )?in|put (?:it )?in|go to|place (?:it )?in|"
    r"send (?:it )?to|want (?:it |them |anything |this )?(?:to (?:run|be|go) )?(?:in|on)))"
    r"\s+(?:the\s+)?|\bnon-)$"
)
_MINUS_LEAD = re.compile(r"(?:^|\s)-\s*$")
"""'EU - DE': a minus sign after a region takes zones out of it."""
_DENY_TRAIL = re.compile(
    r"^(?:'s)?\s*(?:zones?\s+)?(?:is |are )?(?:excluded|off[- ]limits|not allowed|forbidden|banned|"
    r"is out\b|are out\b|(?:is|are) a no[- ]go|(?:is|are) not an option)"
)
_PREFER_LEAD = re.compile(
    r"(?:prefer(?:ably|red|ring)?|ideally|if possible|would like|nice to have|favou?r(?:ing)?|"
    r"maybe|perhaps|possibly|"
    r"lean(?:ing)? towards?)\s+(?:to be\s+)?(?:run\s+)?(?:in\s+)?(?:the\s+)?$"
)
_PREFER_TRAIL = re.compile(
    r"^(?:'s)?\s*(?:zones?\s+)?(?:(?:is |are |would be )?(?:preferred|preferable|ideal|nice)\b|"
    r"if possible|preferably|ideally|for preference|maybe|perhaps|possibly)"
)
_ALLOW_LEAD = re.compile(
    r"\b(?:only|must be in|has to be in|restricted to|(?:stays?|remains?|staying|kept|"
    r"keep (?:it|them|everything|data|the data)) (?:in|within|inside))\s+(?:the\s+)?$"
)
_KEEP_INSIDE = re.compile(
    r"\b(?:nothing|not|never|nowhere|no)\b[\w\s']{0,20}?\b(?:outside|beyond|leaves?|out of)\s+"
    r"(?:of\s+)?(?:the\s+)?$"
)
"""A negated exclusion keeps work inside: "nothing outside the EU", "must never leave the EU"."""
_ALLOW_TRAIL = re.compile(
    r"^(?:'s)?\s*(?:zones?\s+)?(?:-?only\b|(?:is|are) (?:fine|ok|okay|a must)\b)"
)
"""An explicitly allowed mention ("EU only", "France is fine") ends a negated or soft list."""
_NEGATION_CUE = re.compile(
    r"\b(?:not|no|never|don't|dont|cannot|can't|won't|mustn't|shouldn't|avoid\w*|without|"
    r"no-go|clear|except\w*|exclud\w*|outside|nor|away|leaves?|out|nowhere|nothing)\b"
)
_OTHER_NEGATION = re.compile(
    r"\b(?:don't|do not|not yet|no need to|never|not)\s+(?:\w+\s+)?(?:route|book|commit|submit|"
    r"go ahead|start|launch|run it|worry|care|rush|sure)\b|"
    r"\b(?:no|not|nothing|never)\s+(?:more|later|higher|above|over|exceeding|earlier|less)\b"
)
"""Negations about something other than a zone (booking, timing, carbon caps)."""
_CLAUSE_WINDOW = 30
_LIST_JOIN = re.compile(
    r"[\s,/]*(?:or|and|nor|,|&)?[\s,/]*(?:(?:in|on|from|to|into)\s+)?(?:the\s+)?"
)


Mention = tuple[int, int, tuple[str, ...]]
Span = tuple[int, int]


def _explicit(text: str, mention: Mention) -> bool:
    pos, end, _zones = mention
    return bool(
        _ALLOW_LEAD.search(text[:pos])
        or _ALLOW_TRAIL.search(text[end:])
        or _KEEP_INSIDE.search(text[:pos])
    )


def _unclear(text: str, mention: Mention, consumed: list[Span]) -> bool:
    """Return whether a negation near an allowed mention was not understood.

    "I don't want it in the US", "US is a no-go": a negation word in the mention's clause
    that no recognised phrase explains. Such a mention is neither allowed nor denied; the
    operator is asked instead of guessing the direction of a sovereignty constraint.
    """
    pos, end, _zones = mention
    lo, hi = max(0, pos - _CLAUSE_WINDOW), min(len(text), end + _CLAUSE_WINDOW)
    lo += max(text.rfind(";", lo, pos), text.rfind(":", lo, pos), lo - 1) - lo + 1
    stops = [i for i in (text.find(";", end, hi), text.find(":", end, hi)) if i >= 0]
    hi = min(stops, default=hi)
    spans = consumed + [m.span() for m in _OTHER_NEGATION.finditer(text)]
    return any(
        not any(a <= cue.start() < b for a, b in spans)
        for cue in _NEGATION_CUE.finditer(text, lo, hi)
    )


def _runs(
    text: str,
    mentions: list[tuple[int, int, tuple[str, ...]]],
    lead: re.Pattern[str],
    trail: re.Pattern[str],
    minus: bool = False,
) -> tuple[list[bool], list[Span]]:
    """Mark the mentions a leading or trailing phrase governs, spread over joined lists.

    "not in Texas or California" (a lead runs forward through the list), "Germany and France
    are off limits" (a trail runs backward through it); with `minus`, "EU - DE". Also returns
    the spans of the phrases that governed a mention (their negation words are explained).
    """
    marked = [False] * len(mentions)
    spans: list[Span] = []
    run = False
    for i, (pos, _end, _zones) in enumerate(mentions):
        joined = i > 0 and _LIST_JOIN.fullmatch(text[mentions[i - 1][1] : pos]) is not None
        after_region = i > 0 and len(mentions[i - 1][2]) > 1
        found = lead.search(text[:pos]) or (
            _MINUS_LEAD.search(text[:pos]) if minus and after_region else None
        )
        if keep := _KEEP_INSIDE.search(text[:pos]):
            spans.append(keep.span())
            run = False
        elif found:
            spans.append(found.span())
            run = True  # its own phrase governs it, whatever follows ("anywhere but DE is fine")
        elif _explicit(text, mentions[i]) or not (run and joined):
            run = False
        marked[i] = run
    run = False
    for i in range(len(mentions) - 1, -1, -1):
        end = mentions[i][1]
        joined = i + 1 < len(mentions) and (
            _LIST_JOIN.fullmatch(text[end : mentions[i + 1][0]]) is not None
        )
        if found := trail.search(text[end:]):
            spans.append((end, end + found.end()))
            run = True
        elif _explicit(text, mentions[i]) or not (run and joined):
            run = False
        marked[i] = marked[i] or run
    return marked, spans


def parse_zones(text: str, original: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """Return (allowed, denied, unclear, named) zones; a negated mention is only ever denied.

    Each mention (a zone or a region such as "the US") is denied when a negation governs it
    ("not in", "anywhere but", "outside", "no US zones", "EU minus Germany", "Germany is off
    limits"), also across a list ("not in Texas or California"); a preference ("France
    preferred", "ideally Spain") is named but restricts nothing; a mention next to a negation
    no rule explains ("US is a no-go") is unclear; any other mention is allowed.

    Args:
        text: The normalised text (see `agents.offline_words.normalise`).
        original: The text as typed (upper-case zone codes are read from it).
    """
    mentions = zone_mentions(text, original)
    denied_at, deny_spans = _runs(text, mentions, _DENY_LEAD, _DENY_TRAIL, minus=True)
    preferred_at, prefer_spans = _runs(text, mentions, _PREFER_LEAD, _PREFER_TRAIL)
    consumed = deny_spans + prefer_spans
    allowed: list[str] = []
    denied: list[str] = []
    unclear: list[str] = []
    named: list[str] = []
    for mention, is_denied, is_preferred in zip(mentions, denied_at, preferred_at, strict=True):
        zones = mention[2]
        named.extend(zones)
        if is_denied:
            denied.extend(zones)
        elif is_preferred:
            continue
        elif not _explicit(text, mention) and _unclear(text, mention, consumed):
            unclear.extend(zones)
        else:
            allowed.extend(zones)
    denied = list(dict.fromkeys(denied))
    unclear = [z for z in dict.fromkeys(unclear) if z not in denied]
    allowed = [z for z in dict.fromkeys(allowed) if z not in denied and z not in unclear]
    return allowed, denied, unclear, list(dict.fromkeys(named))
