"""Benchmark: route + database write latency with 1,000 nodes on SQLite (and PostgreSQL if up).

Each iteration submits a 1-GPU workload, routes it (ranking all 1,000 nodes, locking, writing the
decision with every candidate) and commits. Prints p50/p90/p99 in milliseconds.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import ComputeNode, Organization
from tools.broker.routing import JobSpec, route_workload, submit_workload
from tools.grid import ZONE_CODES, SimulatedGrid

NODES = 1_000
ROUTES = 200
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def _bench(url: str, schema: str | None = None) -> list[float]:
    engine = make_engine(url, schema=schema)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        s.add_all(
            [
                Organization(id="acme", name="Acme", kind="enterprise", created_at=NOW),
                Organization(id="dc", name="DC", kind="datacenter", created_at=NOW),
            ]
        )
        s.flush()
        s.add_all(
            ComputeNode(
                id=f"n{i:04d}",
                name=f"n{i}",
                owner_id="dc",
                kind="datacenter",
                zone=ZONE_CODES[i % len(ZONE_CODES)],
                gpu_model="H100",
                gpu_count=8,
                reserved_gpus=i % 4,
                power_kw_per_gpu=0.7,
                price_per_gpu_hour_minor=200 + i % 50,
                currency="EUR",
                status="online",
                created_at=NOW,
            )
            for i in range(NODES)
        )
    grid = SimulatedGrid(seed=7)
    spec = JobSpec(gpu_count=1, duration_hours=4)
    times: list[float] = []
    for _ in range(ROUTES):
        t0 = time.perf_counter()
        with sessions.begin() as s:
            w = submit_workload(session=s, org_id="acme", name="bench", spec=spec, now=NOW)
            route_workload(session=s, grid=grid, workload_id=w.id, now=NOW)
        times.append((time.perf_counter() - t0) * 1e3)
    engine.dispose()
    return times


def _report(label: str, times: list[float]) -> None:
    q = statistics.quantiles(times, n=100)
    print(
        f"{label}: {len(times)} routes over {NODES} nodes: "
        f"p50 {statistics.median(times):.1f} ms, p90 {q[89]:.1f} ms, p99 {q[98]:.1f} ms"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _report("sqlite", _bench(f"sqlite:///{Path(tmp) / 'bench.db'}"))
    pg = sys.argv[1] if len(sys.argv) > 1 else "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        admin = make_engine(pg)
        with admin.begin() as c:
            c.execute(text("DROP SCHEMA IF EXISTS bench_route CASCADE; CREATE SCHEMA bench_route"))
        _report("postgresql", _bench(pg, schema="bench_route"))
        with admin.begin() as c:
            c.execute(text("DROP SCHEMA bench_route CASCADE"))
    except Exception as exc:  # noqa: BLE001 - the PostgreSQL half is optional
        print(f"postgresql: skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")


if __name__ == "__main__":
    main()
