"""Incident domain logic: detect grid and fleet anomalies, rank and make reroutes, grid overrides.

Triggers and thresholds (documented, tested):

* carbon_spike: a zone with routed or running work whose carbon intensity now is at least
  `CARBON_SPIKE_RATIO` (1.5) times its mean over the previous 24 hours and at least
  `CARBON_SPIKE_MIN` (100 gCO2/kWh).
* price_spike: same rule on the day-ahead price: `PRICE_SPIKE_RATIO` (2.0) times the 24-hour mean
  and at least `PRICE_SPIKE_MIN` (150 EUR/MWh). When both spike together the zone gets one
  carbon_spike incident whose details carry the price figures too.
* node_offline: a node that is offline or in maintenance while it still holds routed or running
  work (failover: the broker moves it without the 25 % rule).
* surplus: a zone reporting curtailment now while routed (not yet started) work sits elsewhere
  and may run there; an opportunity to pull flexible work in.

Reroutes always go through the broker (>= 25 % better, at most 5 per workload). Each
(incident, attempt, workload) is rerouted at most once, stored in the same transaction as the move.

Escalation (one incident per anomaly episode): after ADAPTING, a workload is *stuck* when it is
still affected and either sits on a node that is not online (node_offline: it cannot run) or,
for a carbon or price spike, the broker had no other eligible node or hit the reroute limit. A
spike workload kept because no alternative was >= 25 % better is a decision, not stuck; surplus
incidents are opportunities and never leave work stuck. Stuck work while the anomaly holds makes
the incident ESCALATED instead of RESOLVED: its alert stays firing and its open key stays set,
so the watcher opens no second incident for the same anomaly. Each later pass re-examines it
read-only (`review_escalation`) and starts a new attempt only when something changed: the
anomaly cleared, new work is at stake, or a stuck workload has an eligible node again.
Otherwise nothing is written. Each ESCALATED attempt updates the firing alert once (same
deduplication key) with the stuck work. There is no periodic reminder of our own: the alert stays
firing and incident.io's escalation paths re-page; another update would not page anyone.

Stuck work keeps its workload status (`routed` or `running`): the node may come back (a repaired
node resumes the work, see day_2023_09_14), `failed` is final and cannot be undone, and whether
to give up on a job is the customer's or operator's call; the firing alert and the ESCALATED
incident (stuck workloads and why) tell them a call is needed.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from store import incident_repo, repo
from store.incident_models import GridOverride, Incident, IncidentReroute
from store.models import ComputeNode, RoutingDecision, Workload
from tools.broker import MAX_REROUTES, recommend, reroute_workload
from tools.errors import InvalidInputError, NoGridDataError, RerouteRefusedError
from tools.grid import GridReading, GridSource, get_zone
from tools.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.workloads import WorkloadView

logger = logging.getLogger(__name__)

Trigger = Literal["carbon_spike", "price_spike", "node_offline", "surplus"]
CARBON_SPIKE_RATIO = 1.5
CARBON_SPIKE_MIN = 100.0
PRICE_SPIKE_RATIO = 2.0
PRICE_SPIKE_MIN = 150.0
BASELINE_HOURS = 24
ACTIVE = ("routed", "running")
HARMFUL: tuple[Trigger, ...] = ("node_offline", "carbon_spike", "price_spike")
"""Triggers whose affected work must leave; only these can leave work stuck (ESCALATED)."""


class Anomaly(BaseModel):
    """Something the watcher should open an incident for."""

    zone: str
    trigger: Trigger
    open_key: str
    reason: str
    details: dict[str, Any]


class OverriddenGrid:
    """A grid source with stored overrides applied (e.g. an injected carbon spike)."""

    def __init__(self, inner: GridSource, overrides: list[GridOverride]) -> None:
        self._inner = inner
        self._overrides = [(o.zone, o.starts_at, o.ends_at, o.carbon_factor, o.price_factor,
                            o.reason) for o in overrides]  # fmt: skip

    @property
    def inner(self) -> GridSource:
        """Return the grid source without overrides."""
        return self._inner

    @property
    def name(self) -> Any:
        """Return the inner source's name (overrides do not change the source)."""
        return self._inner.name

    def _apply(self, r: GridReading) -> GridReading:
        for zone, start, end, cf, pf, reason in self._overrides:
            if zone == r.zone and start <= r.ts + timedelta(minutes=59) and r.ts < end:
                return r.model_copy(update={
                    "carbon_intensity": None if r.carbon_intensity is None
                    else min(r.carbon_intensity * cf, 2000.0),
                    "price_eur_per_mwh": None if r.price_eur_per_mwh is None
                    else r.price_eur_per_mwh * pf,
                    "note": f"override x{cf:g} carbon, x{pf:g} price ({reason[:80]})",
                })  # fmt: skip
        return r

    def reading(self, zone: str, at: datetime) -> GridReading:
        """Return the inner reading with any override applied."""
        return self._apply(self._inner.reading(zone, at))

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        """Return the inner series with overrides applied hour by hour."""
        return [self._apply(r) for r in self._inner.series(zone, start, hours)]


