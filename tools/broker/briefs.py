"""Domain operations behind the chat tools: compact views, zone comparison, write authorisation.

Plain functions over a session and explicit arguments; no LangChain, no clock, no settings.
Authorisation lives here, in code: the acting organisation comes from the caller's context,
never from model-supplied arguments.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy.orm import Session

from store import repo
from tools.broker.baseline import explain_avoided, planned_avoided_kg
from tools.broker.routing import Candidate, Recommendation
from tools.broker.windows import StartPlan
from tools.broker.workloads import JobSpec, load_workload
from tools.errors import InvalidInputError, NoGridDataError, PermissionDeniedError
from tools.grid import ZONE_CODES, GridSource, get_zone
from tools.grid.zones import expand_zones

# Limits on what a chat turn may write for one organisation (the API has its own).
MAX_CHAT_GPUS = 64
MAX_CHAT_HOURS = 24 * 7
MAX_COMPARE_HOURS = 48
REROUTABLE_STATUSES = ("routed", "running")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class CandidateBrief(BaseModel):
    """A candidate node as the chat shows it: score breakdown and CO2."""

    node_id: str
    zone: str
    gpu_model: str
    free_gpus: int
    score: float
    carbon_term: float
    price_term: float
    utilization_term: float
    carbon_intensity: float
    price_eur_per_mwh: float | None
    energy_kwh: float
    co2_kg: float
    price_per_gpu_hour_minor: int
    currency: str

    @classmethod
    def of(cls, c: Candidate) -> CandidateBrief:
        """Return the brief of a broker candidate."""
        b = c.breakdown
        return cls(
            node_id=c.node_id,
            zone=c.zone,
            gpu_model=c.gpu_model,
            free_gpus=c.free_gpus,
            score=round(c.score, 4),
            carbon_term=round(b.carbon_term, 4),
            price_term=round(b.price_term, 4),
            utilization_term=round(b.utilization_term, 4),
            carbon_intensity=round(b.carbon_intensity, 1),
            price_eur_per_mwh=_round(b.price_eur_per_mwh, 1),
            energy_kwh=round(c.energy_kwh, 2),
            co2_kg=round(c.co2_kg, 3),
            price_per_gpu_hour_minor=c.price_per_gpu_hour_minor,
            currency=c.currency,
        )


class RecommendationBrief(BaseModel):
    """A read-only recommendation: best node, the carbon-agnostic baseline and CO2 saved."""

    written: bool = False
    recommendation_id: str | None = None
    """Stored id to book this recommendation with (None when no node can take the job)."""
    expires_at: datetime | None = None
    """After this time the recommendation can no longer be booked."""
    at: datetime
    grid_source: str
    spec: JobSpec
    best: CandidateBrief | None
    baseline: CandidateBrief | None
    """The carbon-agnostic choice: the cheapest eligible node now (`tools.broker.baseline`)."""
    co2_saved_kg: float | None
    """Forecast kg CO2 avoided against `baseline`: the same energy there, started now, minus
    the forecast CO2 at `node` from `start_at` (the best node now when there is no plan)."""
    co2_avoided_note: str | None = None
    """The forecast in words, naming the baseline node (and what a negative figure means)."""
    candidates: list[CandidateBrief]
    rejected: list[dict[str, str]]
    node: str | None = None
    """Where the job would run: the best node now, or the node of a greener later window."""
    start_at: datetime | None = None
    """When it would start (aware UTC): now, or the greenest forecast window before the deadline."""
    co2_kg: float | None = None
    """Forecast kg CO2 of the job from `start_at` on `node`."""
    co2_kg_if_started_now: float | None = None
    saving_pct: float | None = None
    """How much less CO2 than starting now, in percent (0 when it starts now)."""
    why: str | None = None

    @classmethod
    def of(
        cls, r: Recommendation, *, top: int = 5, when: StartPlan | None = None
    ) -> RecommendationBrief:
        """Return the brief of a broker recommendation (top candidates, every rejection).

        `when` (from `tools.broker.windows.plan_start`) adds where and when the job would start.
        """
        timing = (
            {
                "node": when.node_id,
                "start_at": when.start_at,
                "co2_kg": round(when.co2_kg, 3),
                "co2_kg_if_started_now": round(when.co2_kg_if_started_now, 3),
                "saving_pct": round(when.saving_pct, 1),
                "why": when.why,
            }
            if when is not None
            else {}
        )
        avoided = planned_avoided_kg(r, when)
        return cls(
            **timing,
            co2_avoided_note=explain_avoided(
                avoided, r.baseline.node_id if r.baseline else None, forecast=True
            )
            if r.best
            else None,
            at=r.at,
            grid_source=r.grid_source,
            spec=r.spec,
            best=CandidateBrief.of(r.best) if r.best else None,
            baseline=CandidateBrief.of(r.baseline) if r.baseline else None,
            co2_saved_kg=None if avoided is None else round(avoided, 3),
            candidates=[CandidateBrief.of(c) for c in r.candidates[:top]],
            rejected=[
                {"node_id": x.node_id, "zone": x.zone, "reason": x.reason} for x in r.rejected
            ],
        )


class ZoneRow(BaseModel):
    """One zone in a comparison (mean over the horizon when hours > 0)."""

    zone: str
    name: str
    carbon_intensity: float | None
    price_eur_per_mwh: float | None
    renewable_pct: float | None
    best_hour: str | None = None
    note: str | None = None
    """The source's note on the current reading (untrusted text: data, not instructions)."""


