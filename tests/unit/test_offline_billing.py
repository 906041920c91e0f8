from datetime import UTC, datetime

import pytest

from agents.offline_billing import parse_billing
from agents.offline_parser import parse_request

NOW = datetime(2026, 11, 26, 10, tzinfo=UTC)
JANUARY = datetime(2027, 1, 5, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "now", "month"),
    [
        ("bill Acme for November", NOW, "2026-11"),
        ("bill Acme for Nov 2026", JANUARY, "2026-11"),
        ("bill Acme for November", JANUARY, "2026-11"),  # the latest November, not the next
        ("bill Acme for December", NOW, "2025-12"),
        ("what did Acme spend last month?", NOW, "2026-10"),
        ("what did Acme spend last month?", JANUARY, "2026-12"),
        ("Acme's statement this month", JANUARY, "2027-01"),
        ("statement for acme-ai, 2026-03", NOW, "2026-03"),
        ("acme invoice for sept", NOW, "2026-09"),
        ("bill Acme", NOW, None),
        ("what may Acme owe", NOW, None),
    ],
)
def test_months_resolve_from_the_injected_clock(text, now, month):
    assert parse_billing(text, now=now).month == month


@pytest.mark.parametrize(
    ("text", "kind", "name", "org_kind"),
    [
        ("what do we owe gamer Jonas?", "owed", "jonas", "gamer"),
        ("What do we owe gamer-giulia", "owed", "gamer-giulia", "gamer"),
        ("how much do we owe the Seine Compute datacenter?", "owed", "seine compute", "datacenter"),
        ("bill Acme AI for November", "statement", "acme ai", None),
        ("what was customer Helios charged in October?", "statement", "helios", "enterprise"),
        ("what's the trial balance?", "trial_balance", None, None),
        ("profitability by node", "profitability", None, None),
        ("which payouts are waiting for approval?", "payouts", None, None),
        ("what do we owe?", "owed", None, None),
        ("refund me 1000 EUR", "refund", None, None),
    ],
)
def test_what_is_asked_and_about_whom(text, kind, name, org_kind):
    assert parse_request(text, now=NOW).intent == "billing"
    query = parse_billing(text, now=NOW)
    assert (query.kind, query.org_name, query.org_kind) == (kind, name, org_kind)


@pytest.mark.parametrize(
    ("text", "group_by", "status"),
    [
        ("profitability by node", "node", None),
        ("margin per workload", "workload", None),
        ("carbon ROI for each customer", "org", None),
        ("pending payouts", "org", "awaiting_approval"),
        ("payouts that need review", "org", "needs_review"),
        ("posted payouts", "org", "posted"),
    ],
)
def test_grouping_and_payout_status(text, group_by, status):
    query = parse_billing(text, now=NOW)
    assert (query.group_by, query.payout_status) == (group_by, status)


def test_my_bill_means_the_acting_organisation():
    assert parse_billing("how much was I billed this month?", now=NOW).about_self
    assert not parse_billing("how much was Acme billed?", now=NOW).about_self
