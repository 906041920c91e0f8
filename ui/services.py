"""Build what the CLI and the API share from `Settings`: database, grid source, clock, secrets.

The API key and the console login come from settings (environment, `.env`, a mounted Secret),
else from a file under data_dir, else they are generated into that file (mode 0600) on first
use. A `Credential` records which, so `tgtg serve` shows only what this start generated.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from graphs.settings import Settings, parse_login
from graphs.wiring import make_forecast_provider, make_grid_source
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from tools.broker.scoring import ScoreWeights
from tools.broker.windows import forecast_zones, warm_forecasts
from tools.broker.workloads import JobSpec
from tools.clock import Clock, FixedClock, ReplayClock, SystemClock
from tools.grid import GridSource
from tools.grid.outlook import ForecastProvider
from tools.incidents.detection import grid_with_overrides

CONSOLE_USER = "operator"
"""The user name of a generated console login."""

Origin = Literal["settings", "file", "generated"]


@dataclass(frozen=True)
class Credential:
    """A secret and where it came from; only a `generated` one may be shown to the operator."""

    value: str = field(repr=False)
    origin: Origin
    """`settings`: environment, `.env` or a Secret; `file`: read from `path`; `generated`:
    created into `path` by this process."""
    path: Path
    """The file under data_dir that holds (or would hold) the generated secret."""

    @property
    def generated(self) -> bool:
        """Return True when this process created the secret (so it may be printed once)."""
        return self.origin == "generated"


def _stored(path: Path, make: Callable[[], str]) -> tuple[str, Origin]:
    """Return the secret in `path`, creating it with `make()` (mode 0600, never overwritten).

    Raises:
        ValueError: `path` exists but is empty.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        value = make()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(value + "\n")
            return value, "generated"
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"{path} is empty: delete it to generate a new secret, or write one in it")
    return value, "file"


@dataclass
class Services:
    """The process's shared resources, created lazily from settings."""

    settings: Settings
    clock: Clock
    _grids: dict[str, GridSource] = field(default_factory=dict, init=False, repr=False)
    _grid_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _forecasts: dict[str, ForecastProvider] = field(default_factory=dict, init=False, repr=False)
    _credentials: dict[str, Credential] = field(default_factory=dict, repr=False)

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

    def forecasts(self, source: str | None = None) -> ForecastProvider:
        """Return the forecast provider over the grid source `source` names; each built once.

        Electricity Maps' forecasts when TGTG_ELECTRICITYMAPS_API_KEY is set and the source is
        not the recorded one (the history model where they fail), else the history model over
        the source (TGTG_FORECAST_MODEL names it)
        (`graphs.wiring.make_forecast_provider`). Every plan of this process uses it, so the
        fitted model is reused.
        """
        s = self.settings
        name = source or s.grid_source
        grid = self.grid(name)
        with self._grid_lock:
            if name not in self._forecasts:
                self._forecasts[name] = make_forecast_provider(
                    grid,
                    api_key=s.electricitymaps_api_key,
                    base_url=s.electricitymaps_base_url,
                    mode=s.forecast_model,
                )
            return self._forecasts[name]

    def warm_forecasts(self, spec: JobSpec, source: str | None = None) -> None:
        """Ask the forecast provider for what a plan of `spec` reads now; call before a write.

        A route plans inside its transaction; warming first keeps Electricity Maps' requests
        out of the database lock (`tools.broker.windows.warm_forecasts`).
        """
        now = self.clock.now()
        zones = forecast_zones(spec, now)
        if zones:
            warm_forecasts(self.forecasts(source), now=now, zones=zones)

    def close(self) -> None:
        """Close long-lived clients (a live grid source's HTTP client) and the engine's pool."""
        with self._grid_lock:
            held: list[object] = [*self._grids.values(), *self._forecasts.values()]
            self._grids, self._forecasts = {}, {}
        for grid in held:
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

    def api_key_credential(self) -> Credential:
        """Return the API key for writes: TGTG_API_KEY, else the one in data_dir/api_key.

        Raises:
            ValueError: data_dir/api_key exists but is empty.
        """
        if "api_key" not in self._credentials:
            path = self.settings.data_dir / "api_key"
            if self.settings.api_key is not None:
                cred = Credential(self.settings.api_key.get_secret_value(), "settings", path)
            else:
                value, origin = _stored(path, lambda: secrets.token_urlsafe(24))
                cred = Credential(value, origin, path)
            self._credentials["api_key"] = cred
        return self._credentials["api_key"]

    def api_key(self) -> str:
        """Return the API key for writes: the setting, or one generated once into data_dir.

        Raises:
            ValueError: as `api_key_credential`.
        """
        return self.api_key_credential().value

    def console_credential(self) -> Credential | None:
        """Return the console login as `user:password`, or None when TGTG_CONSOLE_AUTH=off.

        TGTG_CONSOLE_AUTH wins; unset, the login in data_dir/console_auth is used, generated
        there on first use (user `operator`, a random password).

        Raises:
            ValueError: TGTG_CONSOLE_AUTH is malformed, or `off` on a non-loopback host, or the
                stored file does not hold `user:password`.
        """
        s = self.settings
        s.refuse_open_console(s.host)
        if s.console_auth_off:
            return None
        if "console" not in self._credentials:
            path = s.data_dir / "console_auth"
            pair = s.auth_pair()
            if pair is not None:
                cred = Credential(":".join(pair), "settings", path)
            else:
                value, origin = _stored(path, lambda: f"{CONSOLE_USER}:{secrets.token_urlsafe(18)}")
                parse_login(value, what=f"the console login in {path}")
                cred = Credential(value, origin, path)
            self._credentials["console"] = cred
        return self._credentials["console"]

    def console_login(self) -> tuple[str, str] | None:
        """Return (user, password) the console asks for, or None when its login is off.

        Raises:
            ValueError: as `console_credential`.
        """
        cred = self.console_credential()
        return None if cred is None else parse_login(cred.value, what="the console login")
