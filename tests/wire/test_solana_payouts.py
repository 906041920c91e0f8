import asyncio
import base64

import pytest
from money_helpers import NOW, add_completed, add_fleet
from solders.keypair import Keypair
from sqlalchemy import select

from store import ledger
from store.ledger import ChainSubmission, PayoutIntent
from store.models import CarbonReceipt, ComputeNode
from tools.grid.simulated import SimulatedGrid
from tools.integrations.solana.chain import LocalChain, demo_wallet
from tools.integrations.solana.rail import SolanaRail
from tools.integrations.stripe import DemoBilling
from tools.money.payouts import PayoutPolicy, PayoutPolicyError, check_payout
from tools.money.receipts import verify_receipt
from tools.money.settlement import MoneyServices, settle_workload

WALLET = demo_wallet("gamer")


class Crash(Exception):
    pass


def crash_at(point):
    def hook(p):
        if p == point:
            raise Crash(p)

    return hook


def services(chain=None, payer=None, policy=None):
    payer = payer or Keypair()
    return MoneyServices(
        biller=DemoBilling(),
        rail=SolanaRail(chain or LocalChain(payer=payer), payer),
        grid=SimulatedGrid(seed=1),
        policy=policy or PayoutPolicy(),
    )


def settle(session, svc, wid, fault=None):
    kwargs = {"fault": fault} if fault else {}
    return asyncio.run(
        settle_workload(session=session, services=svc, workload_id=wid, now=NOW, **kwargs)
    )


def test_gamer_workload_is_billed_paid_and_receipted(session):
    add_fleet(session)
    add_completed(session, "w1", node="g1", hours=4)
    session.commit()
    svc = services()
    s = settle(session, svc, "w1")
    assert (s.gross_minor, s.fee_minor, s.provider_share_minor) == (180, 27, 153)
    assert s.payout.status == "posted" and s.payout.lamports == 153 * 50_000
    assert asyncio.run(svc.rail.chain.balance(WALLET)) == 153 * 50_000
    assert ledger.account_balance(session=session, account="provider_payable:gamer") == 0
    assert ledger.trial_balance(session=session)["trial_balance"] == 0
    assert s.receipt.status == "anchored" and s.receipt.chain == "local chain"
    v = asyncio.run(verify_receipt(session=session, rail=svc.rail, receipt_id=s.receipt.id))
    assert v.valid and v.memo == f"cr1:{s.receipt.id}:{s.receipt.receipt_hash}"
    again = settle(session, svc, "w1")
    assert again.payout.status == "posted"
    assert asyncio.run(svc.rail.chain.balance(WALLET)) == 153 * 50_000
    assert len(session.scalars(select(ChainSubmission)).all()) == 2


def test_datacenter_workload_gets_a_receipt_but_no_solana_payout(session):
    add_fleet(session)
    add_completed(session, "w1", node="d1", hours=2, gpus=4)
    session.commit()
    s = settle(session, services(), "w1")
    assert s.payout is None and s.gross_minor == 2000 and s.receipt.status == "anchored"
    assert ledger.account_balance(session=session, account="provider_payable:dc") == 1700


def test_rebroadcasting_the_same_signed_bytes_moves_money_once(session):
    add_fleet(session)
    add_completed(session, "w1", node="g1", hours=4)
    session.commit()
    svc = services()
    with pytest.raises(Crash):
        settle(session, svc, "w1", crash_at("payout_signed"))
    session.rollback()
    sub = session.scalars(select(ChainSubmission)).one()
    raw = base64.b64decode(sub.signed_tx)
    for _ in range(12):
        asyncio.run(svc.rail.chain.send(raw))
    assert asyncio.run(svc.rail.chain.balance(WALLET)) == 153 * 50_000
    s = settle(session, svc, "w1")
    assert s.payout.status == "posted"
    assert asyncio.run(svc.rail.chain.balance(WALLET)) == 153 * 50_000
    assert [x.attempt for x in session.scalars(select(ChainSubmission))] == [1, 1]


def test_resign_only_after_expiry_and_proven_absence(session):
    add_fleet(session)
    add_completed(session, "w1", node="g1", hours=4)
    add_completed(session, "w2", node="g1", hours=2)
    session.commit()
    svc = services()
    # w1: signed, never sent, blockhash expires -> absent + expired -> new signature
    with pytest.raises(Crash):
        settle(session, svc, "w1", crash_at("payout_signed"))
    session.rollback()
    svc.rail.chain.expire_blockhash()
    settle(session, svc, "w1")
    subs = session.scalars(select(ChainSubmission).where(ChainSubmission.purpose == "payout")).all()
    assert sorted((s.attempt, s.status) for s in subs) == [(1, "expired"), (2, "finalized")]
    # w2: sent, then the blockhash expires -> signature is found finalized -> no re-sign
    with pytest.raises(Crash):
        settle(session, svc, "w2", crash_at("payout_sent"))
    session.rollback()
    svc.rail.chain.expire_blockhash()
    settle(session, svc, "w2")
    w2 = session.get(
        PayoutIntent,
        next(p.id for p in session.scalars(select(PayoutIntent)) if p.workload_id == "w2"),
    )
    w2_subs = session.scalars(select(ChainSubmission).where(ChainSubmission.ref_id == w2.id)).all()
    assert [(s.attempt, s.status) for s in w2_subs] == [(1, "finalized")]
    assert asyncio.run(svc.rail.chain.balance(WALLET)) == (153 + 77) * 50_000
    assert ledger.trial_balance(session=session)["trial_balance"] == 0


