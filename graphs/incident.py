"""Build the incident graph: MONITORING → ANOMALY_DETECTED → EVALUATING → ADAPTING → RESOLVED.

ADAPTING ends in ESCALATED instead when work could not move while the anomaly still holds (the alert
stays firing; see `tools.incidents.detection`). A run is one *attempt* on one checkpoint thread; a
later watcher pass that finds something changed opens the next attempt on the same incident
(ESCALATED → MONITORING), whose MONITORING goes to RESOLVED (resolving the alert) when the anomaly
cleared. Legal transitions: `store.incident_models.INCIDENT_TRANSITIONS`.

One node per state. Each node's transaction first renews this watcher's claim on the incident
(`graphs.incident_claims.load_claimed`: the lease heartbeat, and the fence that stops a watcher
whose claim was taken over after its lease ran out), re-reads the incident, does its work and
records the transition with time and reason; a node whose transition is already stored skips its
writes, so a resumed run (after a crash) repeats nothing.

ADAPTING moves the affected work (`tools.incidents.response`): routed or running work is
rerouted through the broker (25 % / 5 moves), one transaction per workload; free work (pending,
scheduled not started) is re-planned at once through the one planner: the joint plan of all
free work is made in one transaction (read-only) and each affected workload's slot is applied
in its own. Each move and its record (per incident, attempt and workload) commit together; a
workload already recorded is skipped, so a resumed ADAPTING repeats no move.

No node calls a model. The joint re-plan reads the process's forecasts (`Context.forecasts`):
with an Electricity Maps key that is a network service, but the watcher asks it for every zone
before a pass opens any transaction, and again before the next incident or the hourly re-plan
once a pass has crossed the hour (`graphs.incident_watch.warm_forecasts`), and it keeps its
answers for the hour, so a plan reads them from memory (only a plan needing more than 47 hours
ahead asks again, inside its transaction). Without a key no node touches the network.

The alert events (firing, escalated update, resolved) and, when a real model is configured, the
request for a model-written summary are outbox rows written in the transition's transaction and
delivered after commit (`tools.incidents.outbox`); the incident carries the template summary
until the model's arrives.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer
from sqlalchemy.orm import Session

from graphs.context import Context
from graphs.incident_claims import load_claimed
from graphs.state import IncidentInput, IncidentState
from prompts import render
from store import incident_repo, repo
from store.incident_models import Incident
from tools.grid import GridSource
from tools.incidents.detection import grid_with_overrides, still_present
from tools.incidents.outbox import enqueue_alert, enqueue_summary, template_summary
from tools.incidents.ports import IncidentSummarizer, SummaryFacts, SummaryUnavailableError
from tools.incidents.response import (
    adapt_workload,
    affected_workloads,
    describe_clearance,
    evaluate_reroutes,
    is_free,
    plan_free_work,
    replan_free_work,
    reroute_view,
    stuck_workloads,
)

logger = logging.getLogger(__name__)
STATE_ORDER = incident_repo.INCIDENT_ORDER
RANK = {**{s: i for i, s in enumerate(STATE_ORDER)}, "ESCALATED": STATE_ORDER.index("RESOLVED")}
"""Position within one attempt: both RESOLVED and ESCALATED end it."""


def _past(incident: Incident, state: str) -> bool:
    return RANK[incident.state] >= RANK[state]


def _grid(ctx: Context, session: Session) -> GridSource:
    return grid_with_overrides(session=session, grid=ctx.grid, now=ctx.clock.now())


def model_summarizer(model: BaseChatModel, *, enabled: bool) -> IncidentSummarizer | None:
    """Return a summarizer asking `model` for the summary, or None when summaries are off.

    Any failure of the model call (timeout, connection, 5xx, refusal, empty answer) becomes
    `SummaryUnavailableError`: the outbox keeps the template summary and tries again later.
    """
    if not enabled:
        return None

    def summarize(facts: SummaryFacts) -> str:
        prompt = render("incident.summary", **facts.model_dump())
        try:
            reply = model.invoke([HumanMessage(prompt)])
        except Exception as exc:  # noqa: BLE001 - whatever the model library raises, retry later
            raise SummaryUnavailableError(
                f"model call failed: {type(exc).__name__}: {exc}"
            ) from exc
        text = str(reply.content).strip()
        if not text:
            raise SummaryUnavailableError("the model answered with no text")
        return text[:2000]

    return summarize


def monitoring(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Confirm the anomaly still holds; move to ANOMALY_DETECTED, or on to RESOLVED."""
    ctx, now = runtime.context, runtime.context.clock.now()
    with ctx.sessions.begin() as session:
        incident = load_claimed(ctx, session, state["incident_id"])
        if not _past(incident, "ANOMALY_DETECTED"):
            anomaly = still_present(
                session=session, grid=_grid(ctx, session), incident=incident, now=now
            )
            if anomaly is None and incident.attempt > 0:
                # An earlier attempt fired the alert: the resolved node resolves it.
                cleared = describe_clearance(session=session, incident=incident, now=now)
                return {"states": [incident.state], "resolution": f"anomaly cleared: {cleared}"}
            if anomaly is None:
                incident_repo.record_transition(
                    session=session,
                    incident=incident,
                    to_state="RESOLVED",
                    now=now,
                    reason="anomaly cleared before confirmation",
                )
                incident.open_key = None  # seen absent: the episode is over
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
        incident = load_claimed(ctx, session, state["incident_id"])
        affected = affected_workloads(session=session, incident=incident, now=now)
        if not _past(incident, "EVALUATING"):
            if ctx.alerts is not None:
                enqueue_alert(
                    session=session,
                    incident=incident,
                    status="firing",
                    text=str(incident.details),
                    now=now,
                )
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
        incident = load_claimed(ctx, session, state["incident_id"])
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
    """Reroute placed work, re-plan free work jointly; list the work that could not move."""
    ctx, now = runtime.context, runtime.context.clock.now()
    affected = state.get("affected", [])
    reroutes = []
    for workload_id in affected:
        # One transaction per workload: the move and its incident record commit together.
        with ctx.sessions.begin() as session:
            incident = load_claimed(ctx, session, state["incident_id"])
            if incident.state != "ADAPTING":
                break
            workload = repo.get_workload(session=session, workload_id=workload_id)
            if workload is not None and is_free(workload, now):
                continue  # re-planned jointly below
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
    with ctx.sessions.begin() as session:
        incident = load_claimed(ctx, session, state["incident_id"])
        slots = []
        if incident.state == "ADAPTING":
            slots = plan_free_work(
                session=session,
                grid=_grid(ctx, session),
                incident=incident,
                workload_ids=affected,
                now=now,
                weights=ctx.weights,
                forecasts=ctx.forecasts,
                move_running=ctx.move_running_work,
            )
    for slot in slots:
        with ctx.sessions.begin() as session:
            incident = load_claimed(ctx, session, state["incident_id"])
            if incident.state != "ADAPTING":
                break
            reroutes.append(
                replan_free_work(
                    session=session,
                    grid=_grid(ctx, session),
                    incident_id=incident.id,
                    slot=slot,
                    now=now,
                    weights=ctx.weights,
                    attempt=incident.attempt,
                )
            )
    with ctx.sessions.begin() as session:
        incident = load_claimed(ctx, session, state["incident_id"])
        recorded = {r["workload_id"] for r in reroutes}
        reroutes += [
            reroute_view(r)
            for r in incident_repo.list_reroutes(
                session=session, incident_id=incident.id, attempt=incident.attempt
            )
            if r.workload_id not in recorded  # re-planned before a resume
        ]
        stuck = stuck_workloads(
            session=session, grid=_grid(ctx, session), incident=incident, now=now
        )
    return {"reroutes": reroutes, "stuck": stuck}


