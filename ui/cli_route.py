"""`tgtg score` and `tgtg route`: score one node, and place one workload where and when."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from tools.broker.baseline import explain_avoided, forecast_avoided_kg
from tools.broker.placement import NO_READING, coverage_gap
from tools.broker.planner import Objective
from tools.broker.routing import DecisionView, JobSpec, recommend, route_workload, submit_workload
from tools.broker.scoring import score_one
from tools.broker.windows import StartPlan, plan_start
from tools.broker.workloads import check_deadline
from ui.cli_common import (
    AT_OPTION,
    JSON_OPTION,
    SOURCE_OPTION,
    cli_time,
    domain_errors,
    emit_json,
    fail,
    one_of,
    services,
    table,
    transaction,
    validation_message,
)


@domain_errors
def score(
    ctx: typer.Context,
    carbon: Annotated[float, typer.Option("--carbon", help="Carbon intensity, gCO2/kWh.")],
    price: Annotated[float | None, typer.Option("--price", help="Day-ahead price, €/MWh.")] = None,
    utilization: Annotated[float, typer.Option("--utilization", help="0 to 1.")] = 0.0,
    as_json: bool = JSON_OPTION,
) -> None:
    """Score one node: 0.6·CI/500 + 0.3·price/100 + 0.1·utilization (lower is better)."""
    b = score_one(carbon, price, utilization, services(ctx).weights)
    emit_json(b) if as_json else print(
        f"score {b.score:.3f} = carbon {b.carbon_term:.3f} + price {b.price_term:.3f} "
        f"+ utilization {b.utilization_term:.3f}"
    )


_SPEC_OPTIONS = {
    "gpu_count": "--gpus",
    "duration_hours": "--hours",
    "gpu_model": "--gpu-model",
    "deadline": "--deadline",
    "allowed_zones": "--zones",
    "denied_zones": "--deny",
    "max_carbon_intensity": "--max-carbon",
    "": "--zones/--deny",
}


def _zone_list(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    codes = [z for z in (p.strip() for p in text.split(",")) if z]
    if not codes:
        raise fail(f"{option} {text!r} names no zone: give codes separated by commas, e.g. FR,DE")
    return codes


def _spec(
    gpus: int,
    hours: float,
    gpu_model: str | None,
    deadline: str | None,
    zones: str | None,
    deny: str | None,
    max_carbon: float | None,
    movable: bool = True,
) -> JobSpec:
    raw = {
        "gpu_count": gpus,
        "duration_hours": hours,
        "gpu_model": gpu_model,
        "deadline": deadline,
        "allowed_zones": zones,
        "denied_zones": deny,
        "max_carbon_intensity": max_carbon,
    }
    try:
        return JobSpec(
            gpu_count=gpus,
            duration_hours=hours,
            gpu_model=gpu_model,
            deadline=cli_time(deadline, "--deadline") if deadline else None,
            allowed_zones=_zone_list(zones, "--zones"),
            denied_zones=_zone_list(deny, "--deny"),
            max_carbon_intensity=max_carbon,
            movable=movable,
        )
    except ValidationError as exc:
        raise fail(validation_message(exc, _SPEC_OPTIONS, raw)) from None


@domain_errors
def route(
    ctx: typer.Context,
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs needed.")],
    hours: Annotated[float, typer.Option("--hours", help="Run time in hours.")],
    gpu_model: Annotated[str | None, typer.Option("--gpu-model", help="e.g. H100.")] = None,
    deadline: Annotated[
        str | None, typer.Option("--deadline", help="Finish by (ISO-8601, UTC if no zone).")
    ] = None,
    zones: Annotated[
        str | None, typer.Option("--zones", help="Allowed zones, comma-separated.")
    ] = None,
    deny: Annotated[
        str | None, typer.Option("--deny", help="Denied zones, comma-separated.")
    ] = None,
    max_carbon: Annotated[float | None, typer.Option("--max-carbon", help="gCO2/kWh cap.")] = None,
    org: Annotated[str, typer.Option("--org", help="Customer organisation id.")] = "acme-ai",
    name: Annotated[str, typer.Option("--name", help="Workload name.")] = "cli job",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan where and when only; write nothing.")
    ] = False,
    movable: Annotated[
        bool,
        typer.Option(
            "--movable/--no-move",
            help="Whether it may move while it runs (checkpoint and restart elsewhere); "
            "--no-move: only when its node is down, restarting from the beginning.",
        ),
    ] = True,
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="What a later start must lower: carbon (forecast kg CO2) or composite (score).",
            callback=one_of("carbon", "composite"),
        ),
    ] = "carbon",
    source: str | None = SOURCE_OPTION,
    at: str | None = AT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Submit a workload and place it where and when it is greenest (only plan, with --dry-run).

    Without a deadline, or with none to spare, it starts now on the best-scoring node. With a
    deadline it may be scheduled for the greenest forecast window that still meets it.
    """
    svc = services(ctx, at)
    spec = _spec(gpus, hours, gpu_model, deadline, zones, deny, max_carbon, movable)
    goal: Objective = "composite" if objective == "composite" else "carbon"
    now = svc.clock.now()
    check_deadline(spec, now, what="--deadline")
    svc.warm_forecasts(spec, source)
    with transaction(svc) as session:
        grid = svc.effective_grid(session, source)
        rec = recommend(session=session, grid=grid, spec=spec, now=now, weights=svc.weights)
        workload = decision = plan = None
        if not dry_run and rec.best is not None:
            workload = submit_workload(session=session, org_id=org, name=name, spec=spec, now=now)
            decision = route_workload(
                session=session,
                grid=grid,
                workload_id=workload.id,
                now=now,
                weights=svc.weights,
                objective=goal,
                forecasts=svc.forecasts(source),
                move_running=svc.settings.move_running_work,
            )
        else:
            plan = plan_start(
                session=session,
                grid=grid,
                spec=spec,
                candidates=rec.candidates,
                now=now,
                weights=svc.weights,
                objective=goal,
                forecasts=svc.forecasts(source),
                move_running=svc.settings.move_running_work,
            )
    if rec.best is None and not rec.rejected:
        raise fail("the store has no compute nodes; run `tgtg seed` first", code=1)
    if rec.best is None:
        if as_json:
            emit_json({"node": None, "score": None, "candidates": [], "rejected": rec.rejected})
        gap = coverage_gap(grid, now, rec.rejected)
        if gap is not None:
            asked = f"--at {at!r}" if at else f"now ({now.isoformat()})"
            raise fail(f"{asked}: {NO_READING}: {gap}; give an --at the grid data cover")
        reasons = "; ".join(f"{r.node_id}: {r.reason}" for r in rec.rejected)
        raise fail(f"no eligible node for this job ({reasons})", code=1)
    if decision is not None and decision.node is None:
        raise fail(f"{workload.id if workload else ''} stays pending: {decision.reason}", code=1)
    when = _when(plan, decision)
    chosen = next(c for c in rec.candidates if c.node_id == when["node"])
    avoided = (
        forecast_avoided_kg(chosen=chosen, baseline=rec.baseline, chosen_co2_kg=when["co2_kg"])
        if rec.baseline is not None
        else None
    )
    out = {
        "workload_id": workload.id if workload else None,
        "decision_id": decision.id if decision else None,
        "dry_run": dry_run,
        "status": decision.outcome if decision else None,
        "node": {"id": chosen.node_id, "zone": chosen.zone, "gpu_model": chosen.gpu_model},
        "start_at": when["start_at"],
        "co2_kg": when["co2_kg"],
        "co2_kg_if_started_now": when["co2_kg_if_started_now"],
        "saving_pct": when["saving_pct"],
        "why": when["why"],
        "forecast_source": when["forecast_source"],
        "score": chosen.score,
        "breakdown": chosen.breakdown,
        "energy_kwh": chosen.energy_kwh,
        "baseline": rec.baseline,
        "co2_saved_kg": avoided,
        "grid_source": rec.grid_source,
        "at": rec.at,
        "candidates": [
            {"node_id": c.node_id, "zone": c.zone, "score": c.score, "co2_kg": c.co2_kg}
            for c in rec.candidates
        ],
        "rejected": rec.rejected,
    }
    if as_json:
        emit_json(out)
        return
    later = when["start_at"] > now
    if dry_run:
        verb = "would schedule" if later else "would route"
    else:
        verb = f"{'scheduled' if later else 'routed'} {workload.id if workload else ''} on"
    versus = explain_avoided(avoided, rec.baseline.node_id if rec.baseline else None, forecast=True)
    print(
        f"{verb} {chosen.node_id} ({chosen.zone}) from {when['start_at'].isoformat()}, "
        f"score {chosen.score:.3f}, {when['co2_kg']:.1f} kg CO2 "
        f"({when['saving_pct']:.0f} % less than starting now; {versus})\n{when['why']}"
    )
    table(
        "candidates",
        ["node", "zone", "score", "kg CO2"],
        [[c.node_id, c.zone, f"{c.score:.3f}", f"{c.co2_kg:.1f}"] for c in rec.candidates],
    )


def _when(plan: StartPlan | None, decision: DecisionView | None) -> dict[str, Any]:
    """Return where and when, from the recorded decision when there is one, else the plan."""
    if decision is None:
        assert plan is not None
        return {
            "node": plan.node_id,
            "start_at": plan.start_at,
            "co2_kg": plan.co2_kg,
            "co2_kg_if_started_now": plan.co2_kg_if_started_now,
            "saving_pct": plan.saving_pct,
            "why": plan.why,
            "forecast_source": plan.forecast_source,
        }
    return {
        "node": decision.node,
        "start_at": decision.start_at,
        "co2_kg": decision.co2_kg,
        "co2_kg_if_started_now": decision.co2_kg_if_started_now,
        "saving_pct": decision.saving_pct,
        "why": decision.why,
        "forecast_source": decision.forecast_source,
    }


def register(app: typer.Typer) -> None:
    """Add `score` and `route` to the `tgtg` app."""
    app.command("score")(score)
    app.command("route")(route)
