"""Open the LangGraph checkpointer on the store's database.

SQLite store → `SqliteSaver` on the same file (WAL, busy timeout); PostgreSQL store →
`PostgresSaver` on the same database and schema. Checkpoint tables are separate from the
domain tables. Fails closed: no silent fallback to an in-memory saver.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from psycopg.rows import dict_row
from sqlalchemy import Engine, text

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
    url = engine.url
    if url.get_backend_name() == "sqlite":
        path = url.database
        if not path or path == ":memory:":
            raise ValueError(f"checkpoints need a SQLite file, not {str(url)!r}")
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            saver = SqliteSaver(conn)
            saver.setup()
            yield saver
        finally:
            conn.close()
        return
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"no checkpointer for database {url.get_backend_name()!r}")
    with engine.connect() as probe:
        schema = probe.execute(text("select current_schema()")).scalar_one()
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(
        conninfo, autocommit=True, prepare_threshold=0, row_factory=dict_row,
        options=f"-csearch_path={schema}",
    ) as conn:  # fmt: skip
        saver = PostgresSaver(conn)  # type: ignore[arg-type]
        _setup_once(conn, saver)
        yield saver


def _setup_once(conn: psycopg.Connection[Any], saver: PostgresSaver) -> None:
    """Run the saver's migrations with one process at a time.

    Its migrations use CREATE INDEX CONCURRENTLY, which deadlocks when two watchers start
    together; waiting with short `pg_try_advisory_lock` polls (no open transaction) avoids it.
    """
    deadline = time.monotonic() + 60
    while not conn.execute("select pg_try_advisory_lock(%s) as ok", (_SETUP_LOCK,)).fetchone()[
        "ok"
    ]:  # type: ignore[index]
        if time.monotonic() > deadline:
            raise TimeoutError("another process held the checkpoint setup lock for 60 s")
        time.sleep(0.1)
    try:
        saver.setup()
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (_SETUP_LOCK,))


def chat_thread(thread_id: str) -> str:
    """Return the checkpoint thread id of a chat conversation."""
    return f"chat:{thread_id}"


def incident_thread(incident_id: str) -> str:
    """Return the checkpoint thread id of an incident run."""
    return f"incident:{incident_id}"