def route_after_adapting(state: IncidentState) -> Literal["resolved", "escalated"]:
    """Escalate when work could not move while the anomaly holds; otherwise resolve."""
    return "escalated" if state.get("stuck") else "resolved"


def _owe_summary_and_alert(
    ctx: Context,
    session: Session,
    incident: Incident,
    status: Literal["firing", "resolved"],
    text: str,
    revision: int = 0,
) -> None:
    """Queue the alert (when a sink is configured) and a model summary (when a model is)."""
    now = ctx.clock.now()
    if ctx.alerts is not None:
        enqueue_alert(
            session=session,
            incident=incident,
            status=status,
            text=text,
            now=now,
            revision=revision,
        )
    if ctx.model_summaries:
        enqueue_summary(session=session, incident=incident, now=now)


def resolved(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Record the outcome with the template summary; owe the resolved alert and a model summary."""
    ctx, now = runtime.context, runtime.context.clock.now()
    with ctx.sessions.begin() as session:
        incident = load_claimed(ctx, session, state["incident_id"])
        if incident.state != "RESOLVED":
            moves = incident_repo.list_reroutes(
                session=session, incident_id=incident.id, attempt=incident.attempt
            )
            outcome = ", ".join(f"{r.workload_id} {r.outcome}" for r in moves) or "nothing to move"
            incident_repo.record_transition(
                session=session,
                incident=incident,
                to_state="RESOLVED",
                now=now,
                reason=state.get("resolution") or outcome,
            )
            if state.get("resolution"):
                incident.open_key = None  # seen absent: the episode is over
            incident.summary = template_summary(session=session, incident=incident)
            _owe_summary_and_alert(ctx, session, incident, "resolved", incident.summary)
        return {"summary": incident.summary or "", "states": ["RESOLVED"]}


def escalated(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Record the stuck workloads and why, owe the escalated alert update; end this attempt."""
    ctx, now = runtime.context, runtime.context.clock.now()
    stuck = state.get("stuck", [])
    with ctx.sessions.begin() as session:
        incident = load_claimed(ctx, session, state["incident_id"])
        if incident.state != "ESCALATED":
            names = "; ".join(s["reason"] for s in stuck)
            reason = (
                f"{len(stuck)} workload(s) cannot move while the anomaly holds: {names}; "
                "the alert stays firing"
            )
            incident.details = {
                **incident.details,
                "stuck": stuck,
                "examined": state.get("affected", []),
            }
            revision = incident.attempt + 1  # updates the still-firing alert (same key)
            incident_repo.record_transition(
                session=session, incident=incident, to_state="ESCALATED", reason=reason, now=now
            )
            incident.summary = template_summary(
                session=session, incident=incident, escalation=reason
            )
            _owe_summary_and_alert(
                ctx, session, incident, "firing", f"ESCALATED: {reason}", revision=revision
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
