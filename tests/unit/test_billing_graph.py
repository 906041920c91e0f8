import asyncio

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from money_helpers import NOW, add_completed, add_fleet
from solders.keypair import Keypair
from sqlalchemy import select

from graphs.billing import build_billing_graph
from graphs.context import BillingContext
from store.db import make_session_factory
from store.ledger import ChainSubmission
from tools.clock import FixedClock
from tools.errors import IllegalTransitionError
from tools.grid.simulated import SimulatedGrid
from tools.integrations.solana.chain import LocalChain, demo_wallet
from tools.integrations.solana.rail import SolanaRail
from tools.integrations.stripe import DemoBilling
from tools.money.payouts import PayoutPolicy
from tools.money.settlement import MoneyServices

WALLET = demo_wallet("gamer")


def _setup(engine, threshold=100):
    sessions = make_session_factory(engine)
    with sessions() as s:
        add_fleet(s)
        add_completed(s, "w1", node="g1", hours=4)  # share 153 > threshold 100
        add_completed(s, "w2", node="g1", hours=1)  # share 39: no approval needed
        s.commit()
    payer = Keypair()
    money = MoneyServices(
        biller=DemoBilling(),
        rail=SolanaRail(LocalChain(payer=payer), payer),
        grid=SimulatedGrid(seed=1),
        policy=PayoutPolicy(approval_threshold_minor=threshold),
    )
    return sessions, BillingContext(sessions=sessions, money=money, clock=FixedClock(NOW))


def _cfg(wid):
    return {"configurable": {"thread_id": f"billing:{wid}"}, "recursion_limit": 8}


def _transfers(sessions):
    with sessions() as s:
        return len(
            s.scalars(
                select(ChainSubmission).where(
                    ChainSubmission.purpose == "payout", ChainSubmission.status == "finalized"
                )
            ).all()
        )


def test_small_payouts_run_straight_through(sqlite_engine):
    sessions, ctx = _setup(sqlite_engine)
    graph = build_billing_graph(checkpointer=InMemorySaver())
    out = asyncio.run(graph.ainvoke({"workload_id": "w2"}, _cfg("w2"), context=ctx))
    assert out["payout"]["status"] == "posted" and "__interrupt__" not in out
    assert out["profitability"]["fee_minor"] == out["settlement"]["fee_minor"]


def test_approval_pauses_survives_restart_and_pays_once(sqlite_engine):
    sessions, ctx = _setup(sqlite_engine)
    saver = InMemorySaver()
    graph = build_billing_graph(checkpointer=saver)
    out = asyncio.run(graph.ainvoke({"workload_id": "w1"}, _cfg("w1"), context=ctx))
    assert out["__interrupt__"][0].value["amount_minor"] == 153
    assert out["payout"]["status"] == "awaiting_approval" and _transfers(sessions) == 0
    # a restarted process (new graph object, same checkpointer) is still paused
    graph2 = build_billing_graph(checkpointer=saver)
    assert asyncio.run(graph2.aget_state(_cfg("w1"))).next == ("await_approval",)
    done = asyncio.run(
        graph2.ainvoke(Command(resume={"approve": True, "by": "ops"}), _cfg("w1"), context=ctx)
    )
    assert done["payout"]["status"] == "posted" and done["payout"]["approved_by"] == "ops"
    # resuming again does not pay again
    asyncio.run(
        graph2.ainvoke(Command(resume={"approve": True, "by": "ops"}), _cfg("w1"), context=ctx)
    )
    assert _transfers(sessions) == 1
    assert asyncio.run(ctx.money.rail.chain.balance(WALLET)) == 153 * 50_000


def test_rejection_moves_no_money(sqlite_engine):
    sessions, ctx = _setup(sqlite_engine)
    graph = build_billing_graph(checkpointer=InMemorySaver())
    asyncio.run(graph.ainvoke({"workload_id": "w1"}, _cfg("w1"), context=ctx))
    out = asyncio.run(
        graph.ainvoke(Command(resume={"approve": False, "by": "ops"}), _cfg("w1"), context=ctx)
    )
    assert out["payout"]["status"] == "rejected"
    assert _transfers(sessions) == 0 and asyncio.run(ctx.money.rail.chain.balance(WALLET)) == 0


def test_graph_shape():
    mermaid = build_billing_graph().get_graph().draw_mermaid()
    for edge in ("settle_money", "await_approval", "apply_decision", "report_profit"):
        assert edge in mermaid


def test_one_settle_path_keeps_approvals_in_the_store_database(engine):
    """Two replicas on one database: one settles and pauses, the other sees it and approves."""
    from graphs.billing import decide_payout_approval, settle_workloads
    from store.db import make_engine

    sessions, ctx = _setup(engine)
    first = asyncio.run(settle_workloads(["w1", "w2"], context=ctx, engine=engine))
    paused = {r["workload_id"]: r["payout"]["status"] for r in first}
    assert paused == {"w1": "awaiting_approval", "w2": "posted"}
    # A second replica: its own engine and context on the same database.
    other = make_engine(engine.url.render_as_string(hide_password=False))
    if engine.url.get_backend_name() == "postgresql":
        with engine.connect() as conn:
            schema = conn.exec_driver_sql("select current_schema()").scalar_one()
        other = make_engine(engine.url.render_as_string(hide_password=False), schema=schema)
    ctx2 = BillingContext(
        sessions=make_session_factory(other), money=ctx.money, clock=FixedClock(NOW)
    )
    again = asyncio.run(settle_workloads(["w1"], context=ctx2, engine=other))
    assert again[0]["paused"] == "awaiting_approval"
    payout_id = again[0]["payout"]["id"]
    decided = asyncio.run(
        decide_payout_approval(payout_id, approve=True, by="ops", context=ctx2, engine=other)
    )
    assert decided["status"] == "posted" and decided["approved_by"] == "ops"
    assert asyncio.run(ctx.money.rail.chain.balance(WALLET)) == (153 + 39) * 50_000
    other.dispose()
    with pytest.raises(IllegalTransitionError, match="posted"):
        asyncio.run(
            decide_payout_approval(payout_id, approve=True, by="ops", context=ctx, engine=engine)
        )
    assert _transfers(sessions) == 2
