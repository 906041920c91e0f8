"""Build the incident graph: MONITORING → ANOMALY_DETECTED → EVALUATING → ADAPTING → RESOLVED.

ADAPTING ends in ESCALATED instead when work could not move while the anomaly still holds (the alert
stays firing; see `tools.incidents.detection`). A run is one *attempt* on one checkpoint thread; a
later watcher pass that finds something changed opens the next attempt on the same incident
(ESCALATED → MONITORING), whose MONITORING goes to RESOLVED (resolving the alert) when the anomaly
cleared. Legal transitions: `store.incident_models.INCIDENT_TRANSITIONS`.

One node per state. Each node re-reads the incident row, does its work and records the transition
with time and reason in one transaction; a node whose transition is already stored skips its writes,
so a resumed run (after a crash) repeats nothing. Reroutes go through the broker and are stored per
(incident, workload). The deterministic path needs no model; a real model, when configured, writes
the incident summary.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer
from sqlalchemy.orm import Session

from agents.offline import is_offline
from graphs.context import Context
from graphs.state import IncidentInput, IncidentState
from prompts import render
from store import incident_repo
from store.incident_models import Incident
from tools.grid import GridSource
from tools.incidents.detection import grid_with_overrides, still_present
from tools.incidents.ports import AlertEventIn
from tools.incidents.response import (
    adapt_workload,
    affected_workloads,
    describe_clearance,
    evaluate_reroutes,
    stuck_workloads,
)

logger = logging.getLogger(__name__)
STATE_ORDER = incident_repo.INCIDENT_ORDER
RANK = {**{s: i for i, s in enumerate(STATE_ORDER)}, "ESCALATED": STATE_ORDER.index("RESOLVED")}
"""Position within one attempt: both RESOLVED and ESCALATED end it."""


def _load(session: Session, incident_id: str) -> Incident:
    incident = incident_repo.get_incident(session=session, incident_id=incident_id, for_update=True)
    if incident is None:
        raise LookupError(f"incident {incident_id!r} does not exist")
    return incident


def _past(incident: Incident, state: str) -> bool:
    return RANK[incident.state] >= RANK[state]


def _grid(ctx: Context, session: Session) -> GridSource:
    return grid_with_overrides(session=session, grid=ctx.grid, now=ctx.clock.now())


def _alert(
    ctx: Context,
    session: Session,
    incident: Incident,
    status: Literal["firing", "resolved"],
    text: str,
    revision: int = 0,
) -> None:
    # revision > 0: an ESCALATED attempt updates the still-firing alert (same key).
    if ctx.alerts is None:
        return
    suffix = ": escalated, work cannot move" if revision else ""
    event = AlertEventIn(
        title=f"Too Green To Go: {incident.trigger.replace('_', ' ')} in {incident.zone}{suffix}",
        status=status,
        deduplication_key=incident.id,
        description=text[:2000],
        metadata={
            "zone": incident.zone,
            "trigger": incident.trigger,
            "incident_id": incident.id,
            "state": "ESCALATED" if revision else incident.state,
        },
    )
    ctx.alerts.send(session=session, event=event, now=ctx.clock.now(), revision=revision)


def monitoring(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Confirm the anomaly still holds; move to ANOMALY_DETECTED, or on to RESOLVED."""
    ctx, now = runtime.context, runtime.context.clock.now()
    with ctx.sessions.begin() as session:
        incident = _load(session, state["incident_id"])
        if not _past(incident, "ANOMALY_DETECTED"):
            anomaly = still_present(
                session=session, grid=_grid(ctx, session), incident=incident, now=now
            )
            if anomaly is None and incident.attempt > 0:
                # An earlier attempt fired the alert: the resolved node resolves it.
                cleared = describe_clearance(session=session, incident=incident)
                return {"states": [incident.state], "resolution": f"anomaly cleared: {cleared}"}
            if anomaly is None:
                incident_repo.record_transition(
                    session=session,
                    incident=incident,
                    to_state="RESOLVED",
                    now=now,
                    reason="anomaly cleared before confirmation",
                )
            else:
                incident.details = {**incident.details, **anomaly.details}
                incident_repo.record_transition(
                    session=session,
                    incident=incident,
                    to_state="ANOMALY_DETECTED",
                    reason=anomaly.reason,
                    now=now,
                )
        return {"zone": incident.zone, "trigger": incident.trigger, "states": [incident.state]}


