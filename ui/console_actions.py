"""The console's actions, shared by the console and /api/v1: demo controls and workload actions.

Each action calls domain functions (`ui.demo`, `tools.incidents.alerts`, `ui.dashboard`,
`tools.money.profitability`, `tools.broker`) or graphs through the runtime and returns a
`StepResult`: what it did and what to look at. The guided 7-step demo flow that strings them
together is `ui.demo_flow`.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from store import repo
from tools.broker.baseline import BASELINE_NOTE, NEGATIVE_NOTE
from tools.broker.routing import DecisionView, reroute_workload, route_workload
from tools.broker.workloads import WorkloadView, load_workload, submit_workload
from tools.incidents import alerts
from tools.money.amounts import format_money
from tools.money.profitability import GroupBy, ProfitLine, profitability_report
from ui import dashboard as analytics
from ui import demo
from ui.console_runtime import ConsoleRuntime

logger = logging.getLogger(__name__)


class StepResult(BaseModel):
    """What one demo action or flow step did."""

    step: int | None
    title: str
    summary: str
    """One or two sentences for people (markdown)."""
    details: dict[str, Any]
    audio_alert_id: int | None = None


def gpus(count: int, model: str | None) -> str:
    """Return "4xH100" or "4 GPUs of any model"."""
    return f"{count}x{model}" if model else f"{count} GPUs of any model"


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.1f}{unit}"


def show_dashboard(rt: ConsoleRuntime) -> StepResult:
    """Return the dashboard figures."""
    now = rt.svc.clock.now()
    d = rt.read(lambda s: analytics.dashboard(session=s, grid=rt.svc.grid(), now=now))
    summary = (
        f"{d.nodes_online}/{d.nodes_total} nodes online, {d.gpus_free} of {d.gpus_total} GPUs "
        f"free; greenest zone **{d.greenest_zone}** at "
        f"{_fmt(d.greenest_carbon_intensity, ' gCO2/kWh')}, dirtiest **{d.dirtiest_zone}** at "
        f"{_fmt(d.dirtiest_carbon_intensity, ' gCO2/kWh')}."
    )
    return StepResult(
        step=None, title="Dashboard", summary=summary, details=d.model_dump(mode="json")
    )


def refresh_grid(rt: ConsoleRuntime, hours: int = 24) -> StepResult:
    """Ingest the last `hours` hours of every zone (the grid cycle)."""
    now = rt.svc.clock.now()
    report = rt.write(
        lambda s: demo.grid_cycle(session=s, grid=rt.svc.grid(), now=now, hours=hours)
    )
    summary = (
        f"Read {report.readings} hourly readings from the **{report.source}** grid: "
        f"{report.grid_states_added} new grid states, "
        f"{report.curtailment_events_added} new curtailment events."
    )
    return StepResult(
        step=None, title="Refresh grid", summary=summary, details=report.model_dump(mode="json")
    )


def rejections(d: DecisionView) -> str:
    """Return a decision's rejected nodes as markdown bullets, one reason each."""
    return "\n".join(
        f"- {r.get('node_id')} ({r.get('zone')}): {r.get('reason')}" for r in d.rejected
    )


def create_workload(rt: ConsoleRuntime, spec: demo.NewWorkload | None = None) -> StepResult:
    """Submit a workload and route it to the best-scoring node of the effective grid.

    The grid is the one every routing path reads (`Services.effective_grid`): stored spikes
    apply. A workload no node can take stays pending and the summary lists each rejection.
    """
    now = rt.svc.clock.now()
    rt.svc.warm_forecasts((spec or demo.NewWorkload()).job(now))
    made = rt.write(
        lambda s: demo.create_workload(
            session=s,
            grid=rt.svc.effective_grid(s),
            now=now,
            spec=spec,
            weights=rt.svc.weights,
            forecasts=rt.svc.forecasts(),
            move_running=rt.svc.settings.move_running_work,
        )
    )
    w, d = made.workload, made.decision
    job = f"**{w.name}** ({w.id}, {gpus(w.gpu_count, w.gpu_model)} for {w.duration_hours:g} h)"
    if d.node_id is None:
        summary = f"{job} could not be placed and stays pending: {d.reason}."
        if d.rejected:
            summary += "\n\n" + rejections(d)
    elif d.outcome == "scheduled" and d.start_at is not None:
        summary = (
            f"{job} scheduled on **{d.node_id}** in **{d.zone}** from "
            f"**{d.start_at:%Y-%m-%d %H:%M} UTC**: {_fmt(d.co2_kg, ' kg')} CO2 by forecast vs "
            f"{_fmt(d.co2_kg_if_started_now, ' kg')} starting now "
            f"({_fmt(d.saving_pct, ' %')} less)."
        )
    else:
        summary = (
            f"{job} routed to **{d.node_id}** in **{d.zone}**, score {d.score:.3f}; "
            f"estimated {_fmt(w.co2_kg_estimate, ' kg')} CO2."
        )
    if d.node_id is not None and d.co2_avoided_note:
        summary += f" {d.co2_avoided_note[:1].upper()}{d.co2_avoided_note[1:]}."
    return StepResult(
        step=None, title="Create workload", summary=summary, details=made.model_dump(mode="json")
    )


