"""What went wrong with the `tgtg` database, as one line naming the URL and what to change.

`ui.cli_common.domain_errors` asks `store_problem` about every error a command raises; the
passwords in URLs are masked.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)

from store.migrate import SchemaAheadError

_UNREACHABLE = ("refused", "resolve host", "translate host", "timeout", "unreachable", "no route")
_URL_EXAMPLES = "write e.g. sqlite:///var/tgtg.db or postgresql+psycopg://user@host:5432/db"


def _masked(url: str) -> str:
    """Return `url` with any password replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _url_problem(url: str) -> str | None:
    """Return why `url` cannot name a usable database (parse, dialect, driver), or None."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "is not a database URL"
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        return f"names an unknown database driver {parsed.drivername!r}"
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        return f"needs a driver that is not installed ({exc})"
    return None


def _db_reason(exc: Exception) -> str:
    """Return the database driver's reason for `exc`, on one line without boilerplate."""
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    reason = first.rsplit("failed: ", 1)[-1]
    return " ".join(reason.replace("FATAL:", "").split())


def _sqlite_path(url: str) -> Path | None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or not db or db == ":memory:":
        return None
    return Path(db).absolute()


def store_problem(exc: Exception, url: str) -> str | None:
    """Return the one-line error for a database problem behind `exc`, or None if it is not one.

    Covers an unparseable URL, an unknown or missing driver, a server that cannot be reached,
    a refused login, a missing database, an unwritable SQLite path and a database migrated by
    newer code.
    """
    where = f"database {_masked(url)!r}"
    if isinstance(exc, SchemaAheadError):
        return f"{exc}: upgrade the code or point --database-url elsewhere"
    if isinstance(exc, ArgumentError | ImportError):
        problem = _url_problem(url)
        return None if problem is None else f"{where} {problem}: {_URL_EXAMPLES}"
    if isinstance(exc, OSError):
        db, failed = _sqlite_path(url), getattr(exc, "filename", None)
        if db is None or failed is None:
            return None
        failed_path = Path(str(failed)).absolute()
        if failed_path != db and failed_path not in db.parents:
            return None
        return (
            f"{where}: cannot create {str(failed)!r} ({exc.strerror}): "
            "choose a writable --data-dir or --database-url"
        )
    if not isinstance(exc, OperationalError | InterfaceError) and type(exc) is not DatabaseError:
        return None
    reason = _db_reason(exc)
    low = reason.lower()
    if any(s in low for s in _UNREACHABLE):
        return f"{where}: cannot reach the server ({reason}): start it or fix host and port"
    if "authentication" in low or "password" in low or ("role" in low and "not exist" in low):
        return f"{where}: the server refused the login ({reason}): fix the user or password"
    if "database" in low and "not exist" in low:
        return f"{where}: {reason}: create it or point --database-url elsewhere"
    if "locked" in low:
        return f"{where}: {reason}: another process is writing; retry when it has finished"
    return f"{where}: {reason}: check --database-url or --data-dir"
