"""Zones in operator text: a negated zone or region is only ever denied, never allowed."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.offline_parser import parse_request
from agents.offline_zones import US_ZONES
from agents.workload import EU_ZONES, KNOWN_ZONES

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
US = sorted(US_ZONES)
EU = sorted(EU_ZONES)

# How operators name a zone or a region, and the zones each stands for.
MENTIONS = {
    "the US": US,
    "US": US,
    "America": US,
    "the United States": US,
    "the EU": EU,
    "Europe": EU,
    "Iberia": ["ES", "PT"],
    "Germany": ["DE"],
    "DE": ["DE"],
    "Texas": ["US-TEX-ERCO"],
    "California": ["US-CAL-CISO"],
    "the UK": ["GB"],
    "France": ["FR"],
}
NEGATIONS = (
    "not in {z}",
    "anywhere but {z}",
    "outside {z}",
    "outside of {z}",
    "avoid {z}",
    "except {z}",
    "excluding {z}",
    "keep it out of {z}",
    "never in {z}",
    "nothing in {z}",
    "no {z} zones",
    "{z} is off limits",
    "{z} is excluded",
    "anything but {z}",
    "stay away from {z}",
    "nowhere in {z}",
    "must not run in {z}",
    "it can't be in {z}",
    "don't use {z}",
    "do not put it in {z}",
    "not {z}",
    "no {z}",
    "exclude {z}",
)
JOBS = ("4 H100s for 6 hours", "2 A100 for 3h", "where should 8 GPUs run for 2 hours?")


def _zones(text: str) -> tuple[set[str], set[str]]:
    spec = parse_request(text, now=NOW).spec
    return set(spec.allowed_zones or ()), set(spec.denied_zones or ())


@given(
    mention=st.sampled_from(sorted(MENTIONS)),
    negation=st.sampled_from(NEGATIONS),
    job=st.sampled_from(JOBS),
    before=st.booleans(),
)
def test_a_negated_zone_is_denied_and_never_allowed(mention, negation, job, before):
    phrase = negation.format(z=mention)
    text = f"{phrase}: {job}" if before else f"{job}, {phrase}"
    allowed, denied = _zones(text)
    assert set(MENTIONS[mention]) <= denied, text
    assert not allowed & set(MENTIONS[mention]), text


@pytest.mark.parametrize(
    ("text", "allowed", "denied"),
    [
        ("4 H100s for 6 hours, not in the US", None, US),
        ("No US zones please - 4 A100s for 3 hours", None, US),
        ("keep it out of America: 2 A100s for 4h", None, US),
        ("Anywhere but Germany is fine: 8 H100s for 12 hours", None, ["DE"]),
        ("2 H100 for 3 hours, not in Texas or California", None, ["US-CAL-CISO", "US-TEX-ERCO"]),
        ("2 H100 for 3 hours, not in Texas or in California", None, ["US-CAL-CISO", "US-TEX-ERCO"]),
        ("Germany and France are off limits: 2 H100 for 3h", None, ["DE", "FR"]),
        ("2 H100s for 6 hours outside the EU", None, EU),
        ("non-EU zones only, 2 H100 for 3h", None, EU),
        ("6 H100s for 4 hours, EU minus Germany", sorted(set(EU) - {"DE"}), ["DE"]),
        ("2 H100s for 3 hours, EU - DE", sorted(set(EU) - {"DE"}), ["DE"]),
        ("4 H100 for 2 hours, EU but not France", sorted(set(EU) - {"FR"}), ["FR"]),
        ("not in Germany, EU only, 2 H100 for 3h", sorted(set(EU) - {"DE"}), ["DE"]),
        ("anywhere except Germany, France is fine: 2 H100 3h", ["FR"], ["DE"]),
        ("US only: 4 H100s for 5 hours", US, None),
        ("2 H100 for 3 hours in the US", US, None),
        ("Place 2 A100s for 6 hours in Iberia", ["ES", "PT"], None),
        ("3 A100s for 4 hours on the Iberian peninsula", ["ES", "PT"], None),
        ("4 H100s for 6 hours somewhere in Europe", EU, None),
        ("2 A100 for 2 hours in Benelux", ["BE", "NL"], None),
        ("give us 4 H100s for 3 hours", None, None),
        ("tell us where 4 H100s should run for 2h", None, None),
    ],
)
def test_zone_phrases(text, allowed, denied):
    spec = parse_request(text, now=NOW).spec
    assert spec.allowed_zones == allowed
    assert spec.denied_zones == denied


@pytest.mark.parametrize(
    "text",
    [
        "4 H100s for 8 hours, France preferred",
        "4 H100s for 8 hours, France or Spain preferred",
        "ideally in France, 4 H100s for 8 hours",
        "4 H100s for 8 hours, France if possible",
    ],
)
def test_a_preference_restricts_nothing(text):
    parsed = parse_request(text, now=NOW)
    assert parsed.spec.allowed_zones is None and parsed.spec.denied_zones is None
    assert "FR" in parsed.zones


def test_a_preference_does_not_drop_a_hard_constraint_after_it():
    spec = parse_request("ideally France or Spain, EU only, 2 A100 for 3h", now=NOW).spec
    assert spec.allowed_zones == EU


def test_compared_zones_leave_out_the_excluded_ones():
    assert parse_request("compare the US grids", now=NOW).zones == list(US_ZONES)
    outside = parse_request("compare every zone except Germany", now=NOW).zones
    assert outside == [z for z in KNOWN_ZONES if z != "DE"]


@pytest.mark.parametrize(
    ("text", "allowed", "denied"),
    [
        ("I don't want it in the US, 4 H100 for 6h", None, US),
        ("we cannot use US data centres: 4 H100 for 6h", None, US),
        ("4 H100 for 6h. US is a no-go.", None, US),
        ("steer clear of Texas, 2 H100 for 3h", None, ["US-TEX-ERCO"]),
        ("Sovereignty: no data in the USA. 2 H100 for 3h", None, US),
        ("data must never leave the EU: 2 H100 for 3h", EU, None),
        ("nothing outside the EU: 2 H100 for 3h", EU, None),
        ("keep it in the EU, 2 H100 for 3h", EU, None),
        ("4 H100s for 8 hours in France, not Germany", ["FR"], ["DE"]),
        ("2 L4 for 3h in France, don't route it yet", ["FR"], None),
        ("2 H100 for 3h in France, no more than 100 g/kWh", ["FR"], None),
    ],
)
def test_negations_in_other_words(text, allowed, denied):
    parsed = parse_request(text, now=NOW)
    assert (parsed.spec.allowed_zones, parsed.spec.denied_zones) == (allowed, denied)
    assert parsed.unclear_zones == []


@pytest.mark.parametrize(
    ("text", "unclear"),
    [
        ("4 H100 for 6h; Germany? No.", ["DE"]),
        ("2 H100 for 3h, the US is really not somewhere we can go", US),
    ],
)
def test_a_negation_it_cannot_read_leaves_the_zone_neither_allowed_nor_denied(text, unclear):
    parsed = parse_request(text, now=NOW)
    assert sorted(parsed.unclear_zones) == unclear
    assert parsed.spec.allowed_zones is None and parsed.spec.denied_zones is None