def trigger_curtailment(rt: ConsoleRuntime, zone: str = "FR", hours: int = 3) -> StepResult:
    """Store a curtailment window for `zone` and speak its alert."""
    now = rt.svc.clock.now()
    event = rt.write(
        lambda s: demo.trigger_curtailment(
            session=s, grid=rt.svc.grid(), now=now, zone=zone, hours=hours
        )
    )
    rt.speak_alerts()
    audio = rt.read(
        lambda s: next(
            (
                a
                for a in alerts.list_audio_alerts(session=s, kind="curtailment")
                if a.ref == str(event.event_id)
            ),
            None,
        )
    )
    summary = (
        f"**{event.zone}** has surplus renewables from {event.start:%H:%M} to "
        f"{event.end:%H:%M} UTC: every router now reads {event.zone} at "
        f"{_fmt(event.carbon_after, ' gCO2/kWh')} (was {_fmt(event.carbon_before)}) and "
        f"{_fmt(event.price_after, ' EUR/MWh')} (was {_fmt(event.price_before)}), marked surplus "
        "on the map, the zone table and the header. "
        + (f"Audio alert ({audio.engine}): “{audio.text}”" if audio else "No audio alert.")
    )
    return StepResult(
        step=None,
        title="Trigger curtailment",
        summary=summary,
        details=event.model_dump(mode="json"),
        audio_alert_id=audio.id if audio else None,
    )


def trigger_reroute(rt: ConsoleRuntime, workload_id: str | None = None) -> StepResult:
    """Spike carbon where a placed workload runs, then let the incident agent react."""
    now = rt.svc.clock.now()
    spike = rt.write(
        lambda s: demo.trigger_carbon_spike(
            session=s, grid=rt.svc.grid(), now=now, workload_id=workload_id
        )
    )
    handled = rt.run_incidents()
    rt.speak_alerts()
    timelines = rt.read(lambda s: alerts.incident_timelines(session=s, limit=20))
    mine = [t for t in timelines if t.id in handled]
    moves = [r for t in mine for r in t.reroutes]
    # A reroute of running work, a re-planned scheduled job and a placed pending job all move.
    moved = [r for r in moves if r["to_node_id"] and r["to_node_id"] != r["from_node_id"]]
    summary = (
        f"Carbon in **{spike.zone}** x{spike.carbon_factor:g}: {_fmt(spike.carbon_before)} → "
        f"{_fmt(spike.carbon_after)} gCO2/kWh. {len(mine)} incident(s) handled; "
        + (
            ", ".join(
                f"{r['workload_id']} moved {r['from_node_id']} → **{r['to_node_id']}**"
                if r["from_node_id"]
                else f"{r['workload_id']} placed on **{r['to_node_id']}**"
                for r in moved
            )
            or f"{len(moves)} move attempt(s), none moved"
        )
        + "."
    )
    audio = next((t.audio_alert_id for t in mine if t.audio_alert_id), None)
    return StepResult(
        step=None,
        title="Trigger reroute",
        summary=summary,
        details={
            "spike": spike.model_dump(mode="json"),
            "incidents": [t.model_dump(mode="json") for t in mine],
        },
        audio_alert_id=audio,
    )


def money_total(items: list[dict[str, Any]], field: str) -> str:
    """Return the sum of `field` per currency, e.g. "€9.56" (minor units in, text out)."""
    totals: dict[str, int] = {}
    for m in items:
        totals[m["currency"]] = totals.get(m["currency"], 0) + int(m[field])
    return " + ".join(format_money(v, c) for c, v in sorted(totals.items())) or format_money(0)


def complete_workloads(rt: ConsoleRuntime, workload_ids: list[str] | None = None) -> StepResult:
    """Complete placed work (all by default), then bill, pay gamers and mint carbon receipts."""
    result = rt.complete_and_settle(workload_ids)
    settled = result["settled"]
    receipts = [r["settlement"]["receipt"] for r in settled if r.get("settlement")]
    money = [r["settlement"] for r in settled if r.get("settlement")]
    paid = [r["payout"] for r in settled if r.get("payout")]
    payouts = "; ".join(
        f"{format_money(p['amount_minor'], p['currency'])} to {p['org_id']} ({p['status']})"
        for p in paid
    )
    summary = (
        f"Completed {len(result['completed'])} workload(s); settled {len(settled)}: "
        f"platform fee {money_total(money, 'fee_minor')}, provider share "
        f"{money_total(money, 'provider_share_minor')} booked, {len(paid)} gamer payout(s) on "
        f"Solana{f': {payouts}' if paid else ''}, {len(receipts)} carbon receipt(s) minted."
    )
    return StepResult(step=None, title="Complete workloads", summary=summary, details=result)


