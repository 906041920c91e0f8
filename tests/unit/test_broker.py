from datetime import datetime, timedelta

import pytest

from store import repo
from tests.unit.broker_fleet import CARBON_ONLY, GRID, NOW, StaticGrid, seed_fleet, submit
from tools.broker.routing import (
    MAX_REROUTES,
    JobSpec,
    recommend,
    reroute_workload,
    route_workload,
    set_workload_status,
    submit_workload,
)
from tools.broker.scoring import DEFAULT_WEIGHTS
from tools.errors import (
    IllegalTransitionError,
    InvalidInputError,
    NotFoundError,
    RerouteRefusedError,
)


@pytest.fixture
def fleet(session):
    return seed_fleet(session)


def test_route_picks_lowest_score_and_records_every_candidate(fleet):
    grid = StaticGrid(GRID)
    w = submit(fleet)
    d = route_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW)
    scores = {c["node_id"]: c["score"] for c in d.candidates}
    assert d.outcome == "routed" and d.node_id == min(scores, key=scores.get) == "fr-1"
    assert d.zone == "FR"
    # FR: 0.6*60/500 + 0.3*90/100 + 0.1*(2/8)
    assert scores["fr-1"] == pytest.approx(0.072 + 0.27 + 0.025)
    rejected = {r["node_id"]: r["reason"] for r in d.rejected}
    assert rejected == {"be-1": "node is offline", "nl-1": "only 2 of the 4 GPUs needed are free"}
    assert len(repo.list_decisions(session=fleet, workload_id=w.id)) == 1
    got = repo.get_workload(session=fleet, workload_id=w.id)
    assert got.status == "routed" and got.node_id == "fr-1"
    assert got.energy_kwh_estimate == pytest.approx(4 * 0.7 * 6)
    assert got.co2_kg_estimate == pytest.approx(4 * 0.7 * 6 * 60 / 1000)


def test_capacity_is_consumed_by_routed_work(fleet):
    grid = StaticGrid(GRID)
    first = submit(fleet, gpu_count=6)
    assert route_workload(session=fleet, grid=grid, workload_id=first.id, now=NOW).node_id == "fr-1"
    second = submit(fleet, gpu_count=4)
    d = route_workload(session=fleet, grid=grid, workload_id=second.id, now=NOW)
    assert d.node_id != "fr-1"
    assert {
        "node_id": "fr-1",
        "zone": "FR",
        "reason": "only 0 of the 4 GPUs needed are free",
    } in d.rejected


@pytest.mark.parametrize(
    ("spec", "expected_node", "reason_of"),
    [
        ({"gpu_model": "a100"}, "es-1", ("fr-1", "GPU model H100 is not the requested A100")),
        (
            {"allowed_zones": ["de", "ES"]},
            "es-1",
            ("fr-1", "zone FR is not among the allowed zones ['DE', 'ES']"),
        ),
        ({"denied_zones": ["FR"]}, "es-1", ("fr-1", "zone FR is denied")),
        (
            {"max_carbon_intensity": 100},
            "fr-1",
            ("es-1", "carbon intensity 180 g/kWh is above the job's limit 100"),
        ),
    ],
)
def test_constraints_filter_nodes(fleet, spec, expected_node, reason_of):
    d = recommend(
        session=fleet,
        grid=StaticGrid(GRID),
        spec=JobSpec(gpu_count=4, duration_hours=6, **spec),
        now=NOW,
    )
    assert d.best.node_id == expected_node
    assert reason_of in [(r.node_id, r.reason) for r in d.rejected]


def test_deadline_feasibility(fleet):
    spec = JobSpec(gpu_count=1, duration_hours=6, deadline=NOW + timedelta(hours=5))
    rec = recommend(session=fleet, grid=StaticGrid(GRID), spec=spec, now=NOW)
    assert rec.best is None
    assert all(
        "cannot finish by the deadline" in r.reason for r in rec.rejected if r.node_id != "be-1"
    )
    ok = JobSpec(gpu_count=1, duration_hours=6, deadline=NOW + timedelta(hours=6))
    assert recommend(session=fleet, grid=StaticGrid(GRID), spec=ok, now=NOW).best is not None