def test_over_limit_and_wrong_recipient_payouts_are_refused(session):
    add_fleet(session)
    add_completed(session, "w1", node="g1", hours=4)
    session.commit()
    settle(session, services(), "w1")
    add_completed(session, "w2", node="g1", hours=4)
    session.commit()
    from tools.money.usage import book_usage

    book_usage(session=session, workload_id="w2", now=NOW)
    session.commit()
    refused = 0
    rail = services().rail
    for i in range(520):
        kind = i % 4
        wallet = WALLET if kind else str(Keypair().pubkey())
        amount = {0: 153, 1: 153 + 1 + i, 2: 152 - (i % 100), 3: 153 * (2 + i)}[kind]
        expected = 153 if kind != 3 else amount  # kind 3: exact "expected" but above payable
        with pytest.raises(PayoutPolicyError):
            check_payout(
                session=session,
                org_id="gamer",
                wallet_address=wallet,
                amount_minor=amount,
                expected_minor=expected,
                policy=PayoutPolicy(),
                rail=rail,
            )
        session.rollback()
        refused += 1
    assert refused == 520
    check_payout(
        session=session,
        org_id="gamer",
        wallet_address=WALLET,
        amount_minor=153,
        expected_minor=153,
        policy=PayoutPolicy(),
        rail=rail,
    )


def test_payouts_above_threshold_wait_and_caps_go_to_review(session):
    add_fleet(session, gamer_price=5_000)
    add_completed(session, "w1", node="g1", hours=2)  # share 8500 > threshold 5000
    add_completed(session, "w2", node="g1", hours=20)  # share 85000 > cap 50000
    session.commit()
    svc = services()
    s1 = settle(session, svc, "w1")
    s2 = settle(session, svc, "w2")
    assert s1.payout.status == "awaiting_approval" and s2.payout.status == "needs_review"
    assert asyncio.run(svc.rail.chain.balance(WALLET)) == 0
    assert s1.receipt.status == "anchored"


def test_tampered_receipt_fails_verification(session):
    add_fleet(session)
    add_completed(session, "w1", node="d1", hours=2)
    session.commit()
    svc = services()
    s = settle(session, svc, "w1")
    r = session.get(CarbonReceipt, s.receipt.id)
    r.payload = {**r.payload, "co2_kg": 0.0}
    session.commit()
    v = asyncio.run(verify_receipt(session=session, rail=svc.rail, receipt_id=r.id))
    assert not v.valid and v.checks["hash_matches_document"] is False


def test_local_chain_journal_survives_a_new_process(session, tmp_path):
    add_fleet(session)
    add_completed(session, "w1", node="g1", hours=4)
    session.commit()
    payer = Keypair()
    journal = tmp_path / "chain" / "journal.jsonl"
    svc = services(chain=LocalChain(payer=payer, journal=journal), payer=payer)
    s = settle(session, svc, "w1")
    later = LocalChain(payer=payer, journal=journal)
    assert asyncio.run(later.balance(WALLET)) == 153 * 50_000
    v = asyncio.run(
        verify_receipt(session=session, rail=SolanaRail(later, payer), receipt_id=s.receipt.id)
    )
    assert v.valid
    # bytes signed in the first process cannot land again in the second
    sub = session.scalars(select(ChainSubmission).where(ChainSubmission.purpose == "payout")).one()
    asyncio.run(later.send(base64.b64decode(sub.signed_tx)))
    assert asyncio.run(later.balance(WALLET)) == 153 * 50_000


def test_owed_money_to_an_unregistered_wallet_goes_to_review_not_to_the_wallet(session):
    add_fleet(session)
    session.get(ComputeNode, "g1").wallet_address = str(
        Keypair().pubkey()
    )  # not the registered one
    add_completed(session, "w1", node="g1", hours=4)
    session.commit()
    svc = services()
    s = settle(session, svc, "w1")
    assert s.payout.status == "needs_review" and "registered wallet" in s.payout.reason
    assert asyncio.run(svc.rail.chain.balance(s.payout.wallet_address)) == 0
    assert ledger.account_balance(session=session, account="provider_payable:gamer") == 153
    assert s.receipt.status == "anchored"


def test_seeded_gamer_wallets_are_the_derived_demo_wallets():
    from store.seed import DEMO_WALLETS

    assert DEMO_WALLETS == {owner: demo_wallet(owner) for owner in DEMO_WALLETS}
