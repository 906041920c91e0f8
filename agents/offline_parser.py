"""Parse an operator's chat message into an intent and a `WorkloadSpec` (offline model).

A small grammar over normalised text (see `agents.offline_words`): GPU quantities
("4xH100", "four H100s", "8 GPUs"), durations ("6 hours", "half a day", "90 minutes"),
deadlines ("done within 24 hours", "by tomorrow 9am", "by Friday"), zone lists ("EU only",
"not in Germany", "France or Spain", "anywhere but the US"; a preference such as "France
preferred" restricts nothing), carbon caps ("max 100 g/kWh") and the request kind.
Negation is read conservatively: a zone governed by a negation is only ever denied, never
allowed. Deterministic: the same text and clock always give the same result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Literal

from pydantic import ValidationError

from agents.offline_words import normalise
from agents.offline_zones import parse_zones
from agents.workload import KNOWN_ZONES, WorkloadSpec

Intent = Literal[
    "recommend",
    "route",
    "reroute",
    "compare",
    "explain",
    "incident",
    "billing",
    "nodes",
    "help",
    "cancel",
    "refuse",
    "unknown",
]

GPU_MODELS = {
    "h100": "H100",
    "h200": "H200",
    "a100": "A100",
    "l40s": "L40S",
    "l40": "L40S",
    "l4": "L4",
    "a10g": "A10G",
    "a10": "A10G",
    "v100": "V100",
    "t4": "T4",
    "mi300x": "MI300X",
    "b200": "B200",
    "rtx 4090": "RTX4090",
    "rtx4090": "RTX4090",
    "4090": "RTX4090",
    "rtx 3090": "RTX3090",
    "rtx3090": "RTX3090",
    "3090": "RTX3090",
}
_MODEL = "|".join(sorted((re.escape(m) for m in GPU_MODELS), key=len, reverse=True))
_GPU_COUNT_MODEL = re.compile(
    rf"\b(\d+)\s*(?:x\s*|-\s*)?(?:way\s+)?(?:nvidia\s+|amd\s+)?({_MODEL})(?:s|'s)?\b"
)
_GPU_MODEL_COUNT = re.compile(rf"\b({_MODEL})\s*x\s*(\d+)\b")
_GPU_COUNT_PLAIN = re.compile(
    r"\b(\d+)\s*(?:x\s*|-\s*)?(?:way\s+)?(?:[a-z0-9]+\s+)?(?:gpus?|cards?)\b"
)
_GPU_MODEL_ONLY = re.compile(rf"\b({_MODEL})(?:s|'s)?\b")
_QUANTITY = re.compile(
    r"\b(\d+(?:\.\d+)?)\s*-?\s*(hours?|hrs?|h|minutes?|mins?|days?|d|weeks?|wks?)\b"
)
_DEADLINE_LEAD = re.compile(
    r"(?:within|in the next|in under|in less than|inside|deadline(?: is| of)?(?: in| within)?|"
    r"due(?: in| within)?|"
    r"finish(?:ed)? in|done in|complete(?:d)? in|before|ready in|at most|no later than)\s*$"
)
_UNIT_HOURS = {"h": 1.0, "hr": 1.0, "hour": 1.0, "min": 1 / 60, "minute": 1 / 60, "d": 24.0}
_UNIT_HOURS |= {"day": 24.0, "week": 168.0, "wk": 168.0}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?"
_BY_TIME = re.compile(
    r"\bby\s+(?:(tomorrow|tonight|today|end of (?:the )?day|eod|noon|midnight|"
    + "|".join(_WEEKDAYS)
    + r")\s*(?:at\s+|morning\s*)?)?(?:"
    + _CLOCK
    + r")?(?:\s+(tomorrow|today))?"
)
_CARBON_CAP = re.compile(
    r"(?:max(?:imum)?|under|below|less than|at most|no more than|<=?|cap(?:ped)?(?: at)?|"
    r"limit(?:ed)?(?: to)?|up to|(?:not|nothing|never|none) (?:above|over)|lower than|"
    r"no higher than|not exceeding|ceiling)\s*(?:of\s*)?"
    r"(?:(?:grid\s+)?(?:carbon|co2)(?:\s+intensity)?\s*(?:of\s*)?)?(\d+(?:\.\d+)?)\s*"
    r"(g(?:rams?)?(?:\s*co2(?:e|eq)?)?(?:\s*(?:/|per)\s*kwh)?|gco2(?:e|eq)?(?:\s*(?:/|per)\s*kwh)?)?"
)
_CARBON_CAP_AFTER = re.compile(
    r"(\d+(?:\.\d+)?)\s*g(?:co2(?:e|eq)?)?\s*(?:/|per)\s*kwh\s*(?:max|or less|at most|cap|limit)"
)
_WORKLOAD_ID = re.compile(r"\b(wl_[0-9a-z]{4,32})\b")
_OTHER_ID = re.compile(
    r"\b(?:workload|job)\s+(?:id\s+)?#?(\d{1,12})\b(?!\s*(?:-|x\b|gpus?|cards?|hours?|hrs?|h\b|"
    r"minutes?|mins?|days?|weeks?))"
)
"""A workload named by a number ("workload 12345"): passed on so the tool reports it unknown."""
_INCIDENT_ID = re.compile(r"\b(inc_[0-9a-z]{4,32})\b")
_HORIZON = re.compile(
    r"\b(?:next|coming|over the next|for the next)\s+(\d+(?:\.\d+)?)\s*(h|hours?|days?)"
)

_NO_MOVE = re.compile(
    r"\b(?:can ?not|can't|cannot|doesn't|does not|won't|no|without)\s+(?:be\s+)?checkpoint|"
    r"\bnot checkpointable\b|"
    r"\b(?:do not|don't|never|must not|mustn't|cannot|can't|should not|shouldn't)\s+"
    r"(?:be\s+)?(?:move|moved|migrate|migrated)\b"
)
"""Work that cannot checkpoint, or must not move once it runs (`JobSpec.movable` false)."""
_FOLLOW_UP = re.compile(
    r"^(?:and |ok,? |okay,? |hmm,? |so,? |then )?(?:make it|what about|how about|actually|"
    r"change|switch|same|try|and if|what if|now)\b|\binstead\b|\brather\b|\bthe same\b"
)
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget)\b.{0,40}\b(?:instructions?|rules|prompts?|guidelines)\b|"
    r"\bsystem (?:override|prompt|message)|\bnew instructions\b|\byou are now\b|"
    r"\b(?:maintenance|admin(?:istrator)?|developer|god|debug) mode\b|\bjailbreak|"
    r"\b(?:skip|bypass|without)\b.{0,20}\b(?:approvals?|asking|confirmation|consent)\b|"
    r"\bpre-?approved\b|\bauthori[sz]ed by (?:the )?(?:admin|system|root)|"
    r"\b(?:do|follow) (?:what|whatever) (?:it|they|that|the \w+) says?\b|"
    r"\b(?:follow|obey|execute) (?:its|their|the|these|those) (?:instructions|orders|commands)\b|"
    r"\bapprove (?:every|all|each)\b.{0,30}\bautomatically\b"
)
_CANCEL = re.compile(
    r"\b(?:cancel|abort|kill|terminate|delete|remove|stop)\b.*\b(?:workloads?|jobs?|it|that|this|"
    r"wl_\w+|booking|run)\b"
)
_THE_JOB = r"(?:it|(?:my|the|that) (?:job|workload)|wl_\w+)"
_STATUS = re.compile(
    r"\b(?:status|progress|state)\b.*\b(?:workload|job|it|that|this|mine|wl_\w+)|"
    rf"\b(?:is|has) {_THE_JOB} (?:running|started|finished|done|placed|booked)|"
    rf"\bwhere (?:is|did) {_THE_JOB}"
)
_NEGATED_ROUTE = re.compile(
    r"\b(?:don't|do not|dont|without|not yet|no need to|never)\b[^.]*"
    r"\b(?:route|book|commit|submit|go ahead)"
)
_ROUTE = re.compile(
    r"\b(?:route it|route this|route that|route the (?:job|workload)|go ahead|go for it|book it|"
    r"book that|book this|book the (?:job|workload)|sounds good,? book|"
    r"do it|commit(?: it)?|submit it|schedule it|launch it|deploy it|place it|run it there|"
    r"confirm(?:ed)?|proceed|let'?s do (?:it|that)|ship it|make it so|yes,? (?:please|route))\b"
    r"|^(?:yes|yep|ok(?:ay)?|sure)\b[ .!,]*(?:please)?[ .!]*$|^route\b|^please route\b|^book\b"
)
_REROUTE = re.compile(r"\b(?:re-?route|move|migrate|relocate|shift)\b")
_EXPLAIN = re.compile(r"\b(?:why|explain|reason|justify|how come|what made)\b")
_EXPLAIN_OBJECT = re.compile(
    r"decision|placed|routed|chose|chosen|choice|pick(?:ed)?|select(?:ed)?|recommend(?:ed|ation)?|"
    r"\b(?:that|this|it|there|the) (?:one|node|zone|placement)\b|\bthere\b"
)
_INCIDENT = re.compile(r"\b(?:incidents?|alerts?|outages?|anomal(?:y|ies)|spikes?|on fire)\b")
_BILLING = re.compile(
    r"\b(?:invoices?|billing|bill(?:ed|s)?|charged?|charges|payments?|payouts?|refunds?|"
    r"balance|ledger|spent|spend|owe|earn(?:ed|ings)?|paid|"
    r"owe[ds]|owing|payable|statements?|profit(?:ability|able|s)?|margins?|roi|approval|"
    r"pay[ -]outs?|revenue|income|fees?)\b"
)
_COMPARE = re.compile(
    r"\b(?:compare|comparison|versus|vs\.?|cleanest|greenest|dirtiest|cheapest zone|"
    r"which zone|which grid|how (?:green|clean|dirty)|carbon intensity (?:now|right now|today)|"
    r"grid (?:now|right now|status|today|in)|forecast|rank (?:the )?zones|greener|cleaner|"
    r"dirtier|lower[- ]carbon|(?:power|electricity|energy|spot|grid|wholesale) prices?|"
    r"(?:power|electricity|energy) (?:costs?|tariffs?)|(?:price|costs?) of (?:power|electricity|"
    r"energy)|(?:does|do) (?:power|electricity|energy) cost|best time|window|when is|when's|"
    r"greenest (?:time|window|hour))\b"
)
_WHEN = re.compile(r"\b(?:when|best time|window|which hour)\b")
_NODES = re.compile(r"\b(?:list|show|which|what|available|free)\b.*\bnodes?\b|\bcapacity\b")
_RECOMMEND = re.compile(
    r"\b(?:where|recommend|suggest|best (?:place|node|zone|option)|should i run|place|"
    r"find (?:me )?(?:a|the)|greenest node|cheapest node|run (?:a|my|an|this))\b"
)
_HELP = re.compile(r"^(?:hi|hello|hey|help|what can you do|who are you)\b")


@dataclass(frozen=True)
class ParsedRequest:
    """What the offline parser understood from one message."""

    intent: Intent
    spec: WorkloadSpec
    workload_ids: list[str] = field(default_factory=list)
    incident_ids: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    """Zones named in the text and not excluded, in order (used by compare and nodes); when
    every named zone is excluded ("outside the EU"), all the other zones."""
    horizon_hours: int = 0
    """'Over the next N hours' for comparisons; 0 means now only."""
    problems: list[str] = field(default_factory=list)
    """Values that were recognised but rejected (e.g. an impossible GPU count)."""
    unclear_zones: list[str] = field(default_factory=list)
    """Zones next to a negation the parser could not read ("US is a no-go"): neither allowed
    nor denied; the model asks which way the constraint goes."""
    follow_up: bool = False
    """The message changes the previous job ("make it 8 GPUs", "what about Spain instead?")."""
    when: bool = False
    """The message asks for a time ("when", "best time", "window"), not only a place."""


def _gpu(text: str) -> tuple[int | None, str | None]:
    if m := _GPU_COUNT_MODEL.search(text):
        return int(m.group(1)), GPU_MODELS[m.group(2)]
    if m := _GPU_MODEL_COUNT.search(text):
        return int(m.group(2)), GPU_MODELS[m.group(1)]
    count = int(m.group(1)) if (m := _GPU_COUNT_PLAIN.search(text)) else None
    model = GPU_MODELS[m.group(1)] if (m := _GPU_MODEL_ONLY.search(text)) else None
    if count is None and model is not None and re.search(r"\b(?:an?|1) " + model.lower(), text):
        count = 1
    return count, model


def _hours(amount: str, unit: str) -> float:
    unit = unit.rstrip("s") if unit not in ("s",) else unit
    unit = {"hr": "hr", "min": "min", "wk": "wk"}.get(unit, unit)
    return float(amount) * _UNIT_HOURS[unit]


def _durations(text: str, now: datetime | None) -> tuple[float | None, datetime | None]:
    duration: float | None = None
    deadline: datetime | None = None
    for m in _QUANTITY.finditer(text):
        hours = _hours(m.group(1), m.group(2))
        if _DEADLINE_LEAD.search(text[: m.start()]):
            if deadline is None and now is not None:
                deadline = now + timedelta(hours=hours)
        elif duration is None and not re.search(r"(?:next|coming)\s*$", text[: m.start()]):
            duration = hours
    return duration, deadline


def _at(day: datetime, hour: int, minute: int) -> datetime:
    return datetime.combine(day.date(), time(hour, minute), tzinfo=day.tzinfo)


def _absolute_deadline(text: str, now: datetime) -> datetime | None:
    for m in _BY_TIME.finditer(text):
        day_word = m.group(1) or m.group(5)
        hour_s, minute_s, ampm = m.group(2), m.group(3), m.group(4)
        if day_word is None and hour_s is None:
            continue
        if hour_s is not None and ampm is None and minute_s is None and day_word is None:
            continue  # "by 4" is too vague to be a time
        hour = int(hour_s) if hour_s else 9
        minute = int(minute_s) if minute_s else 0
        if ampm == "pm" and hour < 12:
            hour += 12
        if ampm == "am" and hour == 12:
            hour = 0
        if hour > 23 or minute > 59:
            continue
        day = now
        if day_word == "tomorrow":
            day = now + timedelta(days=1)
        elif day_word in ("tonight",):
            hour, minute = (hour, minute) if hour_s else (22, 0)
        elif day_word in ("end of day", "end of the day", "eod", "midnight"):
            hour, minute = (23, 59)
        elif day_word == "noon":
            hour, minute = (12, 0)
        elif day_word in _WEEKDAYS:
            ahead = (_WEEKDAYS.index(day_word) - now.weekday()) % 7 or 7
            day = now + timedelta(days=ahead)
            hour, minute = (hour, minute) if hour_s else (17, 0)
        result = _at(day, hour, minute)
        if result <= now and day_word is None:
            result += timedelta(days=1)
        return result
    if re.search(r"\bby (?:tomorrow )?morning\b|\bovernight\b", text):
        return _at(now + timedelta(days=1), 8, 0)
    return None


def _carbon_cap(text: str) -> float | None:
    for m in _CARBON_CAP.finditer(text):
        window = text[max(0, m.start() - 30) : m.end() + 30]
        if m.group(2) or re.search(r"carbon|co2|intensity|gram|emission", window):
            return float(m.group(1))
    if after := _CARBON_CAP_AFTER.search(text):
        return float(after.group(1))
    return None


def _intent(text: str, spec: WorkloadSpec, ids: list[str], follow_up: bool) -> Intent:
    has_job = spec.gpu_count is not None or spec.duration_hours is not None
    if _INJECTION.search(text):
        return "refuse"
    if _BILLING.search(text) and not has_job:
        return "billing"
    if _INCIDENT.search(text) and not has_job:
        return "incident"
    if _CANCEL.search(text) and not has_job and not _NEGATED_ROUTE.search(text):
        return "cancel"
    if _EXPLAIN.search(text) and (ids or _EXPLAIN_OBJECT.search(text)):
        return "explain"
    if _STATUS.search(text) and not has_job:
        return "explain"
    if _REROUTE.search(text) and (ids or re.search(r"workload|job", text)) and not has_job:
        return "reroute"
    if _ROUTE.search(text) and not _NEGATED_ROUTE.search(text):
        return "route"
    if _COMPARE.search(text) and not has_job:
        return "compare"
    if _NODES.search(text) and not has_job:
        return "nodes"
    if has_job or _RECOMMEND.search(text) or (follow_up and spec.tool_args()):
        return "recommend"
    if _HELP.search(text):
        return "help"
    return "unknown"


def parse_request(text: str, *, now: datetime | None) -> ParsedRequest:
    """Return the intent and job fields stated in `text`.

    Args:
        text: One operator message (data, never instructions to the parser).
        now: Aware current time used to resolve relative deadlines; None leaves them empty.
    """
    norm = normalise(text)
    gpu_count, gpu_model = _gpu(norm)
    duration, deadline = _durations(norm, now)
    if now is not None and (absolute := _absolute_deadline(norm, now)) is not None:
        deadline = deadline or absolute
    allowed, denied, unclear, named = parse_zones(norm, text)
    problems: list[str] = []
    fields = {
        "gpu_count": gpu_count,
        "gpu_model": gpu_model,
        "duration_hours": duration,
        "deadline": deadline,
        "allowed_zones": allowed or None,
        "denied_zones": denied or None,
        "max_carbon_intensity": _carbon_cap(norm),
        "movable": False if _NO_MOVE.search(norm) else None,
    }
    try:
        spec = WorkloadSpec.model_validate(fields)
    except ValidationError as exc:
        bad = {str(e["loc"][0]) for e in exc.errors()}
        problems = [f"{name}={fields[name]!r}" for name in sorted(bad)]
        spec = WorkloadSpec.model_validate({k: v for k, v in fields.items() if k not in bad})
    ids = list(dict.fromkeys(_WORKLOAD_ID.findall(text.lower()) + _OTHER_ID.findall(norm)))
    follow_up = bool(_FOLLOW_UP.search(norm))
    intent = _intent(norm, spec, ids, follow_up)
    horizon = 0
    if m := _HORIZON.search(norm):
        horizon = int(float(m.group(1)) * (24 if m.group(2).startswith("d") else 1))
    elif intent == "compare" and _WHEN.search(norm):
        horizon = 24
    zones = [z for z in named if z not in denied]
    if not zones and denied:
        zones = [z for z in KNOWN_ZONES if z not in denied]
    return ParsedRequest(
        intent=intent,
        spec=spec,
        workload_ids=ids,
        incident_ids=list(dict.fromkeys(_INCIDENT_ID.findall(text.lower()))),
        zones=zones,
        horizon_hours=horizon,
        problems=problems,
        unclear_zones=unclear,
        follow_up=follow_up,
        when=bool(_WHEN.search(norm)),
    )
