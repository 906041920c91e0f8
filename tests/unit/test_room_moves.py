"""Running work moves to make room for work starting now: the hourly joint re-plan in the store.

Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from store import repo
from store.models import RoutingDecision
from tests.unit.test_joint_replan import HOUR, NOW, FlatGrid, _node, run_joint, seed
from tools.broker.replan import plan_jointly
from tools.broker.replan_apply import apply_order, apply_slot
from tools.broker.room_moves import running_work
from tools.broker.routing import route_workload, submit_workload
from tools.broker.workloads import JobSpec


def _setup(session, *, reroutes: int = 0, movable: bool = True) -> tuple[str, str]:
    """fr-1 (clean) runs a 1-GPU job for 10 more hours; an 8-GPU job without slack arrives."""
    seed(session)
    session.add(_node("es-1", "ES"))
    session.flush()
    small = submit_workload(
        session=session,
        org_id="acme",
        name="small",
        spec=JobSpec(gpu_count=1, duration_hours=11, deadline=NOW + 10 * HOUR, movable=movable),
        now=NOW - HOUR,
    )
    route_workload(session=session, grid=FlatGrid(), workload_id=small.id, now=NOW - HOUR)
    repo.get_workload(session=session, workload_id=small.id).reroute_count = reroutes
    large = submit_workload(
        session=session,
        org_id="acme",
        name="large",
        spec=JobSpec(gpu_count=8, duration_hours=10, deadline=NOW + 10 * HOUR),
        now=NOW,
    )
    session.commit()
    assert repo.get_workload(session=session, workload_id=small.id).node_id == "fr-1"
    return small.id, large.id


def _reroutes(session, workload_id: str) -> list[RoutingDecision]:
    stmt = select(RoutingDecision).where(
        RoutingDecision.workload_id == workload_id, RoutingDecision.kind == "reroute"
    )
    return list(session.scalars(stmt))


def test_running_work_moves_off_the_clean_node_for_a_large_job_without_slack(session):
    small, large = _setup(session)
    decisions = run_joint(session, FlatGrid(), NOW)
    session.commit()
    moved = repo.get_workload(session=session, workload_id=small)
    big = repo.get_workload(session=session, workload_id=large)
    assert (big.status, big.node_id) == ("routed", "fr-1")
    assert moved.node_id in {"de-1", "es-1"} and moved.status == "routed"
    assert moved.reroute_count == 1
    [record] = _reroutes(session, small)
    assert (record.outcome, record.previous_node_id, record.node_id) == (
        "rerouted",
        "fr-1",
        moved.node_id,
    )
    assert f"makes room on fr-1 for {large}" in record.reason
    assert {c["node_id"] for c in record.candidates} >= {"de-1", "es-1"}
    assert "moved running work to make room" in decisions[large].reason
    nodes = {n.id: n for n in repo.list_nodes(session=session)}
    assert nodes["fr-1"].allocated_gpus == 8
    assert nodes[moved.node_id].allocated_gpus == 1


def test_no_move_is_made_when_one_cannot_be_made_any_more(session):
    small, large = _setup(session)
    grid = FlatGrid()
    slots = apply_order(plan_jointly(session=session, grid=grid, now=NOW), NOW)
    [slot] = [s for s in slots if s.workload_id == large]
    [move] = slot.room
    # Another tenant fills the move's target between the plan and its application.
    assert repo.take_gpus(session=session, node_id=move.to_node, gpus=8)
    decision = apply_slot(session=session, grid=grid, slot=slot, now=NOW)
    session.commit()
    kept = repo.get_workload(session=session, workload_id=small)
    assert (kept.node_id, kept.reroute_count) == ("fr-1", 0)
    assert _reroutes(session, small) == []
    assert "running work was not moved to make room" in decision.reason
    big = repo.get_workload(session=session, workload_id=large)
    assert big.node_id not in {"fr-1", move.to_node}


def test_moves_are_undone_when_the_workload_cannot_take_the_freed_node(session):
    small, large = _setup(session)
    grid = FlatGrid()
    slots = apply_order(plan_jointly(session=session, grid=grid, now=NOW), NOW)
    [slot] = [s for s in slots if s.workload_id == large]
    # Another tenant takes a GPU on fr-1 itself: moving the small job no longer frees 8.
    assert repo.take_gpus(session=session, node_id="fr-1", gpus=1)
    decision = apply_slot(session=session, grid=grid, slot=slot, now=NOW)
    session.commit()
    kept = repo.get_workload(session=session, workload_id=small)
    assert (kept.node_id, kept.reroute_count) == ("fr-1", 0)
    assert _reroutes(session, small) == []
    assert "did not take fr-1" in decision.reason
    assert repo.get_workload(session=session, workload_id=large).node_id in {"de-1", "es-1"}


def test_a_moved_routed_job_keeps_the_hours_it_has_left(session):
    small, _ = _setup(session)
    run_joint(session, FlatGrid(), NOW)
    session.commit()
    moved = repo.get_workload(session=session, workload_id=small)
    end = NOW + 20 * HOUR
    use = repo.hourly_use(session=session, node_id=moved.node_id, start=NOW, end=end, now=NOW)
    assert use == [1] * 10 + [0] * 10  # routed an hour before NOW for 11 h: 10 h are left


def test_running_work_out_of_moves_stays(session):
    small, large = _setup(session, reroutes=5)
    run_joint(session, FlatGrid(), NOW)
    session.commit()
    assert repo.get_workload(session=session, workload_id=small).node_id == "fr-1"
    assert repo.get_workload(session=session, workload_id=large).node_id in {"de-1", "es-1"}


def test_work_that_cannot_checkpoint_stays_where_it_runs(session):
    small, large = _setup(session, movable=False)
    running = running_work(
        session=session, nodes=repo.list_nodes(session=session), issued=NOW, now=NOW
    )
    assert small not in {r.key for r in running}
    run_joint(session, FlatGrid(), NOW)
    session.commit()
    kept = repo.get_workload(session=session, workload_id=small)
    assert (kept.node_id, kept.reroute_count, kept.movable) == ("fr-1", 0, False)
    assert _reroutes(session, small) == []
    assert repo.get_workload(session=session, workload_id=large).node_id in {"de-1", "es-1"}
