"""Define the runtime context every graph receives (`graph.invoke(..., context=...)`).

Sessions, clients, clocks and the model live here, never in state (checkpoints would change
their type). Built by composition roots from `Settings`.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from sqlalchemy.orm import Session, sessionmaker

from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.clock import Clock
from tools.grid import GridSource
from tools.grid.outlook import ForecastProvider
from tools.incidents.ports import AlertSink
from tools.money.settlement import MoneyServices

DEFAULT_ORG_ID = "acme-ai"
"""Organisation the CLI chat acts for unless told otherwise (a seeded enterprise customer)."""
CHAT_RECURSION_LIMIT = 12
"""Super-steps per chat turn: model, tools, model, approve, tools, model … ends well before."""
INCIDENT_RECURSION_LIMIT = 16
"""The incident graph has six nodes and no loops; 16 leaves room and still stops a bug."""


def new_worker_id() -> str:
    """Return a worker id unique to this process: host name and a random suffix.

    Containers often run as PID 1 under the same image, so neither the PID nor the host name
    alone tells two watchers apart.
    """
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Context:
    """What nodes and tools need at run time."""

    model: BaseChatModel
    sessions: sessionmaker[Session]
    grid: GridSource
    clock: Clock
    weights: ScoreWeights = DEFAULT_WEIGHTS
    org_id: str = DEFAULT_ORG_ID
    """Organisation the operator acts for; write tools are authorised against it."""
    alerts: AlertSink | None = None
    """Where incident alerts go (incident.io or the local demo recorder)."""
    worker_id: str = field(default_factory=new_worker_id)
    """Identifies this watcher process in incident claims; unique per process."""
    max_concurrency: int = 4
    model_summaries: bool = False
    """Ask the model for incident summaries (the template summary stands when off or failing).

    Composition roots turn it on for a real model endpoint; graphs never inspect the model.
    """
    forecasts: ForecastProvider | None = None
    """The forecasts every plan uses, built once with the grid source
    (`graphs.wiring.make_forecast_provider`): its fitted model is reused across calls. None
    builds the history model over `grid` on every plan (tests)."""
    move_running_work: bool = True
    """Re-plans may move routed and running work to make room for work starting now
    (`tools.broker.make_room`); `TGTG_MOVE_RUNNING_WORK=false` keeps running work in place."""


@dataclass(frozen=True)
class BillingContext:
    """What the billing graph needs at run time (no model: billing is deterministic)."""

    sessions: sessionmaker[Session]
    money: MoneyServices
    clock: Clock