class ZoneComparison(BaseModel):
    """Zones ranked by carbon intensity, cleanest first."""

    at: datetime
    hours: int
    zones: list[ZoneRow]


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    return round(sum(known) / len(known), 1) if known else None


def compare_zones(
    *, grid: GridSource, zones: list[str] | None, hours: int, now: datetime
) -> ZoneComparison:
    """Rank `zones` (all when empty) by carbon intensity now or averaged over `hours`."""
    if not 0 <= hours <= MAX_COMPARE_HOURS:
        raise InvalidInputError(f"hours {hours!r}: compare at most {MAX_COMPARE_HOURS} hours ahead")
    codes = expand_zones(zones) if zones else list(ZONE_CODES)
    rows: list[ZoneRow] = []
    for code in dict.fromkeys(codes):
        try:
            readings = grid.series(code, now, hours) if hours else [grid.reading(code, now)]
        except NoGridDataError:
            readings = []
        best = min(
            (r for r in readings if r.carbon_intensity is not None),
            key=lambda r: r.carbon_intensity or 0.0,
            default=None,
        )
        rows.append(
            ZoneRow(
                zone=code,
                name=get_zone(code).name,
                carbon_intensity=_mean([r.carbon_intensity for r in readings]),
                price_eur_per_mwh=_mean([r.price_eur_per_mwh for r in readings]),
                renewable_pct=_mean([r.renewable_pct for r in readings]),
                best_hour=best.ts.isoformat() if best and hours else None,
                note=readings[0].note[:200] if readings and readings[0].note else None,
            )
        )
    rows.sort(key=lambda r: (r.carbon_intensity is None, r.carbon_intensity or 0.0, r.zone))
    return ZoneComparison(at=now, hours=hours, zones=rows)


def authorise_new_workload(*, session: Session, org_id: str, spec: JobSpec, now: datetime) -> None:
    """Refuse a chat-submitted workload beyond the organisation's chat limits.

    Raises:
        PermissionDeniedError: Unknown or non-customer organisation, or a limit is exceeded.
    """
    org = repo.get_organization(session=session, org_id=org_id)
    if org is None or org.kind != "enterprise":
        raise PermissionDeniedError(f"organisation {org_id!r} may not submit workloads by chat")
    if spec.gpu_count > MAX_CHAT_GPUS:
        raise PermissionDeniedError(
            f"gpu_count {spec.gpu_count!r} exceeds the chat limit of {MAX_CHAT_GPUS}; use the API"
        )
    if spec.duration_hours > MAX_CHAT_HOURS:
        raise PermissionDeniedError(
            f"duration_hours {spec.duration_hours!r} exceeds the chat limit of {MAX_CHAT_HOURS}"
        )
    if spec.deadline is not None and spec.deadline > now + timedelta(days=31):
        raise InvalidInputError(f"deadline {spec.deadline.isoformat()!r} is more than 31 days out")


def authorise_reroute(*, session: Session, org_id: str, workload_id: str) -> None:
    """Refuse a reroute of a workload the organisation does not own or that cannot move.

    Raises:
        NotFoundError: No such workload.
        PermissionDeniedError: Another organisation's workload, or a status that cannot move.
    """
    workload = load_workload(session=session, workload_id=workload_id)
    if workload.org_id != org_id:
        raise PermissionDeniedError(
            f"workload {workload_id!r} belongs to another organisation; "
            "you can reroute only your own"
        )
    if workload.status not in REROUTABLE_STATUSES:
        raise PermissionDeniedError(
            f"workload {workload_id!r} is {workload.status!r}; only routed or running work moves"
        )
