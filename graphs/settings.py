"""Read the process settings from the environment and `.env` (the composition root).

Only entry points (the CLI, the API server, the eval runner, graph factories) build a
`Settings`; lower layers receive plain arguments. Every external service runs in a labelled demo
mode exactly when its key is absent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from agents.models import ModelEndpoint

GridSourceName = Literal["sim", "recorded", "live"]
HistoryModelName = Literal["persistence", "dayahead", "model", "naive"]

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
"""Hosts only this machine can reach: the only ones the console may serve without a login."""
CONSOLE_AUTH_OFF = "off"

_REPO_ROOT = Path(__file__).resolve().parent.parent
_SHARED_GRID_DIR = _REPO_ROOT.parent / "shared" / "data" / "grid"
_SHARED_JOBS_FILE = _REPO_ROOT.parent / "shared" / "data" / "jobs" / "alibaba_gpu_v2023_openb.csv"
DEFAULT_CRUSOE_BASE_URL = "https://api.inference.crusoecloud.com/v1"


def _default_grid_dir() -> Path | None:
    return _SHARED_GRID_DIR if _SHARED_GRID_DIR.is_dir() else None


def _default_jobs_file() -> Path | None:
    return _SHARED_JOBS_FILE if _SHARED_JOBS_FILE.is_file() else None


class Settings(BaseSettings):
    """All configuration of Too Green To Go; env names carry the `TGTG_` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="TGTG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("var")
    """Where the embedded database, generated API key and console login, audio files and local
    chain state live."""
    database_url: str | None = None
    """SQLAlchemy URL; default `sqlite:///<data_dir>/tgtg.db`."""

    grid_source: GridSourceName = "sim"
    """Which grid source the broker reads: deterministic simulator, recorded CSVs, or live API."""
    grid_dir: Path | None = Field(default_factory=_default_grid_dir)
    """Directory of recorded hourly `<ZONE>.csv` files (default `../shared/data/grid`)."""
    jobs_file: Path | None = Field(default_factory=_default_jobs_file)
    """GPU job trace CSV used by replays (default the shared Alibaba trace if present)."""
    sim_seed: int = 7
    """Seed of the grid simulator; the same seed and hour always give the same reading."""
    clock_start: datetime | None = None
    """Replay clock: start the process's clock at this time (e.g. inside the recorded span)."""
    clock_speed: float = Field(1.0, gt=0, le=86_400)
    """Replay clock: simulated seconds per wall-clock second."""

    score_weight_carbon: float = 0.6
    score_weight_price: float = 0.3
    score_weight_utilization: float = 0.1

    loop_interval_s: float = Field(default=60.0, ge=0)
    """Seconds between background passes (ingest, incidents, audio alerts); 0 turns them off."""
    console_refresh_s: float = Field(default=10.0, gt=0)
    """Seconds between automatic refreshes of the console's pages."""
    console_auth: SecretStr | None = None
    """Console login as `user:password`; unset: generated into data_dir; `off`: no login
    (allowed on a loopback host only)."""
    console_login_attempts_per_minute: int = Field(default=5, gt=0)
    """Failed console logins a client address may make per minute before it gets 429."""
    rate_limit_per_minute: int = Field(default=1200, gt=0)
    """Sustained API requests per minute per API key (or client IP)."""
    rate_limit_burst: int = Field(default=200, gt=0)
    """Requests a client may send at once before the rate limit applies."""

    api_key: SecretStr | None = None
    """Key required in the `X-API-Key` header for API writes; generated into data_dir if unset."""
    host: str = "127.0.0.1"
    port: int = 7860

    llm_base_url: str = DEFAULT_CRUSOE_BASE_URL
    llm_api_key: SecretStr | None = None
    llm_model: str = "meta-llama/Llama-3.3-70B-Instruct"
    llm_timeout_s: float = 30.0
    llm_max_retries: int = 2
    llm_temperature: float = 0.0

    electricitymaps_api_key: SecretStr | None = None
    electricitymaps_base_url: str = "https://api.electricitymap.org/v3"
    forecast_model: HistoryModelName = "persistence"
    """History model the planner forecasts with where Electricity Maps' forecasts are not used
    (`tools.grid.forecast`): "persistence" (default, `PLANNING_MODE`), "dayahead" (persistence
    corrected by the published day-ahead prices and the recent CI; fitted on the source's
    history, about 0.25 s per zone once a week), "model" (fitted blend) or "naive"."""
    move_running_work: bool = True
    """Let the hourly and incident re-plans move routed and running work (a checkpoint and
    restart elsewhere, counted as a reroute) to make room for work starting now on a cleaner
    node (`tools.broker.make_room`); the plan then charges work on a clean large node at most
    what moving it off for a large job would cost. False keeps running work where it is."""
    stripe_api_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    solana_rpc_url: str | None = None
    solana_payer_secret: SecretStr | None = None
    elevenlabs_api_key: SecretStr | None = None
    incidentio_api_key: SecretStr | None = None
    incidentio_alert_source_id: str | None = None
    incidentio_base_url: str = "https://api.incident.io"
    paid_api_key: SecretStr | None = None
    paid_base_url: str = "https://api.paid.ai"
    solana_lamports_per_eur_cent: int = Field(default=50_000, gt=0)
    """SOL payout rate: lamports per euro cent (50,000 = 200 EUR per SOL)."""
    payout_approval_threshold_minor: int = Field(default=5_000, ge=0)
    """Payouts above this many cents wait for a person's approval."""
    payout_max_minor: int = Field(default=50_000, gt=0)
    """Per-payout cap in cents; above it a payout goes to review."""
    payout_daily_cap_minor: int = Field(default=200_000, gt=0)
    """Per-provider daily cap in cents; above it a payout goes to review."""

    def model_endpoint(self) -> ModelEndpoint:
        """Return the chat model endpoint these settings describe."""
        from agents.models import ModelEndpoint

        return ModelEndpoint(
            base_url=self.llm_base_url,
            api_key=self.llm_api_key,
            model=self.llm_model,
            timeout_s=self.llm_timeout_s,
            max_retries=self.llm_max_retries,
            temperature=self.llm_temperature,
        )

    @field_validator(
        "api_key",
        "console_auth",
        "llm_api_key",
        "electricitymaps_api_key",
        "stripe_api_key",
        "stripe_webhook_secret",
        "solana_payer_secret",
        "elevenlabs_api_key",
        "incidentio_api_key",
        "paid_api_key",
        mode="before",
    )
    @classmethod
    def _blank_is_absent(cls, value: object) -> object:
        """Treat an empty variable (as copied from `.env.example`) as no key at all."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("clock_start")
    @classmethod
    def _aware_start(cls, value: datetime | None) -> datetime | None:
        """Read a clock start without a zone as UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @property
    def console_auth_off(self) -> bool:
        """Return True when TGTG_CONSOLE_AUTH is `off`: the console asks nobody to log in."""
        value = self.console_auth.get_secret_value() if self.console_auth else ""
        return value.strip().lower() == CONSOLE_AUTH_OFF

    def auth_pair(self) -> tuple[str, str] | None:
        """Return (user, password) from TGTG_CONSOLE_AUTH, or None when it is unset or `off`.

        Raises:
            ValueError: TGTG_CONSOLE_AUTH is neither `user:password` nor `off`.
        """
        if self.console_auth is None or self.console_auth_off:
            return None
        try:
            return parse_login(self.console_auth.get_secret_value(), what="TGTG_CONSOLE_AUTH")
        except ValueError as exc:
            raise ValueError(f"{exc}, or 'off' for no login on a loopback host") from None

    def refuse_open_console(self, host: str) -> None:
        """Refuse to serve the console without a login on a host other machines can reach.

        Raises:
            ValueError: TGTG_CONSOLE_AUTH is `off` and `host` is not a loopback host.
        """
        if self.console_auth_off and host.strip().strip("[]").lower() not in LOOPBACK_HOSTS:
            raise ValueError(
                f"TGTG_CONSOLE_AUTH=off serves the console without a login, which is allowed "
                f"on a loopback host only ({', '.join(LOOPBACK_HOSTS)}), not on {host!r}; "
                "set TGTG_CONSOLE_AUTH=user:password (or leave it unset to generate one), "
                "or serve on 127.0.0.1"
            )

    @property
    def resolved_database_url(self) -> str:
        """Return the database URL, defaulting to a SQLite file under `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tgtg.db').as_posix()}"

    def demo_mode(self, service: str) -> bool:
        """Return True when `service` has no key and so runs in its labelled demo mode."""
        keys = {
            "crusoe": self.llm_api_key,
            "electricitymaps": self.electricitymaps_api_key,
            "stripe": self.stripe_api_key,
            "solana": self.solana_rpc_url,
            "elevenlabs": self.elevenlabs_api_key,
            "incidentio": self.incidentio_api_key,
            "paid": self.paid_api_key,
        }
        if service not in keys:
            raise ValueError(f"unknown service {service!r}; expected one of {sorted(keys)}")
        return keys[service] is None


def parse_login(value: str, *, what: str) -> tuple[str, str]:
    """Return (user, password) from `user:password`; the message never repeats the value.

    Raises:
        ValueError: `value` has no user, no `:` or no password.
    """
    user, sep, password = value.strip().partition(":")
    if not sep or not user or not password:
        raise ValueError(f"{what} must look like 'user:password'")
    return user, password
