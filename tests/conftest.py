"""Shared fixtures: a fresh database per test on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANGSMITH_TRACING", "false")
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
for _var in [k for k in os.environ if k.startswith("TGTG_") and k != "TGTG_TEST_PG_URL"]:
    os.environ.pop(_var, None)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from store.db import make_engine, make_session_factory  # noqa: E402
from store.migrate import upgrade  # noqa: E402

PG_URL = os.environ.get("TGTG_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("CI") == "true" or os.environ.get("TGTG_REQUIRE_PG") == "1"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GRID_DIR = SHARED / "data" / "grid"
JOBS_FILE = SHARED / "data" / "jobs" / "alibaba_gpu_v2023_openb.csv"


def _pg_reachable() -> str | None:
    try:
        engine = make_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable", reported below
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


_PG_PROBLEM: str | None = None
_PG_CHECKED = False


def pg_problem() -> str | None:
    """Return why PostgreSQL cannot be used, or None when it can."""
    global _PG_PROBLEM, _PG_CHECKED
    if not _PG_CHECKED:
        _PG_PROBLEM, _PG_CHECKED = _pg_reachable(), True
    return _PG_PROBLEM


def _pg_engine_or_skip() -> tuple[Engine, str]:
    problem = pg_problem()
    if problem:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required here but unreachable at {PG_URL}: {problem}")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL} ({problem}); set TGTG_TEST_PG_URL")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return make_engine(PG_URL, schema=schema), schema


def _drop_pg_schema(schema: str) -> None:
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@contextmanager
def _migrated_pg() -> Iterator[Engine]:
    eng, schema = _pg_engine_or_skip()
    try:
        upgrade(eng)
        yield eng
    finally:
        eng.dispose()
        _drop_pg_schema(schema)


@contextmanager
def _migrated_sqlite(path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{path}")
    try:
        upgrade(eng)
        yield eng
    finally:
        eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database: SQLite file and PostgreSQL schema, one per test."""
    migrated = (
        _migrated_sqlite(tmp_path / "test.db") if request.param == "sqlite" else _migrated_pg()
    )
    with migrated as eng:
        yield eng


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty SQLite database for tests that need not run on both."""
    with _migrated_sqlite(tmp_path / "test.db") as eng:
        yield eng


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """A migrated, empty PostgreSQL schema (skips visibly, or fails in CI, when unreachable)."""
    with _migrated_pg() as eng:
        yield eng


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the parametrised database."""
    factory = make_session_factory(engine)
    with factory() as s:
        yield s


@pytest.fixture
def now() -> datetime:
    """A fixed, timezone-aware 'now' for domain code."""
    return datetime(2023, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def grid_dir() -> Path:
    """The shared recorded grid directory; fail loudly if CI lacks it."""
    if not GRID_DIR.is_dir():
        if REQUIRE_PG:
            pytest.fail(f"recorded grid data missing at {GRID_DIR}")
        pytest.skip(f"recorded grid data not found at {GRID_DIR}")
    return GRID_DIR


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep real-endpoint tests out of every run that does not ask for them with -m live_llm."""
    if "live_llm" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="real model endpoint: run `make test-live` with LIVE_LLM_*")
    for item in items:
        if "live_llm" in item.keywords:
            item.add_marker(skip)
