"""Adversarial concurrency on the broker: real threads and processes, on SQLite and PostgreSQL.

Capacity is a database invariant (one conditional UPDATE per allocation plus a CHECK), and
workload state changes are compare-and-set, so parallel routes and reroutes can neither
oversubscribe a node nor record more than one move per decision.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from store import repo
from store.db import make_engine, make_session_factory
from store.models import ComputeNode, RoutingDecision, Workload
from store.seed import seed_fleet
from tools.broker.routing import reroute_workload, route_workload
from tools.broker.workloads import JobSpec, set_workload_status, submit_workload
from tools.errors import DomainError
from tools.grid.simulated import SimulatedGrid
from tools.incidents.detection import add_spike, grid_with_overrides

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
THREADS = 20


def _url(engine: Engine) -> tuple[str, str | None]:
    url = engine.url.render_as_string(hide_password=False)
    if engine.url.get_backend_name() != "postgresql":
        return url, None
    with engine.connect() as conn:
        return url, str(conn.exec_driver_sql("select current_schema()").scalar_one())


def _submit(engine: Engine, n: int, spec: JobSpec) -> list[str]:
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        if s.get(ComputeNode, "be-bru-l40s") is None:
            seed_fleet(session=s, now=NOW)
        return [
            submit_workload(session=s, org_id="acme-ai", name=f"job{i}", spec=spec, now=NOW).id
            for i in range(n)
        ]


def _in_threads(engine: Engine, jobs: list[Callable[[Any], str]]) -> list[str]:
    """Run each job in its own thread and transaction, all released at once; return outcomes."""
    sessions = make_session_factory(engine)
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = [""] * len(jobs)

    def run(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            with sessions.begin() as s:
                outcomes[i] = jobs[i](s)
        except DomainError as exc:
            outcomes[i] = f"refused: {type(exc).__name__}"
        except Exception as exc:  # noqa: BLE001 - reported in the outcome the test compares
            outcomes[i] = f"error: {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return outcomes


def _route(workload_id: str) -> Callable[[Any], str]:
    def job(s: Any) -> str:
        grid = SimulatedGrid(seed=7)
        return route_workload(session=s, grid=grid, workload_id=workload_id, now=NOW).outcome

    return job


def _check_invariant(engine: Engine) -> dict[str, int]:
    """Every node: allocated == GPUs of its routed/running workloads, within capacity."""
    sessions = make_session_factory(engine)
    with sessions() as s:
        held = repo.allocated_gpus_by_node(session=s)
        allocated = {}
        for node in s.scalars(select(ComputeNode)):
            assert node.allocated_gpus == held.get(node.id, 0), node.id
            assert node.allocated_gpus + node.reserved_gpus <= node.gpu_count, node.id
            allocated[node.id] = node.allocated_gpus
        return allocated


def test_parallel_routes_onto_the_last_gpus_never_oversubscribe(engine):
    big = _submit(engine, THREADS, JobSpec(gpu_count=8, duration_hours=4, allowed_zones=["BE"]))
    outcomes = _in_threads(engine, [_route(w) for w in big])
    assert Counter(outcomes) == {"routed": 1, "no_eligible_node": THREADS - 1}
    small = _submit(
        engine,
        THREADS,
        JobSpec(gpu_count=1, gpu_model="RTX4090", duration_hours=2, allowed_zones=["IT"]),
    )
    assert Counter(_in_threads(engine, [_route(w) for w in small])) == {
        "routed": 1,
        "no_eligible_node": THREADS - 1,
    }
    allocated = _check_invariant(engine)
    assert allocated["be-bru-l40s"] == 8 and allocated["it-mil-4090"] == 1


def test_parallel_routes_of_one_workload_record_one_decision(engine):
    (wid,) = _submit(engine, 1, JobSpec(gpu_count=2, duration_hours=3))
    outcomes = _in_threads(engine, [_route(wid) for _ in range(THREADS)])
    assert Counter(outcomes) == {"routed": 1, "refused: IllegalTransitionError": THREADS - 1}
    with make_session_factory(engine)() as s:
        decisions = s.scalars(select(RoutingDecision).where(RoutingDecision.workload_id == wid))
        assert [d.outcome for d in decisions] == ["routed"]
    _check_invariant(engine)


def test_parallel_reroutes_move_once_and_count_every_move(engine):
    (wid,) = _submit(engine, 1, JobSpec(gpu_count=2, duration_hours=3))
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        first = route_workload(session=s, grid=SimulatedGrid(seed=7), workload_id=wid, now=NOW)
        add_spike(
            session=s,
            zone=first.zone or "",
            carbon_factor=8.0,
            price_factor=1.0,
            hours=6,
            reason="test spike",
            now=NOW,
        )

    def reroute(s: Any) -> str:
        grid = grid_with_overrides(session=s, grid=SimulatedGrid(seed=7), now=NOW)
        return reroute_workload(session=s, grid=grid, workload_id=wid, now=NOW).outcome

    outcomes = Counter(_in_threads(engine, [reroute] * THREADS))
    assert outcomes["rerouted"] == 1 and outcomes["kept"] == THREADS - 1
    with sessions() as s:
        w = s.get(Workload, wid)
        assert w is not None and w.reroute_count == 1 and w.node_id != first.node_id
        moves = s.scalar(
            select(func.count())
            .select_from(RoutingDecision)
            .where(RoutingDecision.workload_id == wid, RoutingDecision.outcome == "rerouted")
        )
        assert moves == w.reroute_count
    allocated = _check_invariant(engine)
    assert allocated[first.node_id or ""] == 0


def test_completing_releases_the_gpus(engine):
    (wid,) = _submit(engine, 1, JobSpec(gpu_count=8, duration_hours=1, allowed_zones=["BE"]))
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        route_workload(session=s, grid=SimulatedGrid(seed=7), workload_id=wid, now=NOW)
    assert _check_invariant(engine)["be-bru-l40s"] == 8
    with sessions.begin() as s:
        set_workload_status(session=s, workload_id=wid, status="running", now=NOW)
        set_workload_status(session=s, workload_id=wid, status="completed", now=NOW)
    assert _check_invariant(engine)["be-bru-l40s"] == 0


def test_the_check_constraint_refuses_oversubscription_written_by_hand(engine):
    _submit(engine, 0, JobSpec(gpu_count=1, duration_hours=1))
    sessions = make_session_factory(engine)
    with pytest.raises(IntegrityError), sessions.begin() as s:
        s.execute(
            update(ComputeNode).where(ComputeNode.id == "be-bru-l40s").values(allocated_gpus=9)
        )
    assert repo.take_gpus is not None  # the conditional UPDATE is the only sanctioned writer
    with sessions.begin() as s:
        assert not repo.take_gpus(session=s, node_id="be-bru-l40s", gpus=9)
        assert repo.take_gpus(session=s, node_id="be-bru-l40s", gpus=8)
        assert not repo.take_gpus(session=s, node_id="be-bru-l40s", gpus=1)


def _route_in_process(url: str, schema: str | None, ids: list[str], barrier: Any, out: Any) -> None:
    engine = make_engine(url, schema=schema)
    sessions = make_session_factory(engine)
    barrier.wait(timeout=120)
    results = []
    for wid in ids:
        try:
            with sessions.begin() as s:
                d = route_workload(session=s, grid=SimulatedGrid(seed=7), workload_id=wid, now=NOW)
                results.append(d.outcome)
        except DomainError as exc:
            results.append(type(exc).__name__)
    engine.dispose()
    out.put(results)


def test_parallel_processes_never_oversubscribe(engine):
    ids = _submit(engine, 12, JobSpec(gpu_count=4, duration_hours=2, allowed_zones=["BE", "PT"]))
    url, schema = _url(engine)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_route_in_process, args=(url, schema, ids[i::4], barrier, out))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    results = [r for _ in procs for r in out.get(timeout=180)]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    # BE has 8 free GPUs and PT 4: three 4-GPU jobs fit, whatever the interleaving.
    assert Counter(results) == {"routed": 3, "no_eligible_node": 9}
    allocated = _check_invariant(engine)
    assert allocated["be-bru-l40s"] == 8 and allocated["pt-lis-a100"] == 4


def _reserve(workload_id: str, offset: int, gpus: int) -> Callable[[Any], str]:
    def job(s: Any) -> str:
        start = NOW + timedelta(hours=offset)
        ok = repo.reserve_gpus(
            session=s,
            workload_id=workload_id,
            node_id="be-bru-l40s",
            gpus=gpus,
            start=start,
            end=start + timedelta(hours=3),
            now=NOW,
        )
        return "reserved" if ok else "full"

    return job


def _hourly_peak(engine: Engine, hours: int = 12) -> list[int]:
    """GPUs busy on be-bru-l40s per hour from NOW: running work plus reservations."""
    with make_session_factory(engine)() as s:
        return repo.hourly_use(
            session=s,
            node_id="be-bru-l40s",
            start=NOW,
            end=NOW + timedelta(hours=hours),
            now=NOW,
        )


def test_parallel_reservations_never_overbook_any_hour(engine):
    ids = _submit(engine, THREADS, JobSpec(gpu_count=3, duration_hours=3, allowed_zones=["BE"]))
    outcomes = _in_threads(engine, [_reserve(w, 2 + i % 4, 3) for i, w in enumerate(ids)])
    assert set(outcomes) == {"reserved", "full"}, outcomes
    use = _hourly_peak(engine)
    assert max(use) <= 8 and max(use) >= 6, use
    with make_session_factory(engine)() as s:
        rows = repo.list_reservations(session=s)
        assert len(rows) == outcomes.count("reserved")
        # Every reservation that won fits beside the others in each of its hours.
        for hour in range(12):
            at = NOW + timedelta(hours=hour)
            assert sum(r.gpus for r in rows if r.start_at <= at < r.end_at) <= 8


def test_parallel_routes_and_reservations_share_a_node_safely(engine):
    now_ids = _submit(engine, 10, JobSpec(gpu_count=4, duration_hours=4, allowed_zones=["BE"]))
    later_ids = _submit(engine, 10, JobSpec(gpu_count=4, duration_hours=3, allowed_zones=["BE"]))
    jobs = [_route(w) for w in now_ids] + [_reserve(w, 1, 4) for w in later_ids]
    outcomes = _in_threads(engine, jobs)
    assert not [o for o in outcomes if o.startswith(("error", "refused"))], outcomes
    use = _hourly_peak(engine)
    assert max(use) <= 8, use
    allocated = _check_invariant(engine)
    assert allocated["be-bru-l40s"] == 4 * outcomes.count("routed")
