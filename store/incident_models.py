"""Define the incident tables: incidents, their transitions and reroutes, grid overrides, alerts.

Registered on the shared `Base.metadata`; created by migration 0003, ESCALATED and attempts
added by 0005, alert revisions by 0006, the outbox by 0008.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, _in

INCIDENT_STATES = (
    "MONITORING",
    "ANOMALY_DETECTED",
    "EVALUATING",
    "ADAPTING",
    "RESOLVED",
    "ESCALATED",
)
INCIDENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "MONITORING": frozenset({"ANOMALY_DETECTED", "RESOLVED"}),
    "ANOMALY_DETECTED": frozenset({"EVALUATING"}),
    "EVALUATING": frozenset({"ADAPTING"}),
    "ADAPTING": frozenset({"RESOLVED", "ESCALATED"}),
    "ESCALATED": frozenset({"MONITORING"}),
    "RESOLVED": frozenset(),
}
"""The only legal incident transitions (every incident starts in MONITORING).

ADAPTING ends an attempt: RESOLVED when every affected workload was handled or the anomaly is
gone, ESCALATED when work could not move and the anomaly still holds. A later watcher pass
re-examines an ESCALATED incident and, only when something changed, opens a new attempt on the
same incident (ESCALATED -> MONITORING). RESOLVED is final.
"""
INCIDENT_TRIGGERS = ("carbon_spike", "surplus", "node_offline", "price_spike")
OUTBOX_KINDS = ("alert", "summary")
OUTBOX_STATUSES = ("pending", "done", "failed")


class Incident(Base):
    """A detected grid or fleet anomaly handled by the incident-response loop."""

    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint(_in("state", INCIDENT_STATES), name="ck_incident_state"),
        CheckConstraint(_in("trigger", INCIDENT_TRIGGERS), name="ck_incident_trigger"),
        UniqueConstraint("open_key", name="uq_incidents_open_key"),
        Index("ix_incidents_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """0 for the first run; +1 each time an ESCALATED incident is re-examined (a new attempt)."""
    open_key: Mapped[str | None] = mapped_column(String(100))
    """`zone:trigger[:node]` while its anomaly episode lasts: one incident per episode.

    Set when the incident opens; kept while ESCALATED and after RESOLVED until a pass observes
    the anomaly absent (see `graphs.incident_watch`), then cleared.
    """
    details: Mapped[dict[str, Any]]
    """Measured values that triggered it (intensity, baseline, threshold, node id …)."""
    summary: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None]
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class IncidentTransition(Base):
    """One state change of an incident, with its time and reason."""

    __tablename__ = "incident_transitions"
    __table_args__ = (
        UniqueConstraint(
            "incident_id", "attempt", "to_state", name="uq_incident_transition_attempt_state"
        ),
        Index("ix_incident_transitions_incident", "incident_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"))
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class IncidentReroute(Base):
    """A reroute attempt made by an incident; unique per (incident, attempt, workload)."""

    __tablename__ = "incident_reroutes"
    __table_args__ = (
        UniqueConstraint(
            "incident_id", "attempt", "workload_id", name="uq_incident_reroute_attempt_workload"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"))
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"))
    decision_id: Mapped[str | None] = mapped_column(ForeignKey("routing_decisions.id"))
    outcome: Mapped[str] = mapped_column(String(20))
    from_node_id: Mapped[str | None] = mapped_column(String(64))
    to_node_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]


class GridOverride(Base):
    """A multiplier applied to a zone's readings for a period (demo spikes, surplus, drills)."""

    __tablename__ = "grid_overrides"
    __table_args__ = (
        CheckConstraint("carbon_factor > 0 AND price_factor > 0", name="ck_override_factors"),
        Index("ix_grid_overrides_zone", "zone", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    zone: Mapped[str] = mapped_column(String(32))
    carbon_factor: Mapped[float] = mapped_column(Float, default=1.0)
    price_factor: Mapped[float] = mapped_column(Float, default=1.0)
    surplus: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The zone has spare renewables in this period: its readings say surplus and curtailment."""
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class AlertEvent(Base):
    """An incident.io alert event: sent, or recorded locally in demo mode."""

    __tablename__ = "alert_events"
    __table_args__ = (
        UniqueConstraint(
            "deduplication_key", "status", "revision", name="uq_alert_event_key_status_revision"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deduplication_key: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10))
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """0 for the first event of a (key, status); n > 0 for updates (escalation attempt n-1)."""
    title: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]]
    delivery: Mapped[str] = mapped_column(String(10))
    """'sent' (incident.io accepted it) or 'demo' (recorded locally, no key)."""
    created_at: Mapped[datetime]


class IncidentOutbox(Base):
    """Work an incident transition owes the outside world, delivered after its commit.

    Written in the transaction that records the transition (an alert to send, a summary for the
    model to write), so no model or network call happens while a row lock or write transaction
    is held. One row per `key`: `alert:<incident>:<status>:<revision>` or
    `summary:<incident>:<attempt>:<state>`.
    """

    __tablename__ = "incident_outbox"
    __table_args__ = (
        CheckConstraint(_in("kind", OUTBOX_KINDS), name="ck_incident_outbox_kind"),
        CheckConstraint(_in("status", OUTBOX_STATUSES), name="ck_incident_outbox_status"),
        UniqueConstraint("key", name="uq_incident_outbox_key"),
        Index("ix_incident_outbox_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"))
    kind: Mapped[str] = mapped_column(String(10))
    key: Mapped[str] = mapped_column(String(160))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(10), default="pending")
    """'pending' until delivered ('done'); 'failed' when a summary gave up (template kept)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    due_at: Mapped[datetime]
    """Earliest next delivery; a claim moves it forward by the delivery lease."""
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
