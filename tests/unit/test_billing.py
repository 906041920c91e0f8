import random
from datetime import UTC, datetime, timedelta

import pytest

from store import ledger
from store.models import ComputeNode, Organization, Workload
from tools.broker.baseline import BaselineChoice
from tools.errors import IllegalTransitionError, InvalidInputError
from tools.grid.simulated import SimulatedGrid
from tools.money.usage import (
    HOUR,
    billed_seconds,
    book_usage,
    gross_minor,
    measure_energy,
    split_fee,
)

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)


def test_fee_plus_share_is_gross_for_100k_amounts():
    rng = random.Random(4)
    amounts = [0, 1, 2, 6, 7, 99, 100, 101, 2**63 - 1, 10**18]
    amounts += list(range(0, 50_000))
    amounts += [rng.randrange(0, 2**62) for _ in range(50_000)]
    for gross in amounts:
        fee, share = split_fee(gross)
        assert fee + share == gross
        assert fee == gross * 15 // 100 and 0 <= fee <= share or gross == 0
    assert len(amounts) >= 100_000


def test_fee_is_floor_of_fifteen_percent():
    assert split_fee(100) == (15, 85)
    assert split_fee(7) == (1, 6)  # 1.05 -> 1
    assert split_fee(6) == (0, 6)  # 0.9 -> 0
    assert split_fee(0) == (0, 0)


@pytest.mark.parametrize("bad", [-1, 1.5, "10", None])
def test_split_fee_rejects_non_integer_money(bad):
    with pytest.raises(InvalidInputError, match=repr(bad).replace("(", r"\(")):
        split_fee(bad)


def test_gross_rounds_half_up_with_integers_only():
    assert gross_minor(2, 250, 3600 * 3) == 1500
    assert gross_minor(1, 1, 1800) == 1  # 0.5 -> 1
    assert gross_minor(1, 1, 1799) == 0
    assert gross_minor(3, 45, 5400) == 203  # 202.5 -> 203
    assert billed_seconds(1.5) == 5400 and billed_seconds(0.1) == 360
    with pytest.raises(InvalidInputError):
        billed_seconds(0)


def test_energy_is_computed_hour_by_hour_from_readings():
    grid = SimulatedGrid(seed=3)
    start = datetime(2023, 6, 1, 10, 30, tzinfo=UTC)
    end = start + timedelta(hours=2)
    rep = measure_energy(
        grid=grid,
        zone="FR",
        start=start,
        end=end,
        gpu_count=2,
        power_kw_per_gpu=0.5,
        baseline=BaselineChoice(node_id="cheap", zone="DE", start_at=start - HOUR, decision_id="d"),
    )
    assert [h.seconds for h in rep.hours] == [1800, 3600, 1800]
    assert rep.energy_kwh == pytest.approx(2.0)
    readings = grid.series("FR", datetime(2023, 6, 1, 10, tzinfo=UTC), 3)
    expected = sum(
        kwh * r.carbon_intensity / 1000 for kwh, r in zip([0.5, 1.0, 0.5], readings, strict=True)
    )
    assert rep.co2_kg == pytest.approx(expected)
    # The baseline: the same 2 kWh in DE from the decision an hour earlier, hour by hour.
    de = grid.series("DE", datetime(2023, 6, 1, 9, tzinfo=UTC), 3)
    base = sum(kwh * r.carbon_intensity / 1000 for kwh, r in zip([0.5, 1.0, 0.5], de, strict=True))
    assert rep.baseline is not None and rep.baseline.node_id == "cheap"
    assert rep.baseline_co2_kg == pytest.approx(base)
    assert rep.co2_avoided_kg == pytest.approx(base - expected)


def test_energy_without_a_baseline_has_no_avoided_co2():
    grid = SimulatedGrid(seed=3)
    start = datetime(2023, 6, 1, 10, tzinfo=UTC)
    rep = measure_energy(
        grid=grid, zone="FR", start=start, end=start + HOUR, gpu_count=1, power_kw_per_gpu=0.5
    )
    assert rep.energy_kwh == pytest.approx(0.5)
    assert (rep.baseline, rep.baseline_co2_kg, rep.co2_avoided_kg) == (None, None, None)


def _fleet(session, status="completed"):
    session.add_all(
        [
            Organization(id="acme", name="Acme", kind="enterprise", created_at=NOW),
            Organization(id="gamer", name="G", kind="gamer", created_at=NOW, wallet_address="x"),
        ]
    )
    session.flush()
    session.add(
        ComputeNode(
            id="n1",
            name="n",
            owner_id="gamer",
            kind="gamer",
            zone="IT",
            gpu_model="RTX4090",
            gpu_count=1,
            reserved_gpus=0,
            power_kw_per_gpu=0.45,
            price_per_gpu_hour_minor=45,
            currency="EUR",
            status="online",
            created_at=NOW,
        )
    )
    session.flush()
    session.add(
        Workload(
            id="w1",
            org_id="acme",
            name="job",
            gpu_count=1,
            duration_hours=3.0,
            status=status,
            node_id="n1",
            reroute_count=0,
            submitted_at=NOW,
            routed_at=NOW,
            started_at=NOW,
            finished_at=NOW + timedelta(hours=3),
            updated_at=NOW,
        )
    )
    session.commit()


def test_book_usage_posts_once_and_balances(session):
    _fleet(session)
    charge = book_usage(session=session, workload_id="w1", now=NOW)
    again = book_usage(session=session, workload_id="w1", now=NOW)
    session.commit()
    assert charge == again
    assert (charge.gross_minor, charge.fee_minor, charge.provider_share_minor) == (135, 20, 115)
    assert ledger.account_balance(session=session, account="provider_payable:gamer") == 115
    assert ledger.account_balance(session=session, account="customer_receivable:acme") == 135
    assert ledger.trial_balance(session=session)["trial_balance"] == 0


def test_book_usage_refuses_unfinished_workloads(session):
    _fleet(session, status="running")
    with pytest.raises(IllegalTransitionError, match="'running'"):
        book_usage(session=session, workload_id="w1", now=NOW)
