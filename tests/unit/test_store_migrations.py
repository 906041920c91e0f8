from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from store.migrate import current_tables
from store.models import GridState

TABLES = {
    "organizations",
    "compute_nodes",
    "workloads",
    "grid_states",
    "transactions",
    "routing_decisions",
    "carbon_receipts",
    "curtailment_events",
}


def test_migrations_create_the_domain_tables(engine):
    assert TABLES <= current_tables(engine)


def test_timestamps_round_trip_as_aware_utc(session):
    ts = datetime(2023, 6, 1, 12, tzinfo=UTC)
    session.add(GridState(zone="FR", ts=ts, source="sim", carbon_intensity=50.0, recorded_at=ts))
    session.commit()
    session.expunge_all()
    got = session.scalars(select(GridState)).one()
    assert got.ts == ts and got.ts.tzinfo is not None


def test_naive_timestamps_are_refused(session):
    session.add(
        GridState(zone="FR", ts=datetime(2023, 6, 1), source="sim", recorded_at=datetime.now(UTC))
    )
    with pytest.raises(Exception, match="naive datetime"):
        session.commit()
