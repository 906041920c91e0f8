"""Repository functions for organisations, nodes, workloads and routing decisions.

Keyword-only, session first. They add and flush; the caller owns the transaction (commit or
rollback), so a domain operation made of several calls is written whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from store.models import ComputeNode, GpuReservation, Organization, RoutingDecision, Workload

ACTIVE_WORKLOAD_STATUSES = ("routed", "running")
"""Statuses whose workloads hold GPUs on their node (`allocated_gpus`)."""
HOUR = timedelta(hours=1)


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


def take_gpus(*, session: Session, node_id: str, gpus: int, ahead: int = 0) -> bool:
    """Allocate `gpus` on an online node in one conditional UPDATE; False changes nothing.

    The UPDATE succeeds only while `allocated + reserved + ahead + gpus <= gpu_count`, so
    concurrent placements can never oversubscribe a node, whatever they read before. `ahead` is
    the most GPUs scheduled work has reserved on the node in any hour the new work will run
    (`reserved_peak`, read under the node's lock).
    """
    result = session.execute(
        update(ComputeNode)
        .where(
            ComputeNode.id == node_id,
            ComputeNode.status == "online",
            ComputeNode.allocated_gpus + ComputeNode.reserved_gpus + gpus + ahead
            <= ComputeNode.gpu_count,
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


def workloads_submitted(
    *, session: Session, since: datetime, min_gpus: int = 1
) -> Sequence[Workload]:
    """Return the workloads submitted after `since` with at least `min_gpus` GPUs, oldest first."""
    stmt = (
        select(Workload)
        .where(Workload.submitted_at > since, Workload.gpu_count >= min_gpus)
        .order_by(Workload.submitted_at, Workload.id)
    )
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


def _hour_starts(start: datetime, end: datetime) -> list[datetime]:
    """Return the starts of the clock hours that [start, end) touches."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    out: list[datetime] = []
    while hour < end:
        out.append(hour)
        hour += HOUR
    return out


def list_reservations(
    *,
    session: Session,
    node_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    exclude_workload_id: str | None = None,
) -> Sequence[GpuReservation]:
    """Return reservations (of one node, overlapping [start, end) when given), by start."""
    stmt = select(GpuReservation).order_by(GpuReservation.start_at, GpuReservation.id)
    if node_id is not None:
        stmt = stmt.where(GpuReservation.node_id == node_id)
    if start is not None:
        stmt = stmt.where(GpuReservation.end_at > start)
    if end is not None:
        stmt = stmt.where(GpuReservation.start_at < end)
    if exclude_workload_id is not None:
        stmt = stmt.where(GpuReservation.workload_id != exclude_workload_id)
    return session.scalars(stmt).all()


def reserved_peak(
    *,
    session: Session,
    node_id: str,
    start: datetime,
    end: datetime,
    exclude_workload_id: str | None = None,
) -> int:
    """Return the most GPUs reserved on `node_id` in any clock hour of [start, end)."""
    rows = list_reservations(
        session=session,
        node_id=node_id,
        start=start,
        end=end,
        exclude_workload_id=exclude_workload_id,
    )
    return _peak(rows, start, end)


def reserved_peaks(
    *,
    session: Session,
    start: datetime,
    end: datetime,
    exclude_workload_id: str | None = None,
) -> dict[str, int]:
    """Return, per node with reservations in [start, end), its `reserved_peak` (one query)."""
    by_node: dict[str, list[GpuReservation]] = {}
    for r in list_reservations(
        session=session, start=start, end=end, exclude_workload_id=exclude_workload_id
    ):
        by_node.setdefault(r.node_id, []).append(r)
    return {node_id: _peak(rows, start, end) for node_id, rows in by_node.items()}


def _peak(rows: Sequence[GpuReservation], start: datetime, end: datetime) -> int:
    """Return the most GPUs `rows` reserve in any clock hour of [start, end)."""
    return max(
        (
            sum(r.gpus for r in rows if r.start_at < hour + HOUR and r.end_at > hour)
            for hour in _hour_starts(start, end)
        ),
        default=0,
    )


def hourly_use(
    *,
    session: Session,
    node_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude_workload_id: str | None = None,
) -> list[int]:
    """Return GPUs busy on the node in each clock hour of [start, end).

    Busy: the node's `reserved_gpus` (other tenants), routed or running work until its expected
    end (start + duration; at least until `now` when it overruns), and reservations.
    """
    node = session.get(ComputeNode, node_id)
    base = node.reserved_gpus if node is not None else 0
    active = session.scalars(
        select(Workload).where(
            Workload.node_id == node_id, Workload.status.in_(ACTIVE_WORKLOAD_STATUSES)
        )
    ).all()
    spans: list[tuple[datetime, datetime, int]] = []
    for w in active:
        began = w.started_at or w.routed_at or now
        spans.append((began, max(began + timedelta(hours=w.duration_hours), now), w.gpu_count))
    rows = list_reservations(
        session=session,
        node_id=node_id,
        start=start,
        end=end,
        exclude_workload_id=exclude_workload_id,
    )
    spans += [(r.start_at, r.end_at, r.gpus) for r in rows]
    return [
        base + sum(g for a, b, g in spans if a < hour + HOUR and b > hour)
        for hour in _hour_starts(start, end)
    ]


def reserve_gpus(
    *,
    session: Session,
    workload_id: str,
    node_id: str,
    gpus: int,
    start: datetime,
    end: datetime,
    now: datetime,
) -> bool:
    """Reserve `gpus` on an online node for [start, end) for one workload; False writes nothing.

    Under the node's row lock (FOR UPDATE on PostgreSQL; SQLite transactions begin IMMEDIATE),
    so every reservation, placement and start on the node is serialised and none decides on a
    stale count. Refused when any hour of the span would have more busy GPUs (`hourly_use`)
    than the node has. The workload's earlier reservation, if any, is replaced.
    """
    node = get_node(session=session, node_id=node_id, for_update=True)
    if node is None or node.status != "online":
        return False
    use = hourly_use(
        session=session,
        node_id=node_id,
        start=start,
        end=end,
        now=now,
        exclude_workload_id=workload_id,
    )
    if max(use, default=0) + gpus > node.gpu_count:
        return False
    release_reservation(session=session, workload_id=workload_id)
    session.add(
        GpuReservation(
            workload_id=workload_id,
            node_id=node_id,
            gpus=gpus,
            start_at=start,
            end_at=end,
            created_at=now,
        )
    )
    session.flush()
    return True


def release_reservation(*, session: Session, workload_id: str) -> int:
    """Delete the workload's reservation, if any; return how many rows went (0 or 1)."""
    result = session.execute(
        delete(GpuReservation)
        .where(GpuReservation.workload_id == workload_id)
        .execution_options(synchronize_session="fetch")
    )
    return _rowcount(result)
