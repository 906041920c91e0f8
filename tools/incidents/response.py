"""Respond to an incident: find the work at stake, move it, decide when work is stuck.

Affected work (`affected_workloads`): for a carbon or price spike in zone Z, the work at stake
on nodes in Z; for a node going offline, the work at stake on that node (work at stake: routed,
running, and scheduled work not started yet, see `tools.incidents.detection`); for a surplus in
Z, flexible work that may run in Z: routed or scheduled-not-started work on nodes elsewhere, and
pending work.

How it moves depends on whether it started:

* Placed work (routed or running) is rerouted through the broker (`adapt_workload`: >= 25 %
  better, at most 5 moves per workload; failover off a node that is not online ignores the
  25 %; work that is not `movable` moves only by failover).
* Free work (pending, and scheduled work whose planned start is ahead) is re-planned at once
  through the one planner (`replan_free_work`): `tools.broker.replan.plan_jointly` plans all
  free work together, naming the affected free work in `force` so it is planned although it
  was decided on this hour, on the same grid the routers read (overrides included); each
  affected slot is applied with `tools.broker.replan_apply.apply_slot` in `apply_order`. A
  scheduled job keeps its window unless the plan's window saves `DEFER_MIN_SAVING` of forecast
  CO2, or its node can no longer take it (offline): then it moves.

Each (incident, attempt, workload) is moved at most once: its record (outcome, from and to node,
decision) is stored in the same transaction as the move, and a resumed run that finds the
record repeats nothing.

Escalation (one incident per anomaly episode): after ADAPTING, a workload is *stuck* when it is
still affected and either sits on a node that is not online (node_offline: it cannot run there; a
scheduled job the re-plan could not move off it included) or, for a carbon or price spike, routed
or running work the broker had no other eligible node for or hit the reroute limit. A spike
workload kept because no alternative was >= 25 % better, or because it is not movable, is a
decision, not stuck; so is a scheduled job the spike's re-plan keeps: it has not started, the plan
weighed the spike against its window, and the hourly re-plan looks again. Surplus incidents are
opportunities and never leave work stuck. Stuck work while the anomaly holds makes the incident
ESCALATED instead of RESOLVED: its alert stays firing and its open key stays set, so the watcher
opens no second incident for the same anomaly. Each later pass re-examines it read-only
(`review_escalation`) and starts a new attempt only when something changed: the anomaly cleared,
new work is at stake, or a stuck workload has an eligible node again. Otherwise nothing is written.
Each ESCALATED attempt updates the firing alert once (same deduplication key) with the stuck work.
There is no periodic reminder of our own: the alert stays firing and incident.io's escalation paths
re-page; another update would not page anyone.

Stuck work keeps its workload status (`routed`, `running` or `scheduled`): the node may come
back (a repaired node resumes the work, see day_2023_09_14), `failed` is final and cannot be
undone, and whether to give up on a job is the customer's or operator's call; the firing alert
and the ESCALATED incident (stuck workloads and why) tell them a call is needed.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from store import incident_repo, repo
from store.incident_models import Incident, IncidentReroute
from store.models import RoutingDecision, Workload
from tools.broker.replan import JointSlot, plan_jointly
from tools.broker.replan_apply import apply_order, apply_slot
from tools.broker.rerouting import MAX_REROUTES, node_down, reroute_options, reroute_workload
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.workloads import WorkloadView, load_workload
from tools.errors import RerouteRefusedError
from tools.grid import GridSource
from tools.grid.outlook import ForecastProvider
from tools.incidents.detection import (
    HARMFUL,
    may_run_in,
    pending_work,
    placements_at_stake,
    still_present,
)

logger = logging.getLogger(__name__)


def affected_workloads(*, session: Session, incident: Incident, now: datetime) -> list[str]:
    """Return ids of the workloads this incident may move (see the module docstring)."""
    placed = placements_at_stake(session, now)
    if incident.trigger == "node_offline":
        node_id = incident.details.get("node_id")
        return [w.id for w, n in placed if n.id == node_id]
    if incident.trigger == "surplus":
        zone = incident.zone
        elsewhere = [
            w.id
            for w, n in placed
            if w.status != "running" and n.zone != zone and may_run_in(w, zone)
        ]
        return elsewhere + [w.id for w in pending_work(session) if may_run_in(w, zone)]
    return [w.id for w, n in placed if n.zone == incident.zone]


def is_free(workload: Workload, now: datetime) -> bool:
    """Return True for free work: pending, or scheduled with its planned start still ahead."""
    start = workload.planned_start_at
    return workload.status == "pending" or (
        workload.status == "scheduled" and start is not None and start > now
    )


def evaluate_reroutes(
    *,
    session: Session,
    grid: GridSource,
    workload_ids: list[str],
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> list[dict[str, Any]]:
    """Rank alternatives for each workload now, without writing (the EVALUATING step).

    Each is asked what its reroute would ask of a node (`tools.broker.rerouting.reroute_options`:
    the hours it has left, or all of them for a restart), beside the GPUs it holds itself.
    """
    out: list[dict[str, Any]] = []
    for wid in workload_ids:
        wl = load_workload(session=session, workload_id=wid)
        view = WorkloadView.of(wl)
        current, best = reroute_options(
            session=session, grid=grid, workload=wl, now=now, weights=weights
        )
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


def plan_free_work(
    *,
    session: Session,
    grid: GridSource,
    incident: Incident,
    workload_ids: list[str],
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    forecasts: ForecastProvider | None = None,
    move_running: bool = True,
) -> list[JointSlot]:
    """Plan the affected free work this attempt has not re-planned yet; write nothing.

    All free work is planned jointly (`plan_jointly`), the affected part named in `force` so a
    decision made earlier this hour does not hold it back. Returns the affected slots in the
    order to apply them (`apply_order`).
    """
    force: set[str] = set()
    for wid in workload_ids:
        w = repo.get_workload(session=session, workload_id=wid)
        done = incident_repo.find_reroute(
            session=session, incident_id=incident.id, workload_id=wid, attempt=incident.attempt
        )
        if w is not None and done is None and is_free(w, now):
            force.add(wid)
    if not force:
        return []
    slots = plan_jointly(
        session=session,
        grid=grid,
        now=now,
        weights=weights,
        force=force,
        forecasts=forecasts,
        move_running=move_running,
    )
    return apply_order([s for s in slots if s.workload_id in force], now)


def replan_free_work(
    *,
    session: Session,
    grid: GridSource,
    incident_id: str,
    slot: JointSlot,
    now: datetime,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    attempt: int = 0,
) -> dict[str, Any]:
    """Apply one affected free workload's joint slot for an incident, at most once per attempt.

    Work that started since the plan was made (no longer free) is rerouted instead
    (`adapt_workload`).
    """
    done = incident_repo.find_reroute(
        session=session, incident_id=incident_id, workload_id=slot.workload_id, attempt=attempt
    )
    if done is not None:
        return reroute_view(done)
    decision = apply_slot(
        session=session, grid=grid, slot=slot, now=now, weights=weights, force=True
    )
    if decision is None:
        return adapt_workload(
            session=session,
            grid=grid,
            incident_id=incident_id,
            workload_id=slot.workload_id,
            now=now,
            weights=weights,
            attempt=attempt,
        )
    done = incident_repo.add_reroute(
        session=session,
        reroute=IncidentReroute(
            incident_id=incident_id,
            attempt=attempt,
            workload_id=slot.workload_id,
            decision_id=decision.id,
            outcome=decision.outcome,
            from_node_id=decision.previous_node_id,
            to_node_id=decision.node_id,
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
    still = set(affected_workloads(session=session, incident=incident, now=now))
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
        wl = repo.get_workload(session=session, workload_id=move.workload_id)
        assert wl is not None and wl.node_id is not None  # affected work is placed
        kept = move.outcome == "kept" and (
            bool(others) or not (wl.movable or node_down(session=session, node_id=wl.node_id))
        )
        if incident.trigger != "node_offline" and (is_free(wl, now) or kept):
            continue  # the broker (or the re-plan) chose to keep it: a decision, not stuck work
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


def describe_clearance(*, session: Session, incident: Incident, now: datetime) -> str:
    """Return why the incident's anomaly no longer holds, in words."""
    if incident.trigger == "node_offline":
        node_id = str(incident.details.get("node_id"))
        node = repo.get_node(session=session, node_id=node_id)
        if node is not None and node.status == "online":
            return f"node {node_id} is online again"
        return f"no routed, running or scheduled work left on node {node_id}"
    if affected_workloads(session=session, incident=incident, now=now):
        return f"the {incident.trigger.replace('_', ' ')} in {incident.zone} is over"
    return f"no work left at stake in {incident.zone}"


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
        cleared = describe_clearance(session=session, incident=incident, now=now)
        return f"anomaly cleared: {cleared}"
    affected = affected_workloads(session=session, incident=incident, now=now)
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
