"""Wire integrations into the domain's ports from settings: grid source, forecasts, biller, rail.

The composition roots (ui/, evals/) call these; domain packages only see the protocols.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr

from graphs.settings import Settings
from tools.errors import InvalidInputError
from tools.grid import GridSource
from tools.grid.fallback import FallbackForecaster
from tools.grid.forecast import PLANNING_MODE
from tools.grid.outlook import ForecastProvider, history_provider
from tools.grid.recorded import RecordedGrid
from tools.grid.simulated import SimulatedGrid
from tools.integrations.electricitymaps import DEFAULT_BASE_URL, LiveGrid
from tools.integrations.electricitymaps_forecast import ElectricityMapsForecaster
from tools.money.payouts import PayoutPolicy
from tools.money.ports import Biller
from tools.money.settlement import MoneyServices

if TYPE_CHECKING:
    from tools.incidents.ports import AlertSink
    from tools.integrations.solana.rail import SolanaRail

# Vendor SDKs (Stripe, Solana, incident.io) load inside the builders that need them, so that
# commands which never touch money or alerts start quickly.

GRID_SOURCE_NAMES = ("sim", "recorded", "live")


def make_grid_source(
    name: str,
    *,
    seed: int = 7,
    directory: Path | str | None = None,
    api_key: str | SecretStr | None = None,
    base_url: str = DEFAULT_BASE_URL,
    client: httpx.Client | None = None,
) -> GridSource:
    """Return the grid source called `name`.

    Args:
        name: "sim" (deterministic simulator), "recorded" (CSV replay) or "live"
            (Electricity Maps).
        seed: Simulator seed.
        directory: Folder of `<ZONE>.csv` files, required for "recorded".
        api_key: Electricity Maps token, required for "live".
        base_url: Electricity Maps API root, for "live".
        client: HTTP client for "live" (default: a new one).

    Raises:
        InvalidInputError: Unknown name, or the directory / key the source needs is missing.
    """
    if name == "sim":
        return SimulatedGrid(seed)
    if name == "recorded":
        if directory is None:
            raise InvalidInputError(
                "grid source 'recorded' needs a directory of <ZONE>.csv files: set TGTG_GRID_DIR "
                "or pass --grid-dir"
            )
        return RecordedGrid(directory)
    if name == "live":
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key:
            raise InvalidInputError(
                "grid source 'live' needs an Electricity Maps API key: set "
                "TGTG_ELECTRICITYMAPS_API_KEY (or use grid source 'sim' or 'recorded')"
            )
        return LiveGrid(key, base_url, client)
    raise InvalidInputError(
        f"unknown grid source {name!r}: use one of {', '.join(GRID_SOURCE_NAMES)}"
    )


def make_forecast_provider(
    grid: GridSource,
    *,
    api_key: str | SecretStr | None = None,
    base_url: str = DEFAULT_BASE_URL,
    client: httpx.Client | None = None,
    mode: str = PLANNING_MODE,
) -> ForecastProvider:
    """Return Electricity Maps' forecasts when a key is set, else the history model over `grid`.

    A recorded source is replayed on a clock in the past, which Electricity Maps' forecasts (of
    the present) do not describe: it always gets the history model over its own records.

    Build it once per process, next to the grid source, and hand it to every plan: the history
    model's fit is costly and cached inside it. With a key, a zone whose Electricity Maps
    forecast fails (HTTP error, timeout, bad payload, zone or hours not covered) gets the
    history model's forecast, labelled "history:<mode> (electricitymaps unavailable)"
    (`tools.grid.fallback.FallbackForecaster`).

    Args:
        grid: Grid source whose history the history model reads (only up to each issue hour).
        api_key: Electricity Maps token; with one, forecasts come from its forecast endpoint.
        base_url: Electricity Maps API root.
        client: HTTP client for Electricity Maps (default: a new one).
        mode: History model: "persistence" (`PLANNING_MODE`, what the planner was measured
            on), "model" (fitted blend) or "naive".

    Raises:
        InvalidInputError: Unknown or non-causal mode.
    """
    key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    history = history_provider(grid, mode)
    if key and grid.name != "recorded":
        return FallbackForecaster(ElectricityMapsForecaster(key, base_url, client), history)
    return history


def make_biller(settings: Settings) -> Biller:
    """Return the Stripe biller, or the labelled demo biller without a key."""
    from tools.integrations.stripe import DemoBilling, StripeBilling, make_stripe_client

    if settings.stripe_api_key is None:
        return DemoBilling()
    return StripeBilling(make_stripe_client(settings.stripe_api_key.get_secret_value()))


def make_rail(settings: Settings) -> SolanaRail:
    """Return the payment rail: a journalled local LiteSVM chain, or an RPC node."""
    from tools.integrations.solana.chain import (
        LocalChain,
        RpcChain,
        keypair_from_secret,
        load_or_create_keypair,
    )
    from tools.integrations.solana.rail import SolanaRail

    if settings.solana_rpc_url is None:
        state = Path(settings.data_dir) / "local_chain"
        payer = load_or_create_keypair(state / "payer.json")
        return SolanaRail(LocalChain(payer=payer, journal=state / "journal.jsonl"), payer)
    if settings.solana_payer_secret is None:
        raise InvalidInputError(
            "TGTG_SOLANA_RPC_URL is set but TGTG_SOLANA_PAYER_SECRET is not: set the payer key"
        )
    from solana.rpc.async_api import AsyncClient

    payer = keypair_from_secret(settings.solana_payer_secret.get_secret_value())
    return SolanaRail(RpcChain(AsyncClient(settings.solana_rpc_url), label="solana rpc"), payer)


def make_money_services(settings: Settings, *, grid: GridSource) -> MoneyServices:
    """Build the money services from settings (a composition root helper)."""
    return MoneyServices(
        biller=make_biller(settings),
        rail=make_rail(settings),
        grid=grid,
        policy=PayoutPolicy(
            lamports_per_minor=settings.solana_lamports_per_eur_cent,
            approval_threshold_minor=settings.payout_approval_threshold_minor,
            max_payout_minor=settings.payout_max_minor,
            daily_cap_minor=settings.payout_daily_cap_minor,
        ),
    )


def make_alert_sink(settings: Settings) -> AlertSink:
    """Return incident.io alerts when configured, else the local demo recorder."""
    from tools.integrations.incidentio import DemoAlerts, IncidentIoAlerts

    if settings.incidentio_api_key is None or not settings.incidentio_alert_source_id:
        return DemoAlerts()
    return IncidentIoAlerts(
        api_key=settings.incidentio_api_key.get_secret_value(),
        alert_source_config_id=settings.incidentio_alert_source_id,
        base_url=settings.incidentio_base_url,
    )
