"""Stored recommendations: an id and an expiry; one workload per recommendation, in the database."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from store.db import make_session_factory
from store.models import RoutingDecision, Workload
from store.seed import seed_fleet
from tools.broker.recommendations import (
    RECOMMENDATION_TTL,
    RecommendationExpiredError,
    preview_reroute,
    route_recommendation,
    save_recommendation,
)
from tools.broker.routing import JobSpec, recommend, route_workload, submit_workload
from tools.errors import NotFoundError
from tools.grid import SimulatedGrid

NOW = datetime(2026, 11, 26, 10, tzinfo=UTC)
GRID = SimulatedGrid(seed=7)
SPEC = JobSpec(gpu_count=2, duration_hours=3, gpu_model="H100", allowed_zones=["FR", "DE"])


@pytest.fixture
def seeded(session):
    seed_fleet(session=session, now=NOW)
    session.commit()
    return session


def _quote(session, org="acme-ai", spec=SPEC):
    rec = recommend(session=session, grid=GRID, spec=spec, now=NOW)
    row = save_recommendation(session=session, org_id=org, rec=rec, now=NOW)
    session.commit()
    return rec, row


def _route(session, rec_id, org="acme-ai", now=NOW):
    done = route_recommendation(
        session=session,
        grid=GRID,
        recommendation_id=rec_id,
        org_id=org,
        name="fine-tune",
        now=now,
    )
    session.commit()
    return done


def _count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_a_recommendation_is_stored_with_its_figures_and_an_expiry(seeded):
    rec, row = _quote(seeded)
    assert row.id.startswith("rec_") and row.expires_at == NOW + RECOMMENDATION_TTL
    assert (row.node_id, row.zone) == (rec.best.node_id, rec.best.zone)
    assert row.co2_kg == rec.best.co2_kg
    # The best node's energy at the baseline's intensity (the same energy on both).
    base_ci = rec.baseline.co2_kg / rec.baseline.energy_kwh
    assert row.baseline_co2_kg == pytest.approx(rec.best.energy_kwh * base_ci)
    assert JobSpec.model_validate(row.spec) == SPEC
    assert row.price_per_gpu_hour_minor == rec.best.price_per_gpu_hour_minor


def test_no_eligible_node_stores_nothing(seeded):
    impossible = JobSpec(gpu_count=1000, duration_hours=1)
    _, row = _quote(seeded, spec=impossible)
    assert row is None


def test_routing_a_recommendation_twice_returns_the_same_workload(seeded):
    _, row = _quote(seeded)
    first = _route(seeded, row.id)
    assert first.created and first.decision.outcome == "routed"
    assert first.workload.node_id == row.node_id and first.workload.status == "routed"
    second = _route(seeded, row.id, now=NOW + timedelta(minutes=5))
    assert not second.created and second.decision is None
    assert second.workload.id == first.workload.id
    later = _route(seeded, row.id, now=NOW + timedelta(days=2))  # a replay after the expiry
    assert later.workload.id == first.workload.id
    assert _count(seeded, Workload) == 1 and _count(seeded, RoutingDecision) == 1


def test_the_database_holds_one_workload_per_recommendation(seeded):
    _, row = _quote(seeded)
    _route(seeded, row.id)
    with pytest.raises(IntegrityError):
        submit_workload(
            session=seeded,
            org_id="acme-ai",
            name="duplicate",
            spec=SPEC,
            now=NOW,
            recommendation_id=row.id,
        )
    seeded.rollback()
    assert _count(seeded, Workload) == 1


def test_expired_unknown_and_foreign_recommendations_are_refused_naming_the_id(seeded):
    _, row = _quote(seeded)
    with pytest.raises(RecommendationExpiredError, match=rf"recommendation '{row.id}' expired at"):
        _route(seeded, row.id, now=NOW + RECOMMENDATION_TTL)
    with pytest.raises(NotFoundError, match="recommendation 'rec_unknown000' does not exist"):
        _route(seeded, "rec_unknown000")
    _, theirs = _quote(seeded, org="helios-bio")
    with pytest.raises(NotFoundError, match=rf"recommendation '{theirs.id}' does not exist"):
        _route(seeded, theirs.id)
    seeded.rollback()
    assert _count(seeded, Workload) == 0


def test_a_reroute_preview_writes_nothing(seeded):
    wl = submit_workload(session=seeded, org_id="acme-ai", name="x", spec=SPEC, now=NOW)
    route_workload(session=seeded, grid=GRID, workload_id=wl.id, now=NOW)
    seeded.commit()
    decisions = _count(seeded, RoutingDecision)
    preview = preview_reroute(session=seeded, grid=GRID, workload_id=wl.id, now=NOW)
    assert preview.node_id is not None and preview.best_node_id != preview.node_id
    assert preview.would_move is False  # the placement is still the best one
    assert _count(seeded, RoutingDecision) == decisions


def test_concurrent_approvals_of_one_recommendation_book_one_workload(engine):
    from tests.unit.test_capacity_concurrency import _in_threads

    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        seed_fleet(session=s, now=NOW)
        rec = recommend(session=s, grid=GRID, spec=SPEC, now=NOW)
        rec_id = save_recommendation(session=s, org_id="acme-ai", rec=rec, now=NOW).id

    def book(s):
        done = route_recommendation(
            session=s, grid=GRID, recommendation_id=rec_id, org_id="acme-ai", name="x", now=NOW
        )
        return f"{done.workload.id} {'created' if done.created else 'existing'}"

    outcomes = _in_threads(engine, [book] * 8)
    ids = {o.split()[0] for o in outcomes}
    assert len(ids) == 1, outcomes
    assert sorted(o.split()[1] for o in outcomes) == ["created"] + ["existing"] * 7
    with sessions() as s:
        assert _count(s, Workload) == 1 and _count(s, RoutingDecision) == 1
