from datetime import UTC, datetime, timedelta

import pytest

from agents.offline_parser import parse_request
from agents.offline_words import normalise
from agents.workload import EU_ZONES

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # a Thursday
EU = sorted(EU_ZONES)
NOT_EU = None


def _in(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


# (text, intent, expected fields; absent keys must be None)
CASES = [
    (
        "Where should I run a 4xH100 fine-tune for 6 hours, EU only, done within 24 hours?",
        "recommend",
        {
            "gpu_count": 4,
            "gpu_model": "H100",
            "duration_hours": 6,
            "deadline": _in(24),
            "allowed_zones": EU,
        },
    ),
    (
        "four H100s for six hours",
        "recommend",
        {"gpu_count": 4, "gpu_model": "H100", "duration_hours": 6},
    ),
    (
        "I need 8 A100 GPUs for 90 minutes in France or Spain",
        "recommend",
        {"gpu_count": 8, "gpu_model": "A100", "duration_hours": 1.5, "allowed_zones": ["ES", "FR"]},
    ),
    (
        "a single H100 for half a day, not in Germany",
        "recommend",
        {"gpu_count": 1, "gpu_model": "H100", "duration_hours": 12, "denied_zones": ["DE"]},
    ),
    (
        "2 x L40S, 3h, max 100 g/kWh",
        "recommend",
        {"gpu_count": 2, "gpu_model": "L40S", "duration_hours": 3, "max_carbon_intensity": 100},
    ),
    (
        "recommend a node for twenty-four A100s for two days",
        "recommend",
        {"gpu_count": 24, "gpu_model": "A100", "duration_hours": 48},
    ),
    (
        "where can 16 gpus run for 10 hrs by tomorrow 9am?",
        "recommend",
        {
            "gpu_count": 16,
            "duration_hours": 10,
            "deadline": datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        },
    ),
    (
        "best place for an H100 for an hour and a half",
        "recommend",
        {"gpu_count": 1, "gpu_model": "H100", "duration_hours": 1.5},
    ),
    (
        "Place a 6-hour job on 4 RTX 4090s, avoid Texas",
        "recommend",
        {
            "gpu_count": 4,
            "gpu_model": "RTX4090",
            "duration_hours": 6,
            "denied_zones": ["US-TEX-ERCO"],
        },
    ),
    (
        "H100x8 for 2.5 hours under 150 gCO2/kWh in the EU",
        "recommend",
        {
            "gpu_count": 8,
            "gpu_model": "H100",
            "duration_hours": 2.5,
            "max_carbon_intensity": 150,
            "allowed_zones": EU,
        },
    ),
    (
        "Run a couple of L4s for 45 minutes anywhere but Germany or Italy",
        "recommend",
        {"gpu_count": 2, "gpu_model": "L4", "duration_hours": 0.75, "denied_zones": ["DE", "IT"]},
    ),
    (
        "suggest where to run three A100 for 5 hours, must be done in 12 hours",
        "recommend",
        {"gpu_count": 3, "gpu_model": "A100", "duration_hours": 5, "deadline": _in(12)},
    ),
    (
        "find me a node: 4 H200s, two and a half hours, California only",
        "recommend",
        {
            "gpu_count": 4,
            "gpu_model": "H200",
            "duration_hours": 2.5,
            "allowed_zones": ["US-CAL-CISO"],
        },
    ),
    (
        "I want to train on 32 GPUs for a week, UK or Netherlands",
        "recommend",
        {"gpu_count": 32, "duration_hours": 168, "allowed_zones": ["GB", "NL"]},
    ),
    (
        "where should 8 H100 run for 4 hours by Friday",
        "recommend",
        {
            "gpu_count": 8,
            "gpu_model": "H100",
            "duration_hours": 4,
            "deadline": datetime(2026, 11, 27, 17, 0, tzinfo=UTC),
        },
    ),
    (
        "eight A100 cards, 20 hours, carbon intensity below 200",
        "recommend",
        {"gpu_count": 8, "gpu_model": "A100", "duration_hours": 20, "max_carbon_intensity": 200},
    ),
    (
        "run my 1xA100 job for 30 min by 18:00",
        "recommend",
        {
            "gpu_count": 1,
            "gpu_model": "A100",
            "duration_hours": 0.5,
            "deadline": datetime(2026, 11, 26, 18, 0, tzinfo=UTC),
        },
    ),
    (
        "where would 2 L4 for 3h go? don't route it yet",
        "recommend",
        {"gpu_count": 2, "gpu_model": "L4", "duration_hours": 3},
    ),
    (
        "4 V100 for 8 hours in FR, DE or NL",
        "recommend",
        {
            "gpu_count": 4,
            "gpu_model": "V100",
            "duration_hours": 8,
            "allowed_zones": ["DE", "FR", "NL"],
        },
    ),
    (
        "a dozen T4s for a full day except Belgium",
        "recommend",
        {"gpu_count": 12, "gpu_model": "T4", "duration_hours": 24, "denied_zones": ["BE"]},
    ),
    (
        "Inference burst: 6 GPUs, 2 hours, US only",
        "recommend",
        {
            "gpu_count": 6,
            "duration_hours": 2,
            "allowed_zones": ["US-CAL-CISO", "US-NY-NYIS", "US-TEX-ERCO"],
        },
    ),
    ("where should I run 4 H100s?", "recommend", {"gpu_count": 4, "gpu_model": "H100"}),
    ("where should a 10 hour job go?", "recommend", {"duration_hours": 10}),
    (
        "run a fine-tune on 2 MI300X for 5h by end of day",
        "recommend",
        {
            "gpu_count": 2,
            "gpu_model": "MI300X",
            "duration_hours": 5,
            "deadline": datetime(2026, 11, 26, 23, 59, tzinfo=UTC),
        },
    ),
    # commit
    ("route it", "route", {}),
    ("Go ahead.", "route", {}),
    ("ok", "route", {}),
    ("yes please", "route", {}),
    ("book it", "route", {}),
    ("Sure, go for it", "route", {}),
    ("yes, go ahead and book it", "route", {}),
    (
        "Route a 2xA100 job for 3 hours in Spain",
        "route",
        {"gpu_count": 2, "gpu_model": "A100", "duration_hours": 3, "allowed_zones": ["ES"]},
    ),
    ("let's do it", "route", {}),
    # reroute / explain
    ("reroute wl_abc123def456", "reroute", {}),
    ("please move workload wl_0011aabbccdd somewhere greener", "reroute", {}),
    ("re-route the job wl_abcdef012345", "reroute", {}),
    ("why was wl_abc123def456 placed there?", "explain", {}),
    ("explain the routing decision for wl_abc123def456", "explain", {}),
    # compare and grid
    ("compare FR and DE over the next 6 hours", "compare", {}),
    ("which zone is cleanest right now?", "compare", {}),
    ("how green is Spain right now", "compare", {}),
    ("compare zones now", "compare", {}),
    # nodes
    ("list H100 nodes in France", "nodes", {"gpu_model": "H100", "allowed_zones": ["FR"]}),
    ("what nodes are available?", "nodes", {}),
    # incidents, billing, help, unknown
    ("any incidents?", "incident", {}),
    ("what's the status of the carbon spike alert", "incident", {}),
    ("how much was I billed this month?", "billing", {}),
    ("show my last invoice", "billing", {}),
    ("what did the gamer payouts come to", "billing", {}),
    ("hello", "help", {}),
    ("what can you do", "help", {}),
    ("what's the weather like?", "unknown", {}),
    ("sing me a song", "unknown", {}),
]
FIELDS = (
    "gpu_count",
    "gpu_model",
    "duration_hours",
    "deadline",
    "allowed_zones",
    "denied_zones",
    "max_carbon_intensity",
)


def test_there_are_at_least_forty_phrasings() -> None:
    assert len(CASES) >= 40
    assert len({text for text, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("text", "intent", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_phrasing(text: str, intent: str, expected: dict[str, object]) -> None:
    parsed = parse_request(text, now=NOW)
    assert parsed.intent == intent
    if intent in ("recommend", "route"):
        got = parsed.spec.model_dump()
        for name in FIELDS:
            assert got[name] == expected.get(name), name
    assert parsed.problems == []


def test_ids_and_zones_and_horizon_are_extracted() -> None:
    parsed = parse_request("compare FR and DE over the next 6 hours", now=NOW)
    assert parsed.zones == ["FR", "DE"] and parsed.horizon_hours == 6
    assert parse_request("reroute wl_abc123def456 and wl_ffffeeee0000", now=NOW).workload_ids == [
        "wl_abc123def456",
        "wl_ffffeeee0000",
    ]
    assert parse_request("over the next 2 days", now=NOW).horizon_hours == 48


def test_lower_case_two_letter_words_are_not_zones() -> None:
    parsed = parse_request("run it on 2 A100 for 3 hours, it should be done by 9pm", now=NOW)
    assert parsed.spec.allowed_zones is None and parsed.spec.denied_zones is None
    assert parsed.spec.deadline == datetime(2026, 11, 26, 21, 0, tzinfo=UTC)


def test_impossible_values_are_reported_not_guessed() -> None:
    parsed = parse_request("5000 H100 for 3 hours", now=NOW)
    assert parsed.spec.gpu_count is None
    assert parsed.problems == ["gpu_count=5000"]


def test_without_a_clock_relative_deadlines_stay_empty() -> None:
    assert parse_request("4 H100 for 2 hours within 6 hours", now=None).spec.deadline is None


def test_parsing_is_deterministic() -> None:
    text = CASES[0][0]
    assert parse_request(text, now=NOW) == parse_request(text, now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("twenty-four", "24"),
        ("one hundred and twenty", "120"),
        ("half a day", "12 hours"),
        ("an hour and a half", "1.5 hours"),
        ("three and a half hours", "3.5 hours"),
        ("a couple of gpus", "2 gpus"),
        ("an H100", "1 h100"),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_a_before_a_number_is_not_one():
    parsed = parse_request("route a 2000 GPU job for 3 hours", now=NOW)
    assert parsed.spec.gpu_count is None and parsed.problems == ["gpu_count=2000"]
    assert parse_request("a 4090 for 2 hours", now=NOW).spec.gpu_count == 1


@pytest.mark.parametrize(
    ("text", "movable"),
    [
        ("4 H100 for 6 hours, it cannot checkpoint", False),
        ("2 GPUs for 3h, don't move it once it runs", False),
        ("1 GPU for 2 hours, no checkpointing", False),
        ("8 GPUs for 12 hours, it must not be moved", False),
        ("8 GPUs for 12 hours; it can't be migrated", False),
        ("2 GPUs for 3h, it can be moved", None),
        ("2 GPUs for 3h", None),
        ("2 GPUs for 3h, checkpoints every hour", None),
    ],
)
def test_work_that_cannot_checkpoint_is_read_as_not_movable(text: str, movable: bool | None):
    spec = parse_request(text, now=NOW).spec
    assert spec.movable is movable
    assert spec.to_job_spec().movable is (movable is not False)
