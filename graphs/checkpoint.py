"""Open the LangGraph checkpointer on the store's database (sync and async twins).

SQLite store → `SqliteSaver` / `AsyncSqliteSaver` on the same file (WAL, busy timeout);
PostgreSQL store → `PostgresSaver` / `AsyncPostgresSaver` on the same database and schema, so
every replica sees the same pending approvals. Checkpoint tables are separate from the
domain tables. Fails closed: no silent fallback to an in-memory saver.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from sqlalchemy import Engine, text

if TYPE_CHECKING:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

# Each backend's driver and saver load only when that backend is used (psycopg is slow to
# import and a SQLite chat never needs it).

logger = logging.getLogger(__name__)
_SETUP_LOCK = 7_461_001  # advisory lock key for checkpoint-table setup


@contextmanager
def open_checkpointer(engine: Engine) -> Iterator[BaseCheckpointSaver[str]]:
    """Yield a ready checkpointer on the database behind `engine`.

    Args:
        engine: The store's engine; its URL (and on PostgreSQL its current schema) is reused.

    Raises:
        ValueError: The database is neither a SQLite file nor PostgreSQL.
    """
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        lite = sqlite3.connect(_sqlite_path(engine), check_same_thread=False, timeout=30)
        try:
            lite.execute("PRAGMA journal_mode=WAL")
            lite.execute("PRAGMA busy_timeout=30000")
            lite_saver = SqliteSaver(lite)
            lite_saver.setup()
            yield lite_saver
        finally:
            lite.close()
        return
    if backend != "postgresql":
        raise ValueError(f"no checkpointer for database {backend!r}")
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    conninfo, schema = _pg_conninfo(engine)
    with psycopg.connect(
        conninfo,
        autocommit=True,
        prepare_threshold=0,
        row_factory=dict_row,
        options=f"-csearch_path={schema}",
    ) as conn:
        saver = PostgresSaver(conn)
        _setup_once(conn, saver)
        yield saver


def _locked_row(row: dict[str, Any] | None) -> bool:
    return bool(row is not None and row["ok"])


def _locked(cur: psycopg.Cursor[dict[str, Any]]) -> bool:
    return _locked_row(cur.fetchone())


def _setup_once(conn: psycopg.Connection[dict[str, Any]], saver: PostgresSaver) -> None:
    """Run the saver's migrations with one process at a time.

    Its migrations use CREATE INDEX CONCURRENTLY, which deadlocks when two watchers start
    together; waiting with short `pg_try_advisory_lock` polls (no open transaction) avoids it.
    """
    deadline = time.monotonic() + 60
    while not _locked(conn.execute("select pg_try_advisory_lock(%s) as ok", (_SETUP_LOCK,))):
        if time.monotonic() > deadline:
            raise TimeoutError("another process held the checkpoint setup lock for 60 s")
        time.sleep(0.1)
    try:
        saver.setup()
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (_SETUP_LOCK,))


def _sqlite_path(engine: Engine) -> str:
    path = engine.url.database
    if not path or path == ":memory:":
        raise ValueError(f"checkpoints need a SQLite file, not {str(engine.url)!r}")
    return path


def _pg_conninfo(engine: Engine) -> tuple[str, str]:
    with engine.connect() as probe:
        schema = str(probe.execute(text("select current_schema()")).scalar_one())
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return conninfo, schema


@asynccontextmanager
async def open_async_checkpointer(engine: Engine) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Yield a ready async checkpointer on the database behind `engine` (for async graphs).

    Raises:
        ValueError: The database is neither a SQLite file nor PostgreSQL.
    """
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with aiosqlite.connect(_sqlite_path(engine), timeout=30) as conn:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA busy_timeout=30000")
            saver = AsyncSqliteSaver(conn)
            await saver.setup()
            yield saver
        return
    if backend != "postgresql":
        raise ValueError(f"no checkpointer for database {backend!r}")
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row

    conninfo, schema = _pg_conninfo(engine)
    async with await psycopg.AsyncConnection.connect(
        conninfo,
        autocommit=True,
        prepare_threshold=0,
        row_factory=dict_row,
        options=f"-csearch_path={schema}",
    ) as conn:
        pg_saver = AsyncPostgresSaver(conn)
        await _setup_once_async(conn, pg_saver)
        yield pg_saver


async def _setup_once_async(
    conn: psycopg.AsyncConnection[dict[str, Any]], saver: AsyncPostgresSaver
) -> None:
    """Async twin of `_setup_once`: one process at a time runs the saver's migrations."""
    deadline = time.monotonic() + 60
    while True:
        cur = await conn.execute("select pg_try_advisory_lock(%s) as ok", (_SETUP_LOCK,))
        if _locked_row(await cur.fetchone()):
            break
        if time.monotonic() > deadline:
            raise TimeoutError("another process held the checkpoint setup lock for 60 s")
        await asyncio.sleep(0.1)
    try:
        await saver.setup()
    finally:
        await conn.execute("select pg_advisory_unlock(%s)", (_SETUP_LOCK,))


def chat_thread(thread_id: str) -> str:
    """Return the checkpoint thread id of a chat conversation."""
    return f"chat:{thread_id}"


def incident_thread(incident_id: str) -> str:
    """Return the checkpoint thread id of an incident run."""
    return f"incident:{incident_id}"