def profitability(rt: ConsoleRuntime, group_by: GroupBy = "workload") -> list[ProfitLine]:
    """Return the profitability lines grouped by workload, organisation or node."""
    rate = rt.svc.settings.solana_lamports_per_eur_cent
    return rt.read(
        lambda s: profitability_report(session=s, group_by=group_by, lamports_per_minor=rate)
    )


def show_profitability(rt: ConsoleRuntime) -> StepResult:
    """Return profitability per workload as a table, with totals and carbon ROI."""
    lines = profitability(rt, "workload")
    money = [line.model_dump() for line in lines]
    avoided = sum(line.co2_avoided_kg for line in lines)
    summary = (
        f"{len(lines)} settled workload(s): fees {money_total(money, 'fee_minor')}, margin "
        f"{money_total(money, 'margin_minor')} after chain costs, {avoided:,.3f} kg CO2 avoided."
    )
    if lines:
        summary += "\n\n" + profit_table(lines)
    return StepResult(
        step=None,
        title="Profitability",
        summary=summary,
        details={"lines": [line.model_dump(mode="json") for line in lines]},
    )


AVOIDED_NOTE = BASELINE_NOTE


def profit_table(lines: list[ProfitLine]) -> str:
    """Return profitability lines as a markdown table, money in its currency, then a total."""
    head = (
        "| workload | gross | fee | chain cost | margin | kg CO2 avoided | kg CO2 per € of fee |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    rows = [
        f"| {x.key} | {format_money(x.gross_minor, x.currency)} | "
        f"{format_money(x.fee_minor, x.currency)} | "
        f"{format_money(x.chain_cost_minor, x.currency)} | "
        f"{format_money(x.margin_minor, x.currency)} | {x.co2_avoided_kg:.3f} | "
        + ("n/a" if x.carbon_roi_kg_per_eur is None else f"{x.carbon_roi_kg_per_eur:.3f}")
        + " |"
        for x in lines
    ]
    money = [x.model_dump() for x in lines]
    fee = sum(x.fee_minor for x in lines)
    avoided = sum(x.co2_avoided_kg for x in lines)
    roi = f"{avoided / (fee / 100):.3f}" if fee else "n/a"
    total = (
        f"| **total** | {money_total(money, 'gross_minor')} | {money_total(money, 'fee_minor')} | "
        f"{money_total(money, 'chain_cost_minor')} | {money_total(money, 'margin_minor')} | "
        f"{avoided:.3f} | {roi} |"
    )
    note = AVOIDED_NOTE + (NEGATIVE_NOTE if any(x.co2_avoided_kg < 0 for x in lines) else "")
    return "\n".join([head, *rows, total]) + "\n\n" + note


def list_workloads(rt: ConsoleRuntime, limit: int = 200) -> list[WorkloadView]:
    """Return workloads, newest first."""
    return rt.read(
        lambda s: [WorkloadView.of(w) for w in repo.list_workloads(session=s, limit=limit)]
    )


def submit(rt: ConsoleRuntime, spec: demo.NewWorkload, *, route: bool) -> StepResult:
    """Submit a workload; route it at once when `route` is true."""
    if route:
        return create_workload(rt, spec)
    now = rt.svc.clock.now()
    job = spec.job(now)
    view = rt.write(
        lambda s: submit_workload(session=s, org_id=spec.org_id, name=spec.name, spec=job, now=now)
    )
    return StepResult(
        step=None,
        title="Submit workload",
        details=view.model_dump(mode="json"),
        summary=f"**{view.name}** submitted as {view.id} (pending).",
    )


def route_or_reroute(rt: ConsoleRuntime, workload_id: str) -> StepResult:
    """Route a pending workload, or reroute a placed one (>= 25 % better, at most 5 times)."""
    now = rt.svc.clock.now()
    seen = rt.read(lambda s: WorkloadView.of(load_workload(session=s, workload_id=workload_id)))
    if seen.status == "pending":
        rt.svc.warm_forecasts(seen.spec())

    def run(s: Any) -> DecisionView:
        w = load_workload(session=s, workload_id=workload_id)
        if w.status == "pending":
            return route_workload(
                session=s,
                grid=rt.svc.effective_grid(s),
                workload_id=workload_id,
                now=now,
                weights=rt.svc.weights,
                forecasts=rt.svc.forecasts(),
                move_running=rt.svc.settings.move_running_work,
            )
        return reroute_workload(
            session=s,
            grid=rt.svc.effective_grid(s),
            workload_id=workload_id,
            now=now,
            weights=rt.svc.weights,
        )

    d = rt.write(run)
    summary = (
        f"{d.kind} of {workload_id}: **{d.outcome}**"
        + (f" → {d.node_id} in {d.zone}" if d.node_id else "")
        + f". {d.reason or ''}"
    )
    if d.outcome == "no_eligible_node" and d.rejected:
        summary += "\n\n" + rejections(d)
    return StepResult(step=None, title="Route", summary=summary, details=d.model_dump(mode="json"))
