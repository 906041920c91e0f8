import multiprocessing

import pytest
from fakes_money import SolanaRpcShim
from money_helpers import add_completed, add_fleet, billing_worker
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import func, select

from store import ledger
from store.db import make_session_factory
from store.ledger import MeterEventRecord, PayoutIntent
from store.models import Transaction
from tools.integrations.solana.chain import LocalChain, demo_wallet

pytestmark = pytest.mark.postgres


def test_two_worker_processes_never_bill_or_pay_the_same_workload_twice(pg_engine):
    sessions = make_session_factory(pg_engine)
    with sessions() as s:
        add_fleet(s)
        for i in range(24):
            add_completed(s, f"w{i:02d}", node="g1" if i % 2 else "d1", hours=1 + i % 4)
        s.commit()
    with pg_engine.connect() as conn:
        schema = conn.exec_driver_sql("select current_schema()").scalar()
    payer = Keypair()
    backing = LocalChain(payer=payer)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    url = pg_engine.url.render_as_string(hide_password=False)
    with SolanaRpcShim(backing) as shim:
        procs = [
            ctx.Process(
                target=billing_worker, args=(url, schema, shim.url, bytes(payer), barrier, results)
            )
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        done = [results.get(timeout=90) for _ in procs]
        for p in procs:
            p.join(timeout=30)
    assert all(isinstance(d, list) for d in done), done
    assert [p.exitcode for p in procs] == [0, 0]
    a, b = map(set, done)
    assert a and b, "each worker should have taken some workloads"
    assert not a & b, f"both workers settled {sorted(a & b)}"
    assert a | b == {f"w{i:02d}" for i in range(24)}
    with sessions() as s:
        usages = s.scalars(select(Transaction).where(Transaction.kind == "usage")).all()
        assert sorted(t.workload_id for t in usages) == sorted(a | b)
        assert s.scalar(select(func.count()).select_from(MeterEventRecord)) == 24
        posted = s.scalars(select(PayoutIntent).where(PayoutIntent.status == "posted")).all()
        assert len(posted) == 12
        wallet = Pubkey.from_string(demo_wallet("gamer"))
        assert backing.svm.get_balance(wallet) == sum(p.lamports for p in posted)
        assert ledger.trial_balance(session=s)["trial_balance"] == 0