def add_spike(
    *, session: Session, zone: str, carbon_factor: float, price_factor: float, hours: float,
    reason: str, now: datetime,
) -> GridOverride:  # fmt: skip
    """Store an override multiplying a zone's carbon (and price) from now for `hours`."""
    code = get_zone(zone.strip().upper()).code
    if not 0 < carbon_factor <= 20 or not 0 < price_factor <= 20:
        raise InvalidInputError(
            f"factors {carbon_factor!r}/{price_factor!r}: use values in (0, 20]"
        )
    if not 0 < hours <= 72:
        raise InvalidInputError(f"hours {hours!r}: a spike lasts between 0 and 72 hours")
    start = now.replace(minute=0, second=0, microsecond=0)
    return incident_repo.add_grid_override(session=session, override=GridOverride(
        zone=code, carbon_factor=carbon_factor, price_factor=price_factor, starts_at=start,
        ends_at=now + timedelta(hours=hours), reason=reason, created_at=now,
    ))  # fmt: skip


def grid_with_overrides(*, session: Session, grid: GridSource, now: datetime) -> GridSource:
    """Return `grid` wrapped with the overrides active within two days of `now`.

    Wrapping an already wrapped grid replaces its overrides (they never apply twice).
    """
    if isinstance(grid, OverriddenGrid):
        grid = grid.inner
    overrides = incident_repo.active_grid_overrides(
        session=session, start=now - timedelta(days=2), end=now + timedelta(days=2)
    )
    return OverriddenGrid(grid, list(overrides)) if overrides else grid


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    return sum(known) / len(known) if known else None


def _spikes(zone: str, grid: GridSource, now: datetime) -> list[Anomaly]:
    try:
        current = grid.reading(zone, now)
        history = grid.series(zone, now - timedelta(hours=BASELINE_HOURS), BASELINE_HOURS)
    except NoGridDataError:
        return []
    found: list[Anomaly] = []
    rules = (
        ("carbon_spike", "carbon_intensity", CARBON_SPIKE_RATIO, CARBON_SPIKE_MIN, "gCO2/kWh"),
        ("price_spike", "price_eur_per_mwh", PRICE_SPIKE_RATIO, PRICE_SPIKE_MIN, "EUR/MWh"),
    )
    for trigger, field, ratio, minimum, unit in rules:
        value = getattr(current, field)
        base = _mean([getattr(r, field) for r in history])
        if value is None or base is None or base <= 0:
            continue
        if value >= ratio * base and value >= minimum:
            found.append(Anomaly(
                zone=zone, trigger=trigger, open_key=f"{zone}:{trigger}",  # type: ignore[arg-type]
                reason=f"{zone} {field} {value:.0f} {unit} is {value / base:.1f}x its "
                f"{BASELINE_HOURS} h mean {base:.0f} (threshold {ratio}x and {minimum:g})",
                details={"value": round(value, 1), "baseline": round(base, 1), "ratio": ratio,
                         "minimum": minimum, "note": current.note},
            ))  # fmt: skip
    if len(found) == 2:
        # One incident per zone: a carbon spike that comes with a price spike is one event.
        carbon, price = found
        merged = carbon.model_copy(update={
            "reason": f"{carbon.reason}; {price.reason}",
            "details": {**carbon.details, "price": price.details},
        })  # fmt: skip
        return [merged]
    return found


def _active(session: Session) -> list[tuple[Workload, ComputeNode]]:
    stmt = (
        select(Workload, ComputeNode)
        .join(ComputeNode, Workload.node_id == ComputeNode.id)
        .where(Workload.status.in_(ACTIVE))
        .order_by(Workload.id)
    )
    return [(w, n) for w, n in session.execute(stmt).all()]


