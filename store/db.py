"""Create engines and session factories; called by composition roots, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, echo: bool = False, schema: str | None = None) -> Engine:
    """Create an engine for `url`; SQLite gets WAL, foreign keys, a busy timeout, BEGIN IMMEDIATE.

    On SQLite every transaction begins IMMEDIATE (it takes the write lock at its first
    statement), so reads that decide a write happen inside the same serialised transaction;
    another writer waits up to the busy timeout instead of acting on a stale read. PostgreSQL
    relies on row locks (FOR UPDATE) and conditional updates instead.

    Args:
        url: SQLAlchemy database URL.
        echo: Log every statement.
        schema: PostgreSQL only: the schema to put first on the search path (tests use one each).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if path and path != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()
            # SQLAlchemy, not the sqlite3 module, decides when a transaction begins.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to `engine` (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)
