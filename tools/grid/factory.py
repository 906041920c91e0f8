"""Build the grid source a setting names: simulator, recorded files or the live API."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import SecretStr

from tools.errors import InvalidInputError
from tools.grid.live import DEFAULT_BASE_URL, LiveGrid
from tools.grid.models import GridSource
from tools.grid.recorded import RecordedGrid
from tools.grid.simulated import SimulatedGrid

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
