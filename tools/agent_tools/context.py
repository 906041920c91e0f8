"""What the chat tools read from the graph's runtime context."""

from __future__ import annotations

from typing import Any, Protocol

from langgraph.prebuilt import ToolRuntime
from sqlalchemy.orm import Session, sessionmaker

from tools.broker.scoring import ScoreWeights
from tools.clock import Clock
from tools.grid import GridSource
from tools.grid.outlook import ForecastProvider


class ToolContext(Protocol):
    """What the chat tools need from the graph's runtime context (read-only)."""

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Session factory of the store."""
        ...

    @property
    def grid(self) -> GridSource:
        """Grid source the tools read."""
        ...

    @property
    def clock(self) -> Clock:
        """The injected clock."""
        ...

    @property
    def weights(self) -> ScoreWeights:
        """Score weights of the broker."""
        ...

    @property
    def org_id(self) -> str:
        """Organisation the operator acts for."""
        ...

    @property
    def forecasts(self) -> ForecastProvider | None:
        """The process's forecast provider (None: the history model over `grid`)."""
        ...

    @property
    def move_running_work(self) -> bool:
        """Whether re-plans may move running work to make room (`TGTG_MOVE_RUNNING_WORK`)."""
        ...


def tool_context(runtime: ToolRuntime[ToolContext, Any]) -> ToolContext:
    """Return the tool's runtime context."""
    return runtime.context