def test_no_eligible_node_keeps_workload_pending_and_records_why(fleet):
    w = submit(fleet, gpu_count=64)
    d = route_workload(session=fleet, grid=StaticGrid(GRID), workload_id=w.id, now=NOW)
    assert d.outcome == "no_eligible_node" and d.node_id is None
    assert len(d.rejected) == 5
    assert repo.get_workload(session=fleet, workload_id=w.id).status == "pending"


def test_missing_carbon_reading_rejects_the_node(fleet):
    grid = StaticGrid({**GRID, "FR": (None, 90)})
    rec = recommend(session=fleet, grid=grid, spec=JobSpec(gpu_count=1, duration_hours=1), now=NOW)
    assert any(r.node_id == "fr-1" and "no carbon intensity" in r.reason for r in rec.rejected)


def test_recommend_writes_nothing_and_compares_with_the_cheapest(fleet):
    rec = recommend(
        session=fleet, grid=StaticGrid(GRID), spec=JobSpec(gpu_count=4, duration_hours=6), now=NOW
    )
    assert rec.baseline.node_id == "de-1"  # cheapest per GPU-hour
    assert rec.co2_saved_kg == pytest.approx(4 * 0.7 * 6 * (420 - 60) / 1000)
    assert repo.list_decisions(session=fleet) == []


def _routed_on(session, grid, node_zone_ci):
    w = submit(session, gpu_count=1, allowed_zones=["FR", "DE"])
    d = route_workload(session=session, grid=grid, workload_id=w.id, now=NOW, weights=CARBON_ONLY)
    assert d.zone == node_zone_ci
    return w


def test_reroute_at_exactly_25_percent_moves(fleet):
    grid = StaticGrid({"FR": (400, None), "DE": (500, None)})
    w = _routed_on(fleet, grid, "FR")
    grid.values = {"FR": (400, None), "DE": (300, None)}  # 0.8 -> 0.6: exactly 25 % better
    d = reroute_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW, weights=CARBON_ONLY)
    assert d.outcome == "rerouted" and d.node_id == "de-1"
    assert d.improvement == pytest.approx(0.25)
    assert d.reroute_count == 1


def test_reroute_below_25_percent_keeps_the_node(fleet):
    grid = StaticGrid({"FR": (400, None), "DE": (500, None)})
    w = _routed_on(fleet, grid, "FR")
    grid.values = {"FR": (400, None), "DE": (300.5, None)}  # 24.9 % better
    d = reroute_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW, weights=CARBON_ONLY)
    assert d.outcome == "kept" and d.node_id == "fr-1"
    assert "below the 25% threshold" in d.reason
    assert repo.get_workload(session=fleet, workload_id=w.id).reroute_count == 0


def test_fifth_reroute_moves_sixth_is_refused(fleet):
    grid = StaticGrid({"FR": (100, None), "DE": (400, None)})
    w = _routed_on(fleet, grid, "FR")
    outcomes = []
    for i in range(MAX_REROUTES + 1):
        grid.values = (
            {"FR": (400, None), "DE": (100, None)}
            if i % 2 == 0
            else {"FR": (100, None), "DE": (400, None)}
        )
        outcomes.append(
            reroute_workload(
                session=fleet, grid=grid, workload_id=w.id, now=NOW, weights=CARBON_ONLY
            )
        )
    assert [d.outcome for d in outcomes] == ["rerouted"] * 5 + ["limit_reached"]
    assert outcomes[4].reroute_count == 5
    final = repo.get_workload(session=fleet, workload_id=w.id)
    assert final.reroute_count == 5 and final.node_id == outcomes[4].node_id
    assert len(repo.list_decisions(session=fleet, workload_id=w.id)) == 7  # 1 route + 6 reroutes


def test_offline_node_fails_over_without_improvement(fleet):
    grid = StaticGrid({"FR": (100, None), "DE": (110, None)})
    w = _routed_on(fleet, grid, "FR")
    repo.get_node(session=fleet, node_id="fr-1").status = "offline"
    d = reroute_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW, weights=CARBON_ONLY)
    assert d.outcome == "rerouted" and d.node_id == "de-1"
    assert d.reason.startswith("failover: fr-1 cannot run it (node is offline)")


