"""Read the console's own settings (prefix TGTG_): background loop, Gradio auth, rate limits."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    """Settings of the operator console and the HTTP server around it."""

    model_config = SettingsConfigDict(
        env_prefix="TGTG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    loop_interval_s: float = Field(default=60.0, ge=0)
    """Seconds between background passes (ingest, incidents, audio alerts); 0 turns them off."""
    console_refresh_s: float = Field(default=10.0, gt=0)
    """Seconds between automatic refreshes of the console's pages."""
    console_auth: SecretStr | None = None
    """`user:password` to require a login for the console; unset means no login."""
    rate_limit_per_minute: int = Field(default=1200, gt=0)
    """Sustained API requests per minute per API key (or client IP)."""
    rate_limit_burst: int = Field(default=200, gt=0)
    """Requests a client may send at once before the rate limit applies."""

    @field_validator("console_auth", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def auth_pair(self) -> tuple[str, str] | None:
        """Return (user, password) for the console login, or None when no login is required.

        Raises:
            ValueError: TGTG_CONSOLE_AUTH is not `user:password`.
        """
        if self.console_auth is None:
            return None
        user, sep, password = self.console_auth.get_secret_value().partition(":")
        if not sep or not user or not password:
            raise ValueError("TGTG_CONSOLE_AUTH must look like 'user:password'")
        return user, password