def detect_anomalies(*, session: Session, grid: GridSource, now: datetime) -> list[Anomaly]:
    """Return the anomalies present now (read-only), one per zone/trigger or offline node."""
    active = _active(session)
    found: list[Anomaly] = []
    for node_id in sorted({n.id for _, n in active if n.status != "online"}):
        node = next(n for _, n in active if n.id == node_id)
        found.append(Anomaly(
            zone=node.zone, trigger="node_offline", open_key=f"{node.zone}:node_offline:{node.id}",
            reason=f"node {node.id} is {node.status} while it holds routed or running work",
            details={"node_id": node.id, "status": node.status},
        ))  # fmt: skip
    for zone in sorted({n.zone for _, n in active}):
        found.extend(_spikes(zone, grid, now))
    waiting_zones = {n.zone for w, n in active if w.status == "routed"}
    for zone in sorted({n.zone for n in repo.list_nodes(session=session, status="online")}):
        if not waiting_zones - {zone}:
            continue
        try:
            reading = grid.reading(zone, now)
        except NoGridDataError:
            continue
        if reading.curtailment:
            found.append(Anomaly(
                zone=zone, trigger="surplus", open_key=f"{zone}:surplus",
                reason=f"{zone} is curtailing renewables now ({reading.renewable_pct}% renewable)"
                "; routed work elsewhere may move in",
                details={"renewable_pct": reading.renewable_pct},
            ))  # fmt: skip
    return found


def still_present(
    *, session: Session, grid: GridSource, incident: Incident, now: datetime
) -> Anomaly | None:
    """Return the incident's anomaly if it still holds now, else None."""
    for anomaly in detect_anomalies(session=session, grid=grid, now=now):
        if anomaly.open_key == incident.open_key:
            return anomaly
    return None


def affected_workloads(*, session: Session, incident: Incident) -> list[str]:
    """Return ids of the workloads this incident may move."""
    active = _active(session)
    if incident.trigger == "node_offline":
        node_id = incident.details.get("node_id")
        return [w.id for w, n in active if n.id == node_id]
    if incident.trigger == "surplus":
        return [w.id for w, n in active if w.status == "routed" and n.zone != incident.zone
                and (not w.allowed_zones or incident.zone in w.allowed_zones)
                and incident.zone not in (w.denied_zones or [])]  # fmt: skip
    return [w.id for w, n in active if n.zone == incident.zone]


