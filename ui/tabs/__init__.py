"""The console's tabs, one module each; every module's `build(rt)` returns its refreshers."""

from collections.abc import Callable, Sequence
from typing import Any

Refresh = tuple[Callable[..., Any], Sequence[Any], Sequence[Any]]
"""(function, inputs, outputs) run on page load and on every timer tick."""
