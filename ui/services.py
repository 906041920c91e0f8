"""Build what the CLI and the API share from `Settings`: database, grid source and clock."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from graphs.settings import Settings
from graphs.wiring import make_grid_source
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from tools.broker.scoring import ScoreWeights
from tools.clock import Clock, FixedClock, ReplayClock, SystemClock
from tools.grid import GridSource
from tools.incidents.detection import grid_with_overrides


@dataclass
class Services:
    """The process's shared resources, created lazily from settings."""

    settings: Settings
    clock: Clock
    _grids: dict[str, GridSource] = field(default_factory=dict, init=False, repr=False)
    _grid_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, at: datetime | None = None) -> Services:
        """Create services; `at` pins the clock (CLI `--at`)."""
        clock: Clock
        if at is not None:
            clock = FixedClock(at)
        elif settings.clock_start is not None:
            clock = ReplayClock(settings.clock_start, settings.clock_speed)
        else:
            clock = SystemClock()
        return cls(settings=settings, clock=clock)

    @cached_property
    def engine(self) -> Engine:
        """Return the database engine, migrated to the newest schema."""
        engine = make_engine(self.settings.resolved_database_url)
        upgrade(engine)
        return engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Return the session factory."""
        return make_session_factory(self.engine)

    def grid(self, source: str | None = None) -> GridSource:
        """Return the configured grid source, or `source` when given; each is built once.

        Recorded CSVs are parsed once and a live source keeps one HTTP client; `close()`
        releases them.
        """
        s = self.settings
        name = source or s.grid_source
        with self._grid_lock:
            if name not in self._grids:
                self._grids[name] = make_grid_source(
                    name,
                    seed=s.sim_seed,
                    directory=s.grid_dir,
                    api_key=s.electricitymaps_api_key.get_secret_value()
                    if s.electricitymaps_api_key
                    else None,
                    base_url=s.electricitymaps_base_url,
                )
            return self._grids[name]

    def close(self) -> None:
        """Close long-lived clients (a live grid source's HTTP client) and the engine's pool."""
        with self._grid_lock:
            grids, self._grids = list(self._grids.values()), {}
        for grid in grids:
            close = getattr(grid, "close", None)
            if callable(close):
                close()
        if "engine" in self.__dict__:
            self.engine.dispose()

    def effective_grid(self, session: Session, source: str | None = None) -> GridSource:
        """Return the grid the broker should see now: the source with injected spikes applied.

        Every routing path (API, CLI, chat, incidents, console) reads through this, so an
        override stored with `tgtg grid spike` moves all of them alike.
        """
        return grid_with_overrides(session=session, grid=self.grid(source), now=self.clock.now())

    @property
    def weights(self) -> ScoreWeights:
        """Return the score weights from settings."""
        s = self.settings
        return ScoreWeights(
            carbon=s.score_weight_carbon,
            price=s.score_weight_price,
            utilization=s.score_weight_utilization,
        )

    def api_key(self) -> str:
        """Return the API key for writes: the setting, or one generated once into data_dir."""
        if self.settings.api_key is not None:
            return self.settings.api_key.get_secret_value()
        path = self.settings.data_dir / "api_key"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(24)
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key
