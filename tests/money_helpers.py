"""Build small fleets and completed workloads directly in the store for money tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.models import ComputeNode, Organization, Workload
from tools.integrations.solana.chain import demo_wallet

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)


def add_fleet(session, *, gamer_price: int = 45, dc_price: int = 250) -> None:
    session.add_all(
        [
            Organization(
                id="acme",
                name="Acme",
                kind="enterprise",
                created_at=NOW,
                email="billing@acme.example",
            ),
            Organization(id="beta", name="Beta", kind="enterprise", created_at=NOW),
            Organization(
                id="gamer",
                name="G",
                kind="gamer",
                created_at=NOW,
                wallet_address=demo_wallet("gamer"),
            ),
            Organization(id="dc", name="DC", kind="datacenter", created_at=NOW),
        ]
    )
    session.flush()
    session.add_all(
        [
            ComputeNode(
                id="g1",
                name="g",
                owner_id="gamer",
                kind="gamer",
                zone="IT",
                gpu_model="RTX4090",
                gpu_count=1,
                reserved_gpus=0,
                power_kw_per_gpu=0.45,
                price_per_gpu_hour_minor=gamer_price,
                currency="EUR",
                status="online",
                wallet_address=demo_wallet("gamer"),
                created_at=NOW,
            ),
            ComputeNode(
                id="d1",
                name="d",
                owner_id="dc",
                kind="datacenter",
                zone="FR",
                gpu_model="H100",
                gpu_count=8,
                reserved_gpus=0,
                power_kw_per_gpu=0.7,
                price_per_gpu_hour_minor=dc_price,
                currency="EUR",
                status="online",
                created_at=NOW,
            ),
        ]
    )
    session.flush()


def add_completed(
    session, wid: str, *, node: str = "g1", org: str = "acme", hours: float = 3.0, gpus: int = 1
) -> Workload:
    w = Workload(
        id=wid,
        org_id=org,
        name=wid,
        gpu_count=gpus,
        duration_hours=hours,
        status="completed",
        node_id=node,
        reroute_count=0,
        submitted_at=NOW,
        routed_at=NOW,
        started_at=NOW,
        finished_at=NOW + timedelta(hours=hours),
        updated_at=NOW,
    )
    session.add(w)
    session.flush()
    return w


def billing_worker(db_url, schema, rpc_url, payer_bytes, barrier, results):
    """Run one billing worker process against PostgreSQL and the Solana RPC shim."""
    import asyncio

    from solana.rpc.async_api import AsyncClient
    from solders.keypair import Keypair

    from graphs.billing import run_billing_worker
    from graphs.context import BillingContext
    from store.db import make_engine, make_session_factory
    from tools.clock import FixedClock
    from tools.grid.simulated import SimulatedGrid
    from tools.integrations.solana.chain import RpcChain
    from tools.integrations.solana.rail import SolanaRail
    from tools.integrations.stripe import DemoBilling
    from tools.money.settlement import MoneyServices

    engine = make_engine(db_url, schema=schema)
    sessions = make_session_factory(engine)

    async def work():
        svc = MoneyServices(
            biller=DemoBilling(),
            rail=SolanaRail(RpcChain(AsyncClient(rpc_url)), Keypair.from_bytes(payer_bytes)),
            grid=SimulatedGrid(seed=1),
        )
        barrier.wait()
        context = BillingContext(sessions=sessions, money=svc, clock=FixedClock(NOW))
        return await run_billing_worker(context=context, engine=engine)

    try:
        results.put(asyncio.run(work()))
    except BaseException as exc:
        results.put(f"worker failed: {type(exc).__name__}: {exc}")
        raise
    finally:
        engine.dispose()
