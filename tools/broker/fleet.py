"""The compute fleet as tools see it: node views with free GPUs, status changes, demo seeding."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.orm import Session

from store import repo
from store.models import ComputeNode
from store.seed import seed_fleet
from tools.errors import InvalidInputError, NotFoundError
from tools.grid import ZONE_CODES, GridSource
from tools.grid.ingest import ingest
from tools.grid.models import floor_hour

NodeStatus = Literal["online", "offline", "maintenance"]
SEED_GRID_HOURS = 3


class NodeView(BaseModel):
    """A node with its live capacity figures."""

    id: str
    name: str
    owner_id: str
    kind: str
    zone: str
    gpu_model: str
    gpu_count: int
    reserved_gpus: int
    allocated_gpus: int
    free_gpus: int
    utilization: float
    power_kw_per_gpu: float
    price_per_gpu_hour_minor: int
    currency: str
    status: NodeStatus
    wallet_address: str | None

    @classmethod
    def of(cls, n: ComputeNode) -> NodeView:
        """Build the view of a node (its allocation is the row's `allocated_gpus`)."""
        allocated = n.allocated_gpus
        busy = n.reserved_gpus + allocated
        return cls(
            id=n.id,
            name=n.name,
            owner_id=n.owner_id,
            kind=n.kind,
            zone=n.zone,
            gpu_model=n.gpu_model,
            gpu_count=n.gpu_count,
            reserved_gpus=n.reserved_gpus,
            allocated_gpus=allocated,
            free_gpus=max(n.gpu_count - busy, 0),
            utilization=min(busy / n.gpu_count, 1.0),
            power_kw_per_gpu=n.power_kw_per_gpu,
            price_per_gpu_hour_minor=n.price_per_gpu_hour_minor,
            currency=n.currency,
            status=n.status,
            wallet_address=n.wallet_address,
        )


def node_views(*, session: Session) -> list[NodeView]:
    """Return every node with free GPUs and utilisation, ordered by id."""
    return [NodeView.of(n) for n in repo.list_nodes(session=session)]


NODE_STATUSES: tuple[NodeStatus, ...] = ("online", "offline", "maintenance")


def set_node_status(*, session: Session, node_id: str, status: str, now: datetime) -> NodeView:
    """Mark a node online, offline or in maintenance (its work is moved by the incident agent)."""
    if status not in NODE_STATUSES:
        raise InvalidInputError(f"node status {status!r}: use online, offline or maintenance")
    node = repo.get_node(session=session, node_id=node_id, for_update=True)
    if node is None:
        raise NotFoundError(
            f"node {node_id!r} does not exist; check the id against the list of nodes"
        )
    node.status = status
    session.flush()
    return NodeView.of(node)


class DemoSeedReport(BaseModel):
    """What `tgtg seed` added."""

    organizations_added: int
    nodes_added: int
    grid_states_added: int


def seed_demo(*, session: Session, grid: GridSource, now: datetime) -> DemoSeedReport:
    """Seed the fleet and the last three hours of grid states for all 11 zones (idempotent)."""
    fleet = seed_fleet(session=session, now=now)
    start = floor_hour(now) - timedelta(hours=SEED_GRID_HOURS - 1)
    report = ingest(
        session=session,
        source=grid,
        zones=list(ZONE_CODES),
        start=start,
        hours=SEED_GRID_HOURS,
        now=now,
    )
    return DemoSeedReport(
        organizations_added=fleet.organizations_added,
        nodes_added=fleet.nodes_added,
        grid_states_added=report.grid_states_added,
    )
