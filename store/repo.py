"""Repository functions for organisations, nodes, workloads and routing decisions.

Keyword-only, session first. They add and flush; the caller owns the transaction (commit or
rollback), so a domain operation made of several calls is written whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from store.models import ComputeNode, Organization, RoutingDecision, Workload

ACTIVE_WORKLOAD_STATUSES = ("routed", "running")


def get_organization(*, session: Session, org_id: str) -> Organization | None:
    """Return the organisation with `org_id`, or None."""
    return session.get(Organization, org_id)


def list_organizations(*, session: Session, kind: str | None = None) -> Sequence[Organization]:
    """Return organisations ordered by id, optionally of one kind."""
    stmt = select(Organization).order_by(Organization.id)
    if kind is not None:
        stmt = stmt.where(Organization.kind == kind)
    return session.scalars(stmt).all()


def add(*, session: Session, obj: Any) -> Any:
    """Add a new row and flush it so database constraints are checked now."""
    session.add(obj)
    session.flush()
    return obj


def get_node(*, session: Session, node_id: str, for_update: bool = False) -> ComputeNode | None:
    """Return the node with `node_id` (locked FOR UPDATE on PostgreSQL when asked), or None."""
    stmt = select(ComputeNode).where(ComputeNode.id == node_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).one_or_none()


def take_gpus(*, session: Session, node_id: str, gpus: int) -> bool:
    """Allocate `gpus` on an online node in one conditional UPDATE; False changes nothing.

    The UPDATE succeeds only while `allocated + reserved + gpus <= gpu_count`, so concurrent
    placements can never oversubscribe a node, whatever they read before.
    """
    result = session.execute(
        update(ComputeNode)
        .where(
            ComputeNode.id == node_id,
            ComputeNode.status == "online",
            ComputeNode.allocated_gpus + ComputeNode.reserved_gpus + gpus <= ComputeNode.gpu_count,
        )
        .values(allocated_gpus=ComputeNode.allocated_gpus + gpus)
        .execution_options(synchronize_session=False)
    )
    taken = _rowcount(result) == 1
    if taken:
        _refresh_allocation(session, node_id)
    return taken


def release_gpus(*, session: Session, node_id: str, gpus: int) -> None:
    """Give back `gpus` a workload held on a node (one conditional UPDATE).

    Raises:
        RuntimeError: The node holds fewer GPUs than released (an accounting bug; nothing
            changes and the caller's transaction should roll back).
    """
    result = session.execute(
        update(ComputeNode)
        .where(ComputeNode.id == node_id, ComputeNode.allocated_gpus >= gpus)
        .values(allocated_gpus=ComputeNode.allocated_gpus - gpus)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        raise RuntimeError(f"node {node_id!r} holds fewer than {gpus} allocated GPUs to release")
    _refresh_allocation(session, node_id)


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def _refresh_allocation(session: Session, node_id: str) -> None:
    node = session.get(ComputeNode, node_id)
    if node is not None:
        session.refresh(node, attribute_names=["allocated_gpus"])


def list_nodes(
    *,
    session: Session,
    status: str | None = None,
    zone: str | None = None,
    for_update: bool = False,
) -> Sequence[ComputeNode]:
    """Return nodes ordered by id; lock them (in that order) when `for_update`."""
    stmt = select(ComputeNode).order_by(ComputeNode.id)
    if status is not None:
        stmt = stmt.where(ComputeNode.status == status)
    if zone is not None:
        stmt = stmt.where(ComputeNode.zone == zone)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).all()


def allocated_gpus_by_node(
    *, session: Session, exclude_workload_id: str | None = None
) -> dict[str, int]:
    """Return GPUs held by routed or running workloads, per node."""
    stmt = (
        select(Workload.node_id, func.sum(Workload.gpu_count))
        .where(Workload.status.in_(ACTIVE_WORKLOAD_STATUSES), Workload.node_id.is_not(None))
        .group_by(Workload.node_id)
    )
    if exclude_workload_id is not None:
        stmt = stmt.where(Workload.id != exclude_workload_id)
    return {str(node_id): int(total) for node_id, total in session.execute(stmt).all()}


def get_workload(
    *, session: Session, workload_id: str, for_update: bool = False
) -> Workload | None:
    """Return the workload (locked FOR UPDATE on PostgreSQL when asked), or None."""
    stmt = select(Workload).where(Workload.id == workload_id)
    if for_update:
        # populate_existing: a locked read must see the committed row, not this session's copy.
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).one_or_none()


def list_workloads(
    *,
    session: Session,
    statuses: Iterable[str] | None = None,
    org_id: str | None = None,
    node_id: str | None = None,
    limit: int | None = None,
) -> Sequence[Workload]:
    """Return workloads, newest first, filtered by status, owner or node."""
    stmt = select(Workload).order_by(Workload.submitted_at.desc(), Workload.id)
    if statuses is not None:
        stmt = stmt.where(Workload.status.in_(list(statuses)))
    if org_id is not None:
        stmt = stmt.where(Workload.org_id == org_id)
    if node_id is not None:
        stmt = stmt.where(Workload.node_id == node_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all()


def list_decisions(
    *, session: Session, workload_id: str | None = None, limit: int | None = None
) -> Sequence[RoutingDecision]:
    """Return routing decisions, oldest first, optionally for one workload."""
    stmt = select(RoutingDecision).order_by(RoutingDecision.decided_at, RoutingDecision.id)
    if workload_id is not None:
        stmt = stmt.where(RoutingDecision.workload_id == workload_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all()


def count_rows(*, session: Session, model: type[Any]) -> int:
    """Return the number of rows of a table."""
    return int(session.scalar(select(func.count()).select_from(model)) or 0)
