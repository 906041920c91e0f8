"""Respond to an incident: find the work at stake, make reroutes, decide when work is stuck.

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
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from store import incident_repo, repo
from store.incident_models import Incident, IncidentReroute
from store.models import RoutingDecision
from tools.broker.routing import MAX_REROUTES, recommend, reroute_workload
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.workloads import WorkloadView, load_workload
from tools.errors import RerouteRefusedError
from tools.grid import GridSource
from tools.incidents.detection import HARMFUL, active_placements, may_run_in, still_present

logger = logging.getLogger(__name__)


def affected_workloads(*, session: Session, incident: Incident) -> list[str]:
    """Return ids of the workloads this incident may move."""
    active = active_placements(session)
    if incident.trigger == "node_offline":
        node_id = incident.details.get("node_id")
        return [w.id for w, n in active if n.id == node_id]
    if incident.trigger == "surplus":
        return [
            w.id
            for w, n in active
            if w.status == "routed" and n.zone != incident.zone and may_run_in(w, incident.zone)
        ]
    return [w.id for w, n in active if n.zone == incident.zone]


def evaluate_reroutes(
    *,
    session: Session,
    grid: GridSource,
    workload_ids: list[str],
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> list[dict[str, Any]]:
    """Rank alternatives for each workload now, without writing (the EVALUATING step)."""
    out: list[dict[str, Any]] = []
    for wid in workload_ids:
        view = WorkloadView.of(load_workload(session=session, workload_id=wid))
        rec = recommend(session=session, grid=grid, spec=view.spec(), now=now, weights=weights)
        current = next((c for c in rec.candidates if c.node_id == view.node_id), None)
        best = next((c for c in rec.candidates if c.node_id != view.node_id), None)
        out.append(
            {
                "workload_id": wid,
                "node_id": view.node_id,
                "zone": view.zone,
                "current_score": round(current.score, 4) if current else None,
                "best_node_id": best.node_id if best else None,
                "best_zone": best.zone if best else None,
                "best_score": round(best.score, 4) if best else None,
            }
        )
    return out


def adapt_workload(
    *,
    session: Session,
    grid: GridSource,
    incident_id: str,
    workload_id: str,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    attempt: int = 0,
) -> dict[str, Any]:
    """Reroute one workload for an incident through the broker, at most once per attempt."""
    done = incident_repo.find_reroute(
        session=session, incident_id=incident_id, workload_id=workload_id, attempt=attempt
    )
    if done is None:
        outcome: str  # the broker's outcome, or "refused"
        try:
            decision = reroute_workload(
                session=session, grid=grid, workload_id=workload_id, now=now, weights=weights
            )
            outcome, to_node, from_node, decision_id = (
                decision.outcome,
                decision.node_id,
                decision.previous_node_id,
                decision.id,
            )
        except RerouteRefusedError as exc:
            logger.info("incident %s: %s", incident_id, exc)
            outcome, to_node, from_node, decision_id = "refused", None, None, None
        done = incident_repo.add_reroute(
            session=session,
            reroute=IncidentReroute(
                incident_id=incident_id,
                attempt=attempt,
                workload_id=workload_id,
                decision_id=decision_id,
                outcome=outcome,
                from_node_id=from_node,
                to_node_id=to_node,
                at=now,
            ),
        )
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
    moves = incident_repo.list_reroutes(
        session=session, incident_id=incident.id, attempt=incident.attempt
    )
    for move in moves:
        if move.workload_id not in still:
            continue
        decision = session.get(RoutingDecision, move.decision_id) if move.decision_id else None
        others = (
            [c for c in decision.candidates if c.get("node_id") != decision.previous_node_id]
            if decision
            else []
        )
        if incident.trigger != "node_offline" and move.outcome == "kept" and others:
            continue  # the broker chose to keep it: a decision, not stuck work
        wl = repo.get_workload(session=session, workload_id=move.workload_id)
        assert wl is not None and wl.node_id is not None  # affected work is placed
        node = repo.get_node(session=session, node_id=wl.node_id)
        status = node.status if node else "missing"
        why = decision.reason if decision else "the broker refused the reroute"
        zones = ", ".join(wl.allowed_zones) if wl.allowed_zones else "any"
        out.append(
            {
                "workload_id": wl.id,
                "name": wl.name,
                "node_id": wl.node_id,
                "node_status": status,
                "outcome": move.outcome,
                "reason": f"{wl.name} ({wl.id}) stays on {wl.node_id} ({status}): {move.outcome}, "
                f"{why}; allowed zones: {zones}",
            }
        )
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
    *,
    session: Session,
    grid: GridSource,
    incident: Incident,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> str | None:
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
    for ev in evaluate_reroutes(
        session=session, grid=grid, workload_ids=candidates, now=now, weights=weights
    ):
        wl = repo.get_workload(session=session, workload_id=ev["workload_id"])
        if ev["best_node_id"] is not None and wl is not None and wl.reroute_count < MAX_REROUTES:
            return (
                f"capacity appeared: {ev['workload_id']} may move to {ev['best_node_id']} "
                f"in {ev['best_zone']}"
            )
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
