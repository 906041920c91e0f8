"""Open the LangGraph checkpointer on the store's database.

SQLite store → `SqliteSaver` on the same file (WAL, busy timeout); PostgreSQL store →
`PostgresSaver` on the same database and schema. Checkpoint tables are separate from the
domain tables. Fails closed: no silent fallback to an in-memory saver.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from psycopg.rows import dict_row
from sqlalchemy import Engine, text

logger = logging.getLogger(__name__)


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
        saver.setup()
        yield saver


def chat_thread(thread_id: str) -> str:
    """Return the checkpoint thread id of a chat conversation."""
    return f"chat:{thread_id}"


def incident_thread(incident_id: str) -> str:
    """Return the checkpoint thread id of an incident run."""
    return f"incident:{incident_id}"
