"""CO2 avoided: the one baseline every figure of "kg CO2 avoided" is measured against.

Definition (the same in chat, route answers, receipts, profitability, metrics and the dashboard):

    CO2 avoided = baseline CO2 - actual CO2

- **Baseline node**: the carbon-agnostic choice, i.e. the cheapest eligible node per GPU-hour
  (ties: lowest node id) among the candidates of the workload's *first* routing decision that
  had any eligible node. Decisions record every candidate, so the baseline is read back from the
  store, never recomputed against a later fleet.
- **Baseline start**: that decision's time, started at once (no deferral, no reroute): what a
  broker that ignores carbon would have done at the same moment. For work submitted and routed
  in one step this is the submission time.
- **Baseline CO2**: the *same energy* as the actual run (GPUs x kW per GPU of the node it ran on
  x its billed seconds, spread over the hours of the baseline window) times the baseline zone's
  hourly carbon intensity. So the figure isolates where and when the work ran, not hardware.
- **Settled figure**: measured once at settlement with the actual hourly grid intensities
  (`tools.money.usage.measure_energy`) and stored on the carbon receipt; every surface reads it
  from there (sums are taken over receipts and rounded only when displayed).
- **Forecast figure**: before the work has run, the same quantity from the readings and
  forecasts the decision used (`forecast_avoided_kg`), always labelled a forecast.

A negative figure means the run emitted more than the baseline would have; `explain_avoided`
words it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import RoutingDecision

if TYPE_CHECKING:
    from tools.broker.placement import Candidate, Recommendation
    from tools.broker.windows import StartPlan

BASELINE_NOTE = (
    "kg CO2 avoided: what the same energy would have emitted on the carbon-agnostic choice "
    "(the cheapest eligible node at the workload's first routing decision, started then), minus "
    "what the run emitted, both at the actual hourly grid intensity (from its carbon receipt)."
)
"""How every surface says what kg CO2 avoided is measured against."""

NEGATIVE_NOTE = (
    " A negative figure means the run emitted more than the cheapest eligible node would have: "
    "the broker also weighs price and load, and the grid can change after the decision."
)
"""Appended wherever a negative kg CO2 avoided is shown."""


class BaselineChoice(BaseModel):
    """The carbon-agnostic choice a workload's CO2 avoided is measured against."""

    node_id: str
    zone: str
    start_at: datetime
    """When the baseline starts: the time of the first decision with an eligible node."""
    decision_id: str
    carbon_intensity: float | None = None
    """gCO2/kWh the decision saw at the baseline node (for the forecast)."""


def cheapest(candidates: Iterable[Candidate]) -> Candidate | None:
    """Return the carbon-agnostic choice: cheapest per GPU-hour, then lowest node id."""
    return min(candidates, key=lambda c: (c.price_per_gpu_hour_minor, c.node_id), default=None)


def _intensity(row: Mapping[str, Any]) -> float | None:
    energy, co2 = row.get("energy_kwh"), row.get("co2_kg")
    if isinstance(energy, int | float) and isinstance(co2, int | float) and energy > 0:
        return float(co2) * 1000.0 / float(energy)
    return None


def baseline_of(decision: RoutingDecision) -> BaselineChoice | None:
    """Return the cheapest candidate a recorded decision had (None without candidates)."""
    rows = [c for c in decision.candidates if isinstance(c, dict) and c.get("node_id")]
    if not rows:
        return None
    row = min(rows, key=lambda c: (int(c.get("price_per_gpu_hour_minor") or 0), str(c["node_id"])))
    return BaselineChoice(
        node_id=str(row["node_id"]),
        zone=str(row.get("zone") or ""),
        start_at=decision.decided_at,
        decision_id=decision.id,
        carbon_intensity=_intensity(row),
    )


def first_baseline(*, session: Session, workload_id: str) -> BaselineChoice | None:
    """Return the baseline of a workload: the cheapest candidate of its first placing decision.

    None when no decision of the workload ever had an eligible node.
    """
    decisions = session.scalars(
        select(RoutingDecision)
        .where(RoutingDecision.workload_id == workload_id)
        .order_by(RoutingDecision.decided_at, RoutingDecision.id)
    )
    for decision in decisions:
        choice = baseline_of(decision)
        if choice is not None:
            return choice
    return None


def forecast_baseline_kg(energy_kwh: float, baseline_intensity: float) -> float:
    """Return the forecast kg CO2 of `energy_kwh` on the baseline (same energy, its intensity)."""
    return energy_kwh * baseline_intensity / 1000.0


def forecast_avoided_kg(*, chosen: Candidate, baseline: Candidate, chosen_co2_kg: float) -> float:
    """Return forecast kg CO2 avoided: the chosen work's energy on the baseline minus its CO2.

    `chosen_co2_kg` is the forecast CO2 of the chosen node and start (now, or a later window).
    """
    intensity = baseline.co2_kg * 1000.0 / baseline.energy_kwh if baseline.energy_kwh else 0.0
    return forecast_baseline_kg(chosen.energy_kwh, intensity) - chosen_co2_kg


def planned_avoided_kg(rec: Recommendation, plan: StartPlan | None) -> float | None:
    """Return the forecast kg CO2 avoided of a recommendation, at its planned node and start.

    Without a plan (or when the plan's node is not a candidate) it is the recommendation's own
    figure: the best node started now.
    """
    if plan is None or rec.baseline is None:
        return rec.co2_saved_kg
    chosen = next((c for c in rec.candidates if c.node_id == plan.node_id), None)
    if chosen is None:
        return rec.co2_saved_kg
    return forecast_avoided_kg(chosen=chosen, baseline=rec.baseline, chosen_co2_kg=plan.co2_kg)


def explain_avoided(kg: float | None, baseline_node_id: str | None, *, forecast: bool) -> str:
    """Say in words what a kg CO2 avoided figure means, negative ones included."""
    against = (
        f"the cheapest eligible node {baseline_node_id}"
        if baseline_node_id
        else "the carbon-agnostic baseline"
    )
    what = "forecast CO2 avoided" if forecast else "CO2 avoided"
    if kg is None:
        return f"{what}: unknown (no baseline or no grid data)"
    if kg < 0:
        return (
            f"{what} vs {against}: {kg:.3f} kg, i.e. the work "
            f"{'would emit' if forecast else 'emitted'} {-kg:.3f} kg more than there; the "
            "broker also weighs price and load, and the grid can change after the decision"
        )
    return f"{what} vs {against}: {kg:.3f} kg"


def workload_forecast(
    *, session: Session, workload_id: str, energy_kwh: float | None, co2_kg: float | None
) -> tuple[BaselineChoice | None, float | None]:
    """Return a placed workload's baseline and its forecast kg CO2 avoided (None if unknown).

    `energy_kwh` and `co2_kg` are the workload's estimates on its chosen node and start.
    """
    base = first_baseline(session=session, workload_id=workload_id)
    if base is None or base.carbon_intensity is None or energy_kwh is None or co2_kg is None:
        return base, None
    return base, forecast_baseline_kg(energy_kwh, base.carbon_intensity) - co2_kg