def test_life_cycle_refuses_illegal_transitions(fleet):
    w = submit(fleet)
    with pytest.raises(IllegalTransitionError, match="'pending' and cannot become 'running'"):
        set_workload_status(session=fleet, workload_id=w.id, status="running", now=NOW)
    route_workload(session=fleet, grid=StaticGrid(GRID), workload_id=w.id, now=NOW)
    with pytest.raises(IllegalTransitionError):
        route_workload(session=fleet, grid=StaticGrid(GRID), workload_id=w.id, now=NOW)
    assert (
        set_workload_status(session=fleet, workload_id=w.id, status="running", now=NOW).started_at
        == NOW
    )
    assert (
        set_workload_status(session=fleet, workload_id=w.id, status="completed", now=NOW).status
        == "completed"
    )
    with pytest.raises(IllegalTransitionError, match="none: it is final"):
        set_workload_status(session=fleet, workload_id=w.id, status="cancelled", now=NOW)
    with pytest.raises(RerouteRefusedError):
        reroute_workload(session=fleet, grid=StaticGrid(GRID), workload_id=w.id, now=NOW)


def test_completed_work_frees_capacity(fleet):
    grid = StaticGrid(GRID)
    w = submit(fleet, gpu_count=6)
    route_workload(session=fleet, grid=grid, workload_id=w.id, now=NOW)
    set_workload_status(session=fleet, workload_id=w.id, status="cancelled", now=NOW)
    again = submit(fleet, gpu_count=6)
    assert route_workload(session=fleet, grid=grid, workload_id=again.id, now=NOW).node_id == "fr-1"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"gpu_count": 0}, "greater than 0"),
        ({"duration_hours": -1}, "greater than 0"),
        ({"allowed_zones": ["XX"]}, "unknown zone 'XX'"),
        ({"allowed_zones": ["FR"], "denied_zones": ["FR"]}, "every allowed zone is also denied"),
        ({"deadline": datetime(2023, 6, 2)}, "has no time zone"),
    ],
)
def test_bad_specs_name_the_value(spec, match):
    with pytest.raises((ValueError, InvalidInputError), match=match):
        JobSpec(**{"gpu_count": 1, "duration_hours": 1, **spec})


def test_unknown_ids_are_clear(fleet):
    with pytest.raises(NotFoundError, match="organization 'nobody'"):
        submit_workload(
            session=fleet,
            org_id="nobody",
            name="x",
            spec=JobSpec(gpu_count=1, duration_hours=1),
            now=NOW,
        )
    with pytest.raises(NotFoundError, match="workload 'wl_missing'"):
        route_workload(session=fleet, grid=StaticGrid(GRID), workload_id="wl_missing", now=NOW)


@pytest.mark.parametrize("asked", ["RTX 4090", "rtx4090", "NVIDIA RTX-4090", " rtx_4090 "])
def test_gpu_model_names_are_normalised_in_one_place(asked):
    from tools.broker.workloads import normalise_gpu_model

    assert normalise_gpu_model(asked) == "RTX4090"
    assert JobSpec(gpu_count=1, duration_hours=1, gpu_model=asked).gpu_model == "RTX4090"
    assert normalise_gpu_model("  ") is None and normalise_gpu_model(None) is None


def test_a_spaced_gpu_model_matches_the_gamer_nodes(session):
    from store.seed import seed_fleet
    from tools.broker.placement import evaluate_nodes
    from tools.grid.simulated import SimulatedGrid

    seed_fleet(session=session, now=NOW)
    spec = JobSpec(gpu_count=1, duration_hours=1, gpu_model="RTX 4090")
    candidates, _ = evaluate_nodes(
        session=session, grid=SimulatedGrid(seed=7), spec=spec, now=NOW, weights=DEFAULT_WEIGHTS
    )
    assert {c.node_id for c in candidates} == {"it-mil-4090", "de-ber-4090", "us-tex-4090"}
