"""Write the offline model's answers from tool results (JSON in `ToolMessage`s).

Every sentence is built from the tool's own fields; nothing is invented. Text inside tool
results (node names, grid notes) is quoted as data and never acted on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from agents.offline_billing_answers import BILLING_WRITERS

OFFLINE_LABEL = "[offline model]"
_EXCEPTION_REPR = re.compile(r"\w+\((['\"])(.*)\1\)", re.DOTALL)

CAPABILITIES = (
    "recommend a placement (e.g. 'where should 4xH100 run for 6 hours, EU only?'), "
    "book it ('book it'; you approve before anything is written), compare zones now or over "
    "the next hours, list nodes, explain a "
    "routing decision ('why was wl_… placed there?'), reroute a workload ('reroute wl_…'), "
    "report incident status, and answer billing questions ('what do we owe gamer Jonas?', "
    "'bill Acme for November', 'trial balance', 'profitability by node', 'pending payouts')"
)


def labelled(text: str) -> str:
    """Return `text` marked as written by the offline model."""
    return f"{OFFLINE_LABEL} {text}"


def _num(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def _candidate(c: dict[str, Any]) -> str:
    return (
        f"node {c['node_id']} in {c['zone']} ({c.get('gpu_model', '?')}), score "
        f"{_num(c.get('score'), 3)} = carbon {_num(c.get('carbon_term'), 3)} + price "
        f"{_num(c.get('price_term'), 3)} + utilisation {_num(c.get('utilization_term'), 3)} "
        f"(grid {_num(c.get('carbon_intensity'), 0)} gCO2/kWh, "
        f"{_num(c.get('price_eur_per_mwh'), 0)} EUR/MWh)"
    )


def _co2(result: dict[str, Any]) -> str:
    best, base = result.get("best"), result.get("baseline")
    if not best:
        return ""
    text = f" Estimated {_num(best.get('energy_kwh'))} kWh and {_num(best.get('co2_kg'), 2)} kg CO2"
    text += "."
    if base and result.get("co2_avoided_note"):
        text += f" The carbon-agnostic choice is {base['node_id']} in {base['zone']}"
        text += f" (cheapest per GPU-hour); {result['co2_avoided_note']}."
    return text


def _recommend(result: dict[str, Any]) -> str:
    best = result.get("best")
    if not best:
        reasons = "; ".join(
            f"{r['node_id']}: {r['reason']}" for r in result.get("rejected", [])[:3]
        )
        return f"No node can take this job right now ({reasons}). Nothing was written."
    others = ", ".join(
        f"{c['node_id']} ({c['zone']}, {_num(c['score'], 3)})"
        for c in result.get("candidates", [])[1:3]
    )
    return (
        f"Recommended: {_candidate(best)}.{_co2(result)}"
        + (f" Next best: {others}." if others else "")
        + " Nothing is booked yet; ask me to book it and approve the request."
    )


def _route(result: dict[str, Any]) -> str:
    wl = result.get("workload", {})
    where = f"{wl.get('node_id')} in {wl.get('zone')}"
    if result.get("already_routed"):
        return (
            f"Recommendation {result.get('recommendation_id')} is already booked as workload "
            f"{wl.get('id')} on {where}; nothing new was written."
        )
    decision = result.get("decision") or {}
    if decision.get("outcome") != "routed":
        return f"Workload {wl.get('id')} was not routed: {decision.get('reason')}."
    text = (
        f"Routed workload {wl.get('id')} to node {where} ({wl.get('gpu_count')} GPUs for "
        f"{_num(wl.get('duration_hours'), 1)} h, score {_num(decision.get('score'), 3)}). "
        f"Estimated {_num(wl.get('energy_kwh_estimate'))} kWh and "
        f"{_num(wl.get('co2_kg_estimate'), 2)} kg CO2"
    )
    avoided = result.get("co2_avoided") or {}
    if avoided.get("explanation"):
        text += f"; {avoided['explanation']}"
    return text + f". Decision {decision.get('id')} is recorded."


def _reroute(result: dict[str, Any]) -> str:
    d = result.get("decision", result)
    outcome = d.get("outcome")
    if outcome == "rerouted":
        return (
            f"Moved workload {d['workload_id']} from {d.get('previous_node_id')} to "
            f"{d.get('node_id')} in {d.get('zone')} (score {_num(d.get('previous_score'), 3)} -> "
            f"{_num(d.get('score'), 3)}, {_num((d.get('improvement') or 0) * 100, 0)} % better)."
        )
    return f"Workload {d.get('workload_id')} stays where it is ({outcome}): {d.get('reason')}."


def _compare(result: dict[str, Any]) -> str:
    rows = result.get("zones", [])
    if not rows:
        return "No grid readings are available for those zones."
    parts = [
        f"{r['zone']} {_num(r.get('carbon_intensity'), 0)} gCO2/kWh, "
        f"{_num(r.get('price_eur_per_mwh'), 0)} EUR/MWh"
        + (f" (best hour {r['best_hour']})" if r.get("best_hour") else "")
        for r in rows
    ]
    horizon = result.get("hours", 0)
    when = f"averaged over the next {horizon} hours" if horizon else "now"
    return f"Zones from cleanest to dirtiest, {when}: " + "; ".join(parts) + "."


def _nodes(result: dict[str, Any]) -> str:
    nodes = result.get("nodes", [])
    if not nodes:
        return "No nodes match."
    listed = "; ".join(
        f"{n['id']} ({n['zone']}, {n['free_gpus']}/{n['gpu_count']} {n['gpu_model']} free, "
        f"{n['status']})"
        for n in nodes[:8]
    )
    more = f" and {len(nodes) - 8} more" if len(nodes) > 8 else ""
    return f"{len(nodes)} nodes: {listed}{more}."


def _explain(result: dict[str, Any]) -> str:
    d = result.get("decision")
    if not d:
        return f"Workload {result.get('workload_id')} has no routing decision yet."
    return (
        f"Workload {d['workload_id']}: {d['kind']} decision {d['id']} at {d['decided_at']} chose "
        f"{d.get('node_id')} in {d.get('zone')} ({d['outcome']}): {d['reason']}. "
        f"{len(d.get('candidates', []))} eligible candidates, "
        f"{len(d.get('rejected', []))} rejected." + _avoided(result.get("co2_avoided"))
    )


def _avoided(avoided: dict[str, Any] | None) -> str:
    if not avoided or not avoided.get("explanation"):
        return ""
    how = "forecast from the routing decision" if avoided.get("forecast") else "its carbon receipt"
    text = str(avoided["explanation"])
    return f" {text[:1].upper()}{text[1:]} ({how})."


def _incidents(result: dict[str, Any]) -> str:
    items = result.get("incidents", [])
    if not items:
        return "No incidents are open or recorded."
    return (
        "Incidents: "
        + "; ".join(
            f"{i['id']} in {i['zone']} ({i['trigger']}), state {i['state']}" for i in items[:5]
        )
        + "."
    )


WRITERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "recommend_placement": _recommend,
    "route_workload": _route,
    "reroute_workload": _reroute,
    "compare_zones": _compare,
    "list_nodes": _nodes,
    "explain_decision": _explain,
    "incident_status": _incidents,
}


def answer_from_tool(name: str, content: str, *, is_error: bool) -> str:
    """Return one sentence-level answer for a tool result.

    Args:
        name: Tool name.
        content: The tool message content (JSON for our tools).
        is_error: The tool reported an error (refusal or bad arguments).
    """
    if is_error:
        reason = content.removeprefix("Error: ").split("\n Please fix your mistakes.")[0].strip()
        if wrapped := _EXCEPTION_REPR.fullmatch(reason):  # NotFoundError("workload ...")
            reason = wrapped.group(2)
        if reason.startswith("rejected by "):
            return f"Not done: {name} was {reason}"
        return f"The {name} tool refused: {reason}"
    try:
        result = json.loads(content)
    except json.JSONDecodeError:
        return f"{name} returned: {content[:300]}"
    if (billing := BILLING_WRITERS.get(name)) is not None:
        return billing(result)
    writer = WRITERS.get(name)
    if writer is None or not isinstance(result, dict):
        return f"{name} returned: {json.dumps(result)[:300]}"
    return writer(result)
