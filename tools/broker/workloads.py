"""Workload specs, submission and the life cycle.

pending → routed (placed now, GPUs allocated) or scheduled (node and planned start chosen, GPUs
reserved from that hour) → running → completed | failed | cancelled. Scheduled work becomes
routed at its hour (or running when an operator starts it early) and may be re-planned meanwhile.

Functions flush and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from store import repo
from store.models import Workload
from store.repo import ACTIVE_WORKLOAD_STATUSES
from tools.clock import within_span
from tools.errors import (
    ConflictError,
    IllegalTransitionError,
    InvalidInputError,
    NotFoundError,
    UnknownZoneError,
)
from tools.grid import get_zone
from tools.grid.zones import expand_zones

WorkloadStatus = Literal[
    "pending", "scheduled", "routed", "running", "completed", "failed", "cancelled"
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"routed", "scheduled", "cancelled", "failed"}),
    "scheduled": frozenset({"scheduled", "routed", "running", "pending", "cancelled", "failed"}),
    "routed": frozenset({"running", "cancelled", "failed"}),
    "running": frozenset({"completed", "failed", "cancelled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
MAX_GPUS_PER_JOB = 1024
MAX_JOB_HOURS = 24 * 31


def normalise_gpu_model(model: str | None) -> str | None:
    """Return the canonical GPU model name ("RTX 4090", "nvidia rtx-4090" -> "RTX4090").

    The one place GPU model names are compared: upper case, no spaces, hyphens or underscores,
    no "NVIDIA" prefix; empty means any model (None).
    """
    if model is None:
        return None
    canonical = "".join(c for c in model.upper() if c not in " -_\t").removeprefix("NVIDIA")
    return canonical or None


def normalise_zone(code: str) -> str:
    """Return the canonical zone code, or raise UnknownZoneError naming the valid ones."""
    return get_zone(code.strip().upper()).code


class JobSpec(BaseModel):
    """What a job needs; the broker places it on a node that satisfies all of it."""

    model_config = ConfigDict(extra="forbid")

    gpu_count: int = Field(gt=0, le=MAX_GPUS_PER_JOB, description="Number of GPUs, 1-1024.")
    duration_hours: float = Field(gt=0, le=MAX_JOB_HOURS, description="Run time in hours.")
    gpu_model: str | None = Field(None, description="Required GPU model, e.g. H100; any if None.")
    deadline: datetime | None = Field(None, description="Must finish by this time (aware UTC).")
    allowed_zones: list[str] | None = Field(None, description="Only these zones, if given.")
    denied_zones: list[str] | None = Field(None, description="Never these zones.")
    max_carbon_intensity: float | None = Field(
        None, gt=0, description="Refuse zones whose current gCO2/kWh is above this."
    )
    movable: bool = Field(
        True,
        description=(
            "Whether it may move while it runs (checkpoint and restart elsewhere): to make "
            "room for other work, or for a better score; false: it moves only when its node "
            "is down (failover), and then starts again from the beginning."
        ),
    )

    @field_validator("gpu_model")
    @classmethod
    def _canonical_model(cls, v: str | None) -> str | None:
        return normalise_gpu_model(v)

    @field_validator("allowed_zones", "denied_zones")
    @classmethod
    def _zones(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        try:
            return expand_zones(v)
        except UnknownZoneError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("deadline")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError(f"deadline {v.isoformat()!r} has no time zone; add one, e.g. 'Z'")
        if v is not None:
            try:
                within_span(v, what="deadline")
            except InvalidInputError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _some_zone_left(self) -> JobSpec:
        if self.allowed_zones is not None and not set(self.allowed_zones) - set(
            self.denied_zones or []
        ):
            raise ValueError("every allowed zone is also denied; leave at least one zone open")
        return self


def check_deadline(spec: JobSpec, now: datetime, *, what: str = "deadline") -> None:
    """Raise naming the deadline when the job cannot finish by it if it started `now`."""
    if spec.deadline is None:
        return
    if spec.deadline <= now:
        raise InvalidInputError(
            f"{what} {spec.deadline.isoformat()!r} has already passed (it is now "
            f"{now.isoformat()}): give a later time"
        )
    finish = now + timedelta(hours=spec.duration_hours)
    if spec.deadline < finish:
        raise InvalidInputError(
            f"{what} {spec.deadline.isoformat()!r} is too soon for a {spec.duration_hours:g} h "
            f"job started now ({now.isoformat()}): give {finish.isoformat()} or later, or "
            "fewer hours"
        )


class WorkloadView(BaseModel):
    """A workload as tools, the API and the CLI show it."""

    id: str
    org_id: str
    name: str
    status: WorkloadStatus
    gpu_count: int
    gpu_model: str | None
    duration_hours: float
    deadline: datetime | None
    allowed_zones: list[str] | None
    denied_zones: list[str] | None
    max_carbon_intensity: float | None
    node_id: str | None
    zone: str | None
    reroute_count: int
    score: float | None
    energy_kwh_estimate: float | None
    co2_kg_estimate: float | None
    submitted_at: datetime
    routed_at: datetime | None
    planned_start_at: datetime | None = None
    """When scheduled work starts on its node (None unless scheduled)."""
    movable: bool = True
    """Whether it may move while it runs, other than by failover (`JobSpec.movable`)."""
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, w: Workload) -> WorkloadView:
        """Build the view of an ORM workload."""
        return cls(
            id=w.id,
            org_id=w.org_id,
            name=w.name,
            status=w.status,
            gpu_count=w.gpu_count,
            gpu_model=w.gpu_model,
            duration_hours=w.duration_hours,
            deadline=w.deadline,
            allowed_zones=w.allowed_zones,
            denied_zones=w.denied_zones,
            max_carbon_intensity=w.max_carbon_intensity,
            node_id=w.node_id,
            zone=w.node.zone if w.node is not None else None,
            reroute_count=w.reroute_count,
            score=w.score,
            energy_kwh_estimate=w.energy_kwh_estimate,
            co2_kg_estimate=w.co2_kg_estimate,
            submitted_at=w.submitted_at,
            routed_at=w.routed_at,
            planned_start_at=w.planned_start_at,
            movable=w.movable,
            started_at=w.started_at,
            finished_at=w.finished_at,
        )

    def spec(self) -> JobSpec:
        """Return the job requirements of this workload."""
        return JobSpec(
            gpu_count=self.gpu_count,
            duration_hours=self.duration_hours,
            gpu_model=self.gpu_model,
            deadline=self.deadline,
            allowed_zones=self.allowed_zones,
            denied_zones=self.denied_zones,
            max_carbon_intensity=self.max_carbon_intensity,
            movable=self.movable,
        )


def submit_workload(
    *,
    session: Session,
    org_id: str,
    name: str,
    spec: JobSpec,
    now: datetime,
    recommendation_id: str | None = None,
) -> WorkloadView:
    """Record a new pending workload for organisation `org_id`.

    Args:
        session: The caller's transaction.
        org_id: Owning organisation.
        name: A name people recognise (1-200 characters).
        spec: What the job needs.
        now: Submission time.
        recommendation_id: The stored recommendation this workload commits (unique), if any.
    """
    org = repo.get_organization(session=session, org_id=org_id)
    if org is None:
        raise NotFoundError(
            f"organization {org_id!r} does not exist; check the id against the organisations list"
        )
    if not name.strip() or len(name) > 200:
        raise InvalidInputError(f"workload name {name!r}: give 1-200 characters")
    check_deadline(spec, now)
    w = Workload(
        id=f"wl_{uuid.uuid4().hex[:12]}",
        org_id=org_id,
        name=name.strip(),
        gpu_count=spec.gpu_count,
        gpu_model=spec.gpu_model,
        duration_hours=spec.duration_hours,
        deadline=spec.deadline,
        allowed_zones=spec.allowed_zones,
        denied_zones=spec.denied_zones,
        max_carbon_intensity=spec.max_carbon_intensity,
        movable=spec.movable,
        status="pending",
        reroute_count=0,
        submitted_at=now,
        updated_at=now,
        recommendation_id=recommendation_id,
    )
    repo.add(session=session, obj=w)
    return WorkloadView.of(w)


def load_workload(*, session: Session, workload_id: str, for_update: bool = False) -> Workload:
    """Return the ORM workload or raise NotFoundError naming the id."""
    w = repo.get_workload(session=session, workload_id=workload_id, for_update=for_update)
    if w is None:
        raise NotFoundError(
            f"workload {workload_id!r} does not exist; check the id against the list of workloads"
        )
    return w


def check_transition(current: str, target: str, workload_id: str) -> None:
    """Raise IllegalTransitionError unless `current -> target` is in the life cycle."""
    if target not in TRANSITIONS.get(current, frozenset()):
        allowed = sorted(TRANSITIONS.get(current, frozenset())) or ["none: it is final"]
        raise IllegalTransitionError(
            f"workload {workload_id!r} is {current!r} and cannot become {target!r}; "
            f"allowed next: {', '.join(allowed)}"
        )


def set_workload_status(
    *, session: Session, workload_id: str, status: str, now: datetime
) -> WorkloadView:
    """Move a workload along its life cycle (placing and starting go through the broker).

    Cancelling or failing scheduled work frees its reservation; routed or running work frees
    its GPUs.
    """
    if status in ("routed", "scheduled"):
        raise IllegalTransitionError("use the broker's route to place a workload on a node")
    w = load_workload(session=session, workload_id=workload_id, for_update=True)
    if w.status == "scheduled" and status == "running":
        raise IllegalTransitionError(
            f"workload {workload_id!r} is scheduled; start it through the broker so it gets "
            "its GPUs now"
        )
    check_transition(w.status, status, workload_id)
    if status in TERMINAL_STATUSES and w.status in ACTIVE_WORKLOAD_STATUSES and w.node_id:
        repo.release_gpus(session=session, node_id=w.node_id, gpus=w.gpu_count)
    if w.status == "scheduled":
        repo.release_reservation(session=session, workload_id=w.id)
        w.planned_start_at = None
    w.status = status
    if status == "running":
        w.started_at = now
    elif status in TERMINAL_STATUSES:
        w.finished_at = now
    w.updated_at = now
    flush_or_conflict(session, w)
    return WorkloadView.of(w)


def flush_or_conflict(session: Session, workload: Workload) -> None:
    """Flush; a concurrent change to the workload's row (version mismatch) is a ConflictError.

    Raises:
        ConflictError: The row changed since it was read; nothing of this change is written.
    """
    try:
        session.flush()
    except StaleDataError as exc:
        raise ConflictError(
            f"workload {workload.id!r} was changed by someone else meanwhile; reload it and retry"
        ) from exc
