import asyncio

from fakes_money import SolanaRpcShim
from money_helpers import NOW, add_completed, add_fleet
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from sqlalchemy import select

from store import ledger
from store.ledger import ChainSubmission
from tools.grid.simulated import SimulatedGrid
from tools.integrations.solana.chain import LocalChain, RpcChain, demo_wallet
from tools.integrations.solana.rail import SolanaRail
from tools.integrations.stripe import DemoBilling
from tools.money.payouts import PayoutPolicy
from tools.money.receipts import verify_receipt
from tools.money.settlement import MoneyServices, settle_workload

WALLET = demo_wallet("gamer")


class Crash(Exception):
    pass


def test_payouts_and_receipts_through_async_client_and_json_rpc(session):
    add_fleet(session)
    add_completed(session, "w1", node="g1", hours=4)
    add_completed(session, "w2", node="g1", hours=2)
    session.commit()
    payer = Keypair()
    backing = LocalChain(payer=payer)

    def crash_after_sign(point):
        if point == "payout_signed":
            raise Crash(point)

    async def scenario():
        chain = RpcChain(AsyncClient(shim.url), label="solana rpc (test shim)")
        svc = MoneyServices(
            biller=DemoBilling(),
            rail=SolanaRail(chain, payer),
            grid=SimulatedGrid(seed=2),
            policy=PayoutPolicy(),
        )
        s1 = await settle_workload(session=session, services=svc, workload_id="w1", now=NOW)
        # w2: signed and persisted, then the process dies and the blockhash expires
        try:
            await settle_workload(
                session=session, services=svc, workload_id="w2", now=NOW, fault=crash_after_sign
            )
        except Crash:
            session.rollback()
        backing.expire_blockhash()
        s2 = await settle_workload(session=session, services=svc, workload_id="w2", now=NOW)
        verdict = await verify_receipt(session=session, rail=svc.rail, receipt_id=s1.receipt.id)
        balance = await chain.balance(WALLET)
        return s1, s2, verdict, balance

    with SolanaRpcShim(backing) as shim:
        s1, s2, verdict, balance = asyncio.run(scenario())
    assert s1.payout.status == "posted" and s2.payout.status == "posted"
    assert balance == (153 + 77) * 50_000
    assert verdict.valid and verdict.chain == "solana rpc (test shim)"
    attempts = sorted(
        (s.attempt, s.status)
        for s in session.scalars(
            select(ChainSubmission).where(ChainSubmission.ref_id == s2.payout.id)
        )
    )
    assert attempts == [(1, "expired"), (2, "finalized")]
    assert ledger.trial_balance(session=session)["trial_balance"] == 0
    assert {
        "getLatestBlockhash",
        "sendTransaction",
        "getSignatureStatuses",
        "getBlockHeight",
        "getBalance",
    } <= set(shim.calls)
