"""Build small fleets and completed workloads directly in the store for money tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.models import ComputeNode, Organization, Workload
from store.seed import wallet_for

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
                wallet_address=wallet_for("gamer"),
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
                wallet_address=wallet_for("gamer"),
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

    from store.db import make_engine, make_session_factory
    from tools.billing_cycle import MoneyServices, run_billing_worker
    from tools.grid.simulated import SimulatedGrid
    from tools.solana_chain import RpcChain
    from tools.stripe_billing import DemoBilling

    engine = make_engine(db_url, schema=schema)
    sessions = make_session_factory(engine)

    async def work():
        svc = MoneyServices(
            biller=DemoBilling(),
            chain=RpcChain(AsyncClient(rpc_url)),
            payer=Keypair.from_bytes(payer_bytes),
            grid=SimulatedGrid(seed=1),
        )
        barrier.wait()
        return await run_billing_worker(sessions=sessions, services=svc, now=NOW)

    try:
        results.put(asyncio.run(work()))
    except BaseException as exc:
        results.put(f"worker failed: {type(exc).__name__}: {exc}")
        raise
    finally:
        engine.dispose()
