"""Apply the Alembic migrations that ship inside the `store` package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def head_revision() -> str:
    """Return the newest packaged revision without importing Alembic.

    Revision files are named `<NNNN>_<slug>.py` with `revision = "<NNNN>"` and a linear history
    (a test checks this against Alembic's own idea of the head).
    """
    return max(p.name.split("_", 1)[0] for p in (_MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def _at_head(engine: Engine) -> bool:
    """Return True when the database is stamped with exactly the head revision."""
    try:
        with engine.connect() as conn:
            stamped = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:  # no alembic_version table yet: a new database
        return False
    return stamped == [head_revision()]


class SchemaAheadError(RuntimeError):
    """The database carries a migration revision this code does not know: newer code wrote it."""

    def __init__(self, current: str, head: str) -> None:
        """Record the database's revision and this code's head revision."""
        super().__init__(f"database is at revision {current}, newer than this code (head {head})")
        self.current = current
        self.head = head


def alembic_config(url: str) -> Config:
    """Return an Alembic config for `url` using the packaged migration scripts."""
    from alembic.config import Config  # imported here: Alembic is slow to import

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _refuse_unknown_revision(cfg: Config, conn: Connection) -> None:
    """Raise SchemaAheadError when the database is stamped with a revision not in our scripts."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    known = {s.revision for s in script.walk_revisions()}
    for current in MigrationContext.configure(conn).get_current_heads():
        if current not in known:
            raise SchemaAheadError(current, ", ".join(script.get_heads()))


@dataclass(frozen=True)
class UpgradeResult:
    """What `upgrade` did: the revision before (None for an empty database) and after."""

    before: str | None
    after: str | None
    applied: tuple[str, ...]
    """The revisions applied, oldest first; empty when the database was already there."""


def upgrade(engine: Engine, revision: str = "head") -> UpgradeResult:
    """Bring the database behind `engine` to `revision` (default: the newest).

    Raises:
        SchemaAheadError: The database is at a revision this code does not have (newer code
            migrated it); nothing is changed.
    """
    if revision == "head" and _at_head(engine):
        head = head_revision()
        return UpgradeResult(
            before=head, after=head, applied=()
        )  # the common case: nothing to do, and Alembic (slow to import) stays unloaded
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        _refuse_unknown_revision(cfg, conn)
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    script = ScriptDirectory.from_config(cfg)
    applied = (
        ()
        if after is None or after == before
        else tuple(
            s.revision
            for s in reversed(list(script.iterate_revisions(after, before or "base")))
            if s.revision != before
        )
    )
    return UpgradeResult(before=before, after=after, applied=applied)


def current_tables(engine: Engine) -> set[str]:
    """Return the table names present in the database."""
    return set(inspect(engine).get_table_names())
