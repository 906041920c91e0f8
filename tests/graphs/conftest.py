"""Fixtures for graph tests: a seeded store, the simulated grid and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from agents.offline import OfflineChatModel
from graphs.context import DEFAULT_ORG_ID, Context
from store.db import make_session_factory
from store.seed import seed_fleet
from tools.clock import FixedClock
from tools.grid import SimulatedGrid
from tools.integrations.incidentio import DemoAlerts

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture
def sessions(sqlite_engine) -> sessionmaker[Session]:
    factory = make_session_factory(sqlite_engine)
    with factory.begin() as s:
        seed_fleet(session=s, now=T0)
    return factory


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def ctx(sessions, clock) -> Context:
    return Context(
        model=OfflineChatModel(clock=clock, org_id=DEFAULT_ORG_ID),
        sessions=sessions,
        grid=SimulatedGrid(seed=7),
        clock=clock,
        alerts=DemoAlerts(),
    )