def route_after_monitoring(
    state: IncidentState,
) -> Literal["anomaly_detected", "resolved", "__end__"]:
    """Continue unless the anomaly cleared (resolving a fired alert first)."""
    if state.get("resolution"):
        return "resolved"
    return "__end__" if state["states"][-1] == "RESOLVED" else "anomaly_detected"  # END


def anomaly_detected(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Raise the alert and list the workloads at stake; move to EVALUATING."""
    ctx, now = runtime.context, runtime.context.clock.now()
    with ctx.sessions.begin() as session:
        incident = _load(session, state["incident_id"])
        affected = affected_workloads(session=session, incident=incident)
        if not _past(incident, "EVALUATING"):
            _alert(ctx, session, incident, "firing", str(incident.details))
            incident_repo.record_transition(
                session=session,
                incident=incident,
                to_state="EVALUATING",
                now=now,
                reason=f"{len(affected)} workload(s) at stake: {', '.join(affected) or 'none'}",
            )
        return {"affected": affected, "states": ["EVALUATING"]}


def evaluating(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Rank reroute candidates for each affected workload (read-only); move to ADAPTING."""
    ctx, now = runtime.context, runtime.context.clock.now()
    with ctx.sessions.begin() as session:
        incident = _load(session, state["incident_id"])
        evaluations = evaluate_reroutes(
            session=session,
            grid=_grid(ctx, session),
            workload_ids=state.get("affected", []),
            now=now,
            weights=ctx.weights,
        )
        if not _past(incident, "ADAPTING"):
            better = [e for e in evaluations if e["best_score"] is not None]
            incident_repo.record_transition(
                session=session,
                incident=incident,
                to_state="ADAPTING",
                now=now,
                reason=f"ranked alternatives for {len(evaluations)} workload(s); "
                f"{len(better)} have another eligible node",
            )
        return {"evaluations": evaluations, "states": ["ADAPTING"]}


def adapting(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Reroute each affected workload through the broker; list the work that could not move."""
    ctx, now = runtime.context, runtime.context.clock.now()
    reroutes = []
    for workload_id in state.get("affected", []):
        # One transaction per workload: the move and its incident record commit together.
        with ctx.sessions.begin() as session:
            incident = _load(session, state["incident_id"])
            if incident.state != "ADAPTING":
                break
            reroutes.append(
                adapt_workload(
                    session=session,
                    grid=_grid(ctx, session),
                    incident_id=incident.id,
                    workload_id=workload_id,
                    now=now,
                    weights=ctx.weights,
                    attempt=incident.attempt,
                )
            )
    with ctx.sessions() as session:
        incident = _load(session, state["incident_id"])
        stuck = stuck_workloads(
            session=session, grid=_grid(ctx, session), incident=incident, now=now
        )
    return {"reroutes": reroutes, "stuck": stuck}


def route_after_adapting(state: IncidentState) -> Literal["resolved", "escalated"]:
    """Escalate when work could not move while the anomaly holds; otherwise resolve."""
    return "escalated" if state.get("stuck") else "resolved"


def _summary(ctx: Context, incident: Incident, session: Session, escalation: str = "") -> str:
    # `escalation`: the reason of the ESCALATED transition about to be recorded.
    transitions = incident_repo.list_transitions(session=session, incident_id=incident.id)
    moves = incident_repo.list_reroutes(session=session, incident_id=incident.id)
    lines = "\n".join(
        f"- {t.at.isoformat()} {t.from_state} -> {t.to_state}: {t.reason}" for t in transitions
    )
    if escalation:
        lines += f"\n- {ctx.clock.now().isoformat()} {incident.state} -> ESCALATED: {escalation}"
    moved = (
        "\n".join(
            f"- {r.workload_id}: {r.outcome} {r.from_node_id} -> {r.to_node_id}" for r in moves
        )
        or "- none"
    )
    if is_offline(ctx.model):
        done = len({r.workload_id for r in moves if r.outcome == "rerouted"})
        kind = incident.trigger.replace("_", " ")
        text = (
            f"{kind} in {incident.zone}: {len({r.workload_id for r in moves})} workload(s) "
            f"evaluated, {done} rerouted."
        )
        return f"{text} Escalated: {escalation}" if escalation else text
    prompt = render(
        "incident.summary",
        incident_id=incident.id,
        zone=incident.zone,
        trigger=incident.trigger,
        opened_at=incident.opened_at.isoformat(),
        transitions=lines,
        reroutes=moved,
    )
    return str(ctx.model.invoke([HumanMessage(prompt)]).content)[:2000]


def resolved(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Record the outcome, resolve the alert and close the incident."""
    ctx, now = runtime.context, runtime.context.clock.now()
    with ctx.sessions.begin() as session:
        incident = _load(session, state["incident_id"])
        if incident.state != "RESOLVED":
            moves = incident_repo.list_reroutes(
                session=session, incident_id=incident.id, attempt=incident.attempt
            )
            summary = _summary(ctx, incident, session)
            # Alert before any write of ours, so no write lock is held during the HTTP call.
            _alert(ctx, session, incident, "resolved", summary)
            incident.summary = summary
            outcome = ", ".join(f"{r.workload_id} {r.outcome}" for r in moves) or "nothing to move"
            incident_repo.record_transition(
                session=session,
                incident=incident,
                to_state="RESOLVED",
                now=now,
                reason=state.get("resolution") or outcome,
            )
        return {"summary": incident.summary or "", "states": ["RESOLVED"]}


def escalated(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Record the stuck workloads and why, keep the alert firing and end this attempt."""
    ctx, now = runtime.context, runtime.context.clock.now()
    stuck = state.get("stuck", [])
    with ctx.sessions.begin() as session:
        incident = _load(session, state["incident_id"])
        if incident.state != "ESCALATED":
            names = "; ".join(s["reason"] for s in stuck)
            reason = (
                f"{len(stuck)} workload(s) cannot move while the anomaly holds: {names}; "
                "the alert stays firing"
            )
            # Summary (maybe a model call) and the alert update (HTTP) before any write of ours,
            # so no write lock is held meanwhile. The alert stays firing: no `resolved` here.
            incident.summary = _summary(ctx, incident, session, escalation=reason)
            _alert(
                ctx,
                session,
                incident,
                "firing",
                f"ESCALATED: {reason}",
                revision=incident.attempt + 1,
            )
            incident.details = {
                **incident.details,
                "stuck": stuck,
                "examined": state.get("affected", []),
            }
            incident_repo.record_transition(
                session=session, incident=incident, to_state="ESCALATED", reason=reason, now=now
            )
        return {"summary": incident.summary or "", "states": ["ESCALATED"]}


def build_incident_graph(
    *, checkpointer: Checkpointer = None
) -> CompiledStateGraph[IncidentState, Context, IncidentInput, IncidentState]:
    """Build and compile the incident state machine (run with durability='sync')."""
    builder = StateGraph(IncidentState, context_schema=Context, input_schema=IncidentInput)
    builder.add_node("monitoring", monitoring)
    builder.add_node("anomaly_detected", anomaly_detected)
    builder.add_node("evaluating", evaluating)
    builder.add_node("adapting", adapting)
    builder.add_node("resolved", resolved)
    builder.add_node("escalated", escalated)
    builder.add_edge(START, "monitoring")
    builder.add_conditional_edges(
        "monitoring", route_after_monitoring, ["anomaly_detected", "resolved", END]
    )
    builder.add_edge("anomaly_detected", "evaluating")
    builder.add_edge("evaluating", "adapting")
    builder.add_conditional_edges("adapting", route_after_adapting, ["resolved", "escalated"])
    builder.add_edge("resolved", END)
    builder.add_edge("escalated", END)
    return builder.compile(checkpointer=checkpointer, name="incident")