def evaluate_reroutes(
    *, session: Session, grid: GridSource, workload_ids: list[str], now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> list[dict[str, Any]]:  # fmt: skip
    """Rank alternatives for each workload now, without writing (the EVALUATING step)."""
    out: list[dict[str, Any]] = []
    for wid in workload_ids:
        view = WorkloadView.of(repo.get_workload(session=session, workload_id=wid))  # type: ignore[arg-type]
        rec = recommend(session=session, grid=grid, spec=view.spec(), now=now, weights=weights)
        current = next((c for c in rec.candidates if c.node_id == view.node_id), None)
        best = next((c for c in rec.candidates if c.node_id != view.node_id), None)
        out.append({
            "workload_id": wid, "node_id": view.node_id, "zone": view.zone,
            "current_score": round(current.score, 4) if current else None,
            "best_node_id": best.node_id if best else None,
            "best_zone": best.zone if best else None,
            "best_score": round(best.score, 4) if best else None,
        })  # fmt: skip
    return out


def adapt_workload(
    *, session: Session, grid: GridSource, incident_id: str, workload_id: str, now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS, attempt: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Reroute one workload for an incident through the broker, at most once per attempt."""
    done = incident_repo.find_reroute(session=session, incident_id=incident_id,
                                      workload_id=workload_id, attempt=attempt)  # fmt: skip
    if done is None:
        try:
            decision = reroute_workload(session=session, grid=grid, workload_id=workload_id,
                                        now=now, weights=weights)  # fmt: skip
            outcome, to_node, from_node, decision_id = (
                decision.outcome,
                decision.node_id,
                decision.previous_node_id,
                decision.id,
            )
        except RerouteRefusedError as exc:
            logger.info("incident %s: %s", incident_id, exc)
            outcome, to_node, from_node, decision_id = "refused", None, None, None
        done = incident_repo.add_reroute(session=session, reroute=IncidentReroute(
            incident_id=incident_id, attempt=attempt, workload_id=workload_id,
            decision_id=decision_id,
            outcome=outcome, from_node_id=from_node, to_node_id=to_node, at=now,
        ))  # fmt: skip
    return reroute_view(done)


def stuck_workloads(
    *, session: Session, grid: GridSource, incident: Incident, now: datetime
) -> list[dict[str, Any]]:
    """Return the workloads the current attempt could not move while the anomaly still holds.

    Each entry names the workload, its node and why it stays (see the module docstring).
    """
    if incident.trigger not in HARMFUL:
        return []
    if still_present(session=session, grid=grid, incident=incident, now=now) is None:
        return []
    still = set(affected_workloads(session=session, incident=incident))
    out: list[dict[str, Any]] = []
    moves = incident_repo.list_reroutes(session=session, incident_id=incident.id,
                                        attempt=incident.attempt)  # fmt: skip
    for move in moves:
        if move.workload_id not in still:
            continue
        decision = session.get(RoutingDecision, move.decision_id) if move.decision_id else None
        others = [c for c in (decision.candidates if decision else [])
                  if c.get("node_id") != decision.previous_node_id]  # type: ignore[union-attr]  # fmt: skip
        if incident.trigger != "node_offline" and move.outcome == "kept" and others:
            continue  # the broker chose to keep it: a decision, not stuck work
        wl = repo.get_workload(session=session, workload_id=move.workload_id)
        assert wl is not None and wl.node_id is not None  # affected work is placed
        node = repo.get_node(session=session, node_id=wl.node_id)
        status = node.status if node else "missing"
        why = decision.reason if decision else "the broker refused the reroute"
        zones = ", ".join(wl.allowed_zones) if wl.allowed_zones else "any"
        out.append({
            "workload_id": wl.id, "name": wl.name, "node_id": wl.node_id, "node_status": status,
            "outcome": move.outcome,
            "reason": f"{wl.name} ({wl.id}) stays on {wl.node_id} ({status}): {move.outcome}, "
            f"{why}; allowed zones: {zones}",
        })  # fmt: skip
    return out


def describe_clearance(*, session: Session, incident: Incident) -> str:
    """Return why the incident's anomaly no longer holds, in words."""
    if incident.trigger == "node_offline":
        node_id = str(incident.details.get("node_id"))
        node = repo.get_node(session=session, node_id=node_id)
        if node is not None and node.status == "online":
            return f"node {node_id} is online again"
        return f"no routed or running work left on node {node_id}"
    if affected_workloads(session=session, incident=incident):
        return f"the {incident.trigger.replace('_', ' ')} in {incident.zone} is over"
    return f"no routed or running work left at stake in {incident.zone}"


def review_escalation(
    *, session: Session, grid: GridSource, incident: Incident, now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> str | None:  # fmt: skip
    """Return why an ESCALATED incident should run again now, or None when nothing changed.

    Read-only. Runs again when the anomaly cleared, new work is at stake, or a stuck workload
    has an eligible node now (and reroutes left).
    """
    if still_present(session=session, grid=grid, incident=incident, now=now) is None:
        return f"anomaly cleared: {describe_clearance(session=session, incident=incident)}"
    affected = affected_workloads(session=session, incident=incident)
    new = [w for w in affected if w not in set(incident.details.get("examined", []))]
    if new:
        return f"new workload(s) at stake: {', '.join(new)}"
    stuck = {s["workload_id"] for s in incident.details.get("stuck", [])}
    candidates = [w for w in affected if w in stuck]
    for ev in evaluate_reroutes(session=session, grid=grid, workload_ids=candidates, now=now,
                                weights=weights):  # fmt: skip
        wl = repo.get_workload(session=session, workload_id=ev["workload_id"])
        if ev["best_node_id"] is not None and wl is not None and wl.reroute_count < MAX_REROUTES:
            return (f"capacity appeared: {ev['workload_id']} may move to {ev['best_node_id']} "
                    f"in {ev['best_zone']}")  # fmt: skip
    return None


def reroute_view(r: IncidentReroute) -> dict[str, Any]:
    """Return a reroute attempt as JSON-shaped data."""
    return {
        "workload_id": r.workload_id,
        "attempt": r.attempt,
        "outcome": r.outcome,
        "from_node_id": r.from_node_id,
        "to_node_id": r.to_node_id,
        "decision_id": r.decision_id,
        "at": r.at.isoformat(),
    }
