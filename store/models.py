"""Define the ORM models: the core domain tables of Too Green To Go.

Timestamps are stored as UTC and always come back timezone-aware (also on SQLite). Money is an
integer amount in minor units with an ISO-4217 currency code beside it; never a float.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ORG_KINDS = ("enterprise", "datacenter", "gamer")
NODE_KINDS = ("datacenter", "gamer")
NODE_STATUSES = ("online", "offline", "maintenance")
WORKLOAD_STATUSES = (
    "pending",
    "scheduled",
    "routed",
    "running",
    "completed",
    "failed",
    "cancelled",
)
DECISION_KINDS = ("route", "reroute", "replan", "start")
DECISION_OUTCOMES = (
    "routed",
    "rerouted",
    "kept",
    "no_eligible_node",
    "limit_reached",
    "scheduled",
    "rescheduled",
    "started",
)


class UTCDateTime(TypeDecorator[datetime]):
    """Store datetimes as naive UTC and return them timezone-aware in UTC.

    Naive input is refused: a time without a zone is a bug waiting to happen.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to naive UTC for storage."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to a stored naive datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Base class of every table."""

    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Organization(Base):
    """A customer (enterprise), a datacenter operator or a gamer who lends a GPU."""

    __tablename__ = "organizations"
    __table_args__ = (CheckConstraint(_in("kind", ORG_KINDS), name="ck_org_kind"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(100))
    wallet_address: Mapped[str | None] = mapped_column(String(64))
    """Registered Solana payout wallet (gamers only)."""
    created_at: Mapped[datetime]

    nodes: Mapped[list[ComputeNode]] = relationship(back_populates="owner")


class ComputeNode(Base):
    """A GPU node the broker can place work on."""

    __tablename__ = "compute_nodes"
    __table_args__ = (
        CheckConstraint(_in("kind", NODE_KINDS), name="ck_node_kind"),
        CheckConstraint(_in("status", NODE_STATUSES), name="ck_node_status"),
        CheckConstraint("gpu_count > 0", name="ck_node_gpu_count"),
        CheckConstraint(
            "reserved_gpus >= 0 AND reserved_gpus <= gpu_count", name="ck_node_reserved"
        ),
        CheckConstraint(
            "allocated_gpus >= 0 AND allocated_gpus + reserved_gpus <= gpu_count",
            name="ck_node_allocated",
        ),
        CheckConstraint("price_per_gpu_hour_minor >= 0", name="ck_node_price"),
        Index("ix_nodes_zone_status", "zone", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    zone: Mapped[str] = mapped_column(String(32))
    gpu_model: Mapped[str] = mapped_column(String(32))
    gpu_count: Mapped[int] = mapped_column(Integer)
    reserved_gpus: Mapped[int] = mapped_column(Integer, default=0)
    """GPUs busy with work outside the broker (other tenants); counts toward utilisation."""
    allocated_gpus: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """GPUs held by routed or running workloads. Changed only by `store.repo.take_gpus` and
    `release_gpus`, one conditional UPDATE each, so the CHECK above can never be crossed."""
    power_kw_per_gpu: Mapped[float] = mapped_column(Float)
    price_per_gpu_hour_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    status: Mapped[str] = mapped_column(String(20), default="online")
    wallet_address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]

    owner: Mapped[Organization] = relationship(back_populates="nodes")


class Workload(Base):
    """A GPU job submitted by a customer and placed by the broker."""

    __tablename__ = "workloads"
    __table_args__ = (
        CheckConstraint(_in("status", WORKLOAD_STATUSES), name="ck_workload_status"),
        CheckConstraint("gpu_count > 0", name="ck_workload_gpus"),
        CheckConstraint("duration_hours > 0", name="ck_workload_hours"),
        CheckConstraint("reroute_count >= 0", name="ck_workload_reroutes"),
        Index("ix_workloads_status_node", "status", "node_id"),
        Index("ix_workloads_submitted_at", "submitted_at"),
        Index("uq_workloads_recommendation", "recommendation_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    gpu_count: Mapped[int] = mapped_column(Integer)
    gpu_model: Mapped[str | None] = mapped_column(String(32))
    duration_hours: Mapped[float] = mapped_column(Float)
    deadline: Mapped[datetime | None]
    allowed_zones: Mapped[list[Any] | None]
    denied_zones: Mapped[list[Any] | None]
    max_carbon_intensity: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    node_id: Mapped[str | None] = mapped_column(ForeignKey("compute_nodes.id"))
    reroute_count: Mapped[int] = mapped_column(Integer, default=0)
    movable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """Whether it may move while it runs (checkpoint and restart) other than by failover."""
    score: Mapped[float | None] = mapped_column(Float)
    """Score of the current placement at the time it was made."""
    energy_kwh_estimate: Mapped[float | None] = mapped_column(Float)
    co2_kg_estimate: Mapped[float | None] = mapped_column(Float)
    submitted_at: Mapped[datetime]
    routed_at: Mapped[datetime | None]
    planned_start_at: Mapped[datetime | None]
    """When scheduled work starts on `node_id` (GPUs reserved from then: `GpuReservation`)."""
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    """Row version: every ORM update is compare-and-set on it (a stale copy cannot write)."""
    recommendation_id: Mapped[str | None] = mapped_column(ForeignKey("recommendations.id"))
    """The stored recommendation this workload commits (unique: one workload per one)."""

    node: Mapped[ComputeNode | None] = relationship()

    __mapper_args__ = {"version_id_col": version}


class GpuReservation(Base):
    """GPUs a scheduled workload holds on a node for hours [start_at, end_at), before it starts.

    Written only by `store.repo.reserve_gpus` under the node's lock, which refuses a reservation
    that would put any hour's reserved plus running GPUs above the node's free capacity; deleted
    when the work starts (its GPUs become `allocated_gpus`) or is cancelled or moved.
    """

    __tablename__ = "gpu_reservations"
    __table_args__ = (
        CheckConstraint("gpus > 0", name="ck_reservation_gpus"),
        CheckConstraint("end_at > start_at", name="ck_reservation_span"),
        UniqueConstraint("workload_id", name="uq_reservation_workload"),
        Index("ix_reservations_node_start", "node_id", "start_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"))
    node_id: Mapped[str] = mapped_column(ForeignKey("compute_nodes.id"))
    gpus: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    created_at: Mapped[datetime]


class GridState(Base):
    """One hourly reading of a grid zone from one source."""

    __tablename__ = "grid_states"
    __table_args__ = (
        UniqueConstraint("zone", "ts", "source", name="uq_grid_zone_ts_source"),
        Index("ix_grid_zone_ts", "zone", "ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    zone: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))
    carbon_intensity: Mapped[float | None] = mapped_column(Float)
    renewable_pct: Mapped[float | None] = mapped_column(Float)
    price_eur_per_mwh: Mapped[float | None] = mapped_column(Float)
    demand_mw: Mapped[float | None] = mapped_column(Float)
    renewable_mw: Mapped[float | None] = mapped_column(Float)
    surplus: Mapped[bool | None] = mapped_column(Boolean)
    curtailment: Mapped[bool | None] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime]


class Transaction(Base):
    """A money movement: a billed usage, a platform fee, a payout; amounts in minor units."""

    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_transactions_idempotency_key"),
        Index("ix_transactions_workload", "workload_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    workload_id: Mapped[str | None] = mapped_column(ForeignKey("workloads.id"))
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    external_ref: Mapped[str | None] = mapped_column(String(200))
    memo: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class RoutingDecision(Base):
    """An auditable broker decision: every candidate's score and each rejected node's reason."""

    __tablename__ = "routing_decisions"
    __table_args__ = (
        CheckConstraint(_in("kind", DECISION_KINDS), name="ck_decision_kind"),
        CheckConstraint(_in("outcome", DECISION_OUTCOMES), name="ck_decision_outcome"),
        Index("ix_decisions_workload_time", "workload_id", "decided_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"))
    kind: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(20))
    node_id: Mapped[str | None] = mapped_column(ForeignKey("compute_nodes.id"))
    previous_node_id: Mapped[str | None] = mapped_column(ForeignKey("compute_nodes.id"))
    score: Mapped[float | None] = mapped_column(Float)
    previous_score: Mapped[float | None] = mapped_column(Float)
    improvement: Mapped[float | None] = mapped_column(Float)
    """Relative improvement of the chosen score over the current one (reroutes)."""
    weights: Mapped[dict[str, Any]]
    candidates: Mapped[list[Any]]
    """Each eligible candidate: node_id, zone, score and its breakdown, grid inputs."""
    rejected: Mapped[list[Any]]
    """Each ineligible node: node_id and the reason."""
    reason: Mapped[str] = mapped_column(Text)
    grid_source: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime]
    planned_start_at: Mapped[datetime | None]
    """When the chosen node runs the work (the decision time for work that starts now)."""
    plan: Mapped[dict[str, Any] | None]
    """The forecast figures behind when: co2_kg, co2_kg_if_started_now, saving_pct, objective."""


class CarbonReceipt(Base):
    """Proof of a completed workload's energy and CO2, anchored on-chain by its hash."""

    __tablename__ = "carbon_receipts"
    __table_args__ = (UniqueConstraint("workload_id", name="uq_receipts_workload"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"))
    payload: Mapped[dict[str, Any]]
    """The canonical receipt document whose hash goes on-chain."""
    receipt_hash: Mapped[str] = mapped_column(String(64))
    energy_kwh: Mapped[float] = mapped_column(Float)
    co2_kg: Mapped[float] = mapped_column(Float)
    co2_avoided_kg: Mapped[float | None] = mapped_column(Float)
    chain: Mapped[str | None] = mapped_column(String(32))
    signature: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[datetime]


class CurtailmentEvent(Base):
    """A period in which a zone's renewable surplus exceeds what it can absorb."""

    __tablename__ = "curtailment_events"
    __table_args__ = (
        UniqueConstraint("zone", "start_ts", "source", name="uq_curtailment_zone_start_source"),
        Index("ix_curtailment_zone_start", "zone", "start_ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    zone: Mapped[str] = mapped_column(String(32))
    start_ts: Mapped[datetime]
    end_ts: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))
    peak_surplus_mw: Mapped[float | None] = mapped_column(Float)
    peak_renewable_pct: Mapped[float | None] = mapped_column(Float)
    hours: Mapped[int] = mapped_column(Integer)
    detected_at: Mapped[datetime]


class Recommendation(Base):
    """A placement quote for one organisation's job: routing it commits at most one workload."""

    __tablename__ = "recommendations"
    __table_args__ = (Index("ix_recommendations_org_created", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    spec: Mapped[dict[str, Any]]
    """The job as JSON (`JobSpec`): GPUs, hours, model, deadline, zones, carbon cap."""
    node_id: Mapped[str] = mapped_column(ForeignKey("compute_nodes.id"))
    """The best node when the quote was made."""
    zone: Mapped[str] = mapped_column(String(32))
    score: Mapped[float] = mapped_column(Float)
    energy_kwh: Mapped[float] = mapped_column(Float)
    co2_kg: Mapped[float] = mapped_column(Float)
    baseline_co2_kg: Mapped[float | None] = mapped_column(Float)
    """Forecast CO2 of the best node's energy on the carbon-agnostic choice (cheapest per
    GPU-hour), as `tools.broker.baseline` defines it."""
    price_per_gpu_hour_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    grid_source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class WriteApproval(Base):
    """A person's decision on a write an agent proposed: who, when, and exactly what."""

    __tablename__ = "write_approvals"
    __table_args__ = (
        Index("ix_write_approvals_thread", "thread_id", "id"),
        UniqueConstraint("thread_id", "tool_call_id", name="uq_write_approvals_call"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Increases with every decision (the newest decision of a thread has the highest id)."""
    thread_id: Mapped[str] = mapped_column(String(200))
    """The conversation (checkpoint thread) the proposal was made in."""
    tool_call_id: Mapped[str] = mapped_column(String(200))
    """The proposed call as "<message id>/<tool call id>"; decided once (a second, concurrent
    decision of the same call is refused)."""
    org_id: Mapped[str] = mapped_column(String(64))
    """The organisation the agent acted for."""
    tool: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]]
    summary: Mapped[dict[str, Any]]
    """The plain summary shown to the person (computed by code, never by the model)."""
    approved: Mapped[bool] = mapped_column(Boolean)
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
