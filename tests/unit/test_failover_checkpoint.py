"""Work that cannot checkpoint: kept while its node is online, restarted when it fails over."""

from datetime import timedelta

import pytest

from store import repo
from tests.unit.broker_fleet import NOW, StaticGrid, seed_fleet, submit
from tools.broker.recommendations import preview_reroute
from tools.broker.routing import reroute_workload, route_workload, set_workload_status
from tools.incidents.response import evaluate_reroutes


@pytest.fixture
def fleet(session):
    return seed_fleet(session)


def test_work_that_cannot_checkpoint_moves_only_when_its_node_cannot_run_it(fleet):
    grid = StaticGrid({"FR": (400, None), "DE": (500, None)})
    w = submit(fleet, gpu_count=1, allowed_zones=["FR", "DE"], movable=False)
    assert route_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW).zone == "FR"
    free = submit(fleet, gpu_count=1, allowed_zones=["FR", "DE"])
    assert route_workload(session=fleet, grid=grid, workload_id=free.id, now=NOW).zone == "FR"
    grid.values = {"FR": (400, None), "DE": (100, None)}  # far better than 25 %
    assert preview_reroute(session=fleet, grid=grid, workload_id=free.id, now=NOW).would_move
    assert not preview_reroute(session=fleet, grid=grid, workload_id=w.id, now=NOW).would_move
    kept = reroute_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW)
    assert (kept.outcome, kept.node_id) == ("kept", "fr-1")
    assert "cannot checkpoint" in kept.reason
    assert repo.get_workload(session=fleet, workload_id=w.id).reroute_count == 0
    repo.get_node(session=fleet, node_id="fr-1").status = "offline"
    fleet.flush()
    moved = reroute_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW)
    assert (moved.outcome, moved.node_id) == ("rerouted", "de-1")
    assert moved.reason.startswith("failover")


def test_failover_restarts_running_work_that_cannot_checkpoint(fleet):
    grid = StaticGrid({"FR": (100, None), "DE": (400, None)})
    later = NOW + timedelta(hours=3)
    jobs = {}
    for movable, deadline_h in ((True, 20), (False, 20), (False, 8)):
        w = submit(
            fleet,
            gpu_count=1,
            allowed_zones=["FR", "DE"],
            movable=movable,
            deadline=NOW + timedelta(hours=deadline_h),
        )
        route_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW)
        set_workload_status(session=fleet, workload_id=w.id, status="running", now=NOW)
        jobs[movable, deadline_h] = w.id
    repo.get_node(session=fleet, node_id="fr-1").status = "offline"
    fleet.flush()

    def hours_on_de():
        return repo.hourly_use(
            session=fleet, node_id="de-1", start=later, end=later + timedelta(hours=8), now=later
        )

    before = hours_on_de()
    moved = reroute_workload(session=fleet, grid=grid, workload_id=jobs[True, 20], now=later)
    assert (moved.outcome, moved.node_id) == ("rerouted", "de-1")
    assert "restarts" not in moved.reason
    kept_going = repo.get_workload(session=fleet, workload_id=jobs[True, 20])
    assert kept_going.started_at == NOW  # it resumes from its checkpoint: 3 h left
    after_resume = hours_on_de()
    assert [b - a for a, b in zip(before, after_resume, strict=True)] == [1] * 3 + [0] * 5

    restarted = reroute_workload(session=fleet, grid=grid, workload_id=jobs[False, 20], now=later)
    assert (restarted.outcome, restarted.node_id) == ("rerouted", "de-1")
    assert (
        restarted.reason.startswith("failover")
        and "restarts from the beginning" in restarted.reason
    )
    again = repo.get_workload(session=fleet, workload_id=jobs[False, 20])
    assert again.started_at == later and again.status == "running"
    after_restart = hours_on_de()
    assert [b - a for a, b in zip(after_resume, after_restart, strict=True)] == [1] * 6 + [0] * 2

    # All 6 hours from the restart end after its 8 h deadline: no node can take it.
    late = reroute_workload(session=fleet, grid=grid, workload_id=jobs[False, 8], now=later)
    assert late.outcome == "kept" and late.reason.startswith("no eligible node: fr-1 cannot run it")
    assert any("deadline" in r["reason"] for r in late.rejected if r["node_id"] == "de-1")
    stuck = repo.get_workload(session=fleet, workload_id=jobs[False, 8])
    assert (stuck.node_id, stuck.started_at) == ("fr-1", NOW)


def test_running_work_that_cannot_checkpoint_stays_while_its_node_is_online(fleet):
    grid = StaticGrid({"FR": (100, None), "DE": (400, None)})
    w = submit(
        fleet,
        gpu_count=1,
        allowed_zones=["FR", "DE"],
        movable=False,
        max_carbon_intensity=300,
        deadline=NOW + timedelta(hours=8),
    )
    route_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW)
    set_workload_status(session=fleet, workload_id=w.id, status="running", now=NOW)
    later = NOW + timedelta(hours=3)
    # FR is now above the job's limit and DE far cleaner, but fr-1 is online: no restart, and
    # no "stuck" verdict either (a restart could not finish by the deadline anyway).
    grid.values = {"FR": (350, None), "DE": (100, None)}
    assert not preview_reroute(session=fleet, grid=grid, workload_id=w.id, now=later).would_move
    kept = reroute_workload(session=fleet, grid=grid, workload_id=w.id, now=later)
    assert kept.outcome == "kept" and "cannot checkpoint" in kept.reason
    assert [c["node_id"] for c in kept.candidates] == ["de-1"]
    stays = repo.get_workload(session=fleet, workload_id=w.id)
    assert (stays.node_id, stays.started_at, stays.reroute_count) == ("fr-1", NOW, 0)


def test_an_incident_evaluates_what_the_reroute_will_ask(fleet):
    grid = StaticGrid({"FR": (100, None), "DE": (400, None)})
    ids = {}
    for movable in (True, False):
        w = submit(
            fleet,
            gpu_count=2,
            allowed_zones=["FR", "DE"],
            movable=movable,
            deadline=NOW + timedelta(hours=8),
        )
        route_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW)
        set_workload_status(session=fleet, workload_id=w.id, status="running", now=NOW)
        ids[movable] = w.id
    repo.get_node(session=fleet, node_id="fr-1").status = "offline"
    fleet.flush()
    later = NOW + timedelta(hours=3)
    rows = evaluate_reroutes(session=fleet, grid=grid, workload_ids=list(ids.values()), now=later)
    best = {r["workload_id"]: r["best_node_id"] for r in rows}
    # Checkpointed work needs its 3 h left (done by the deadline on de-1); work that restarts
    # needs all 6, which end after it: the evaluation and the reroute agree on both.
    assert best == {ids[True]: "de-1", ids[False]: None}
    moved = reroute_workload(session=fleet, grid=grid, workload_id=ids[True], now=later)
    kept = reroute_workload(session=fleet, grid=grid, workload_id=ids[False], now=later)
    assert (moved.outcome, moved.node_id, kept.outcome) == ("rerouted", "de-1", "kept")
