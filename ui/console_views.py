"""Render console data for people: KPI cards, charts and tables (the zone map: `ui.zone_map`).

Presentation only: every number comes from `ui.dashboard` and friends.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tools.broker.workloads import WorkloadView  # noqa: E402
from tools.money.amounts import format_money  # noqa: E402
from ui.dashboard import Dashboard, SeriesPoint, ZonePoint  # noqa: E402

CSS = """
.kpis {display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px}
@media (max-width: 480px) {
  .kpis {grid-template-columns:repeat(2,minmax(0,1fr));gap:6px}
  .kpi {padding:6px 8px} .kpi .v {font-size:1.15em}
}
.kpi {border:1px solid var(--border-color-primary);border-radius:10px;padding:10px 12px;
      background:var(--background-fill-secondary)}
.kpi .v {font-size:1.5em;font-weight:700} .kpi .l {opacity:.75;font-size:.85em}
.step-ok {color:#1a9850;font-weight:600}
"""


def kpi_cards(d: Dashboard, model_label: str) -> str:
    """Return the dashboard's headline figures as HTML cards."""
    w = d.workloads_by_status

    def ci(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f} g"

    cards = [
        ("Chat model", model_label),
        ("Grid source", d.grid_source),
        ("Nodes online", f"{d.nodes_online}/{d.nodes_total}"),
        ("GPUs free", f"{d.gpus_free}/{d.gpus_total}"),
        ("Fleet utilisation", f"{d.fleet_utilization:.0%}"),
        ("Workloads running/routed", f"{w.get('running', 0)}/{w.get('routed', 0)}"),
        ("Completed", str(w.get("completed", 0))),
        ("Greenest zone", f"{d.greenest_zone or 'n/a'} · {ci(d.greenest_carbon_intensity)}"),
        ("Dirtiest zone", f"{d.dirtiest_zone or 'n/a'} · {ci(d.dirtiest_carbon_intensity)}"),
        ("Curtailing now", ", ".join(d.curtailing_zones) or "none"),
        ("Open incidents", str(d.open_incidents)),
        ("CO₂ avoided", f"{d.co2_avoided_kg:,.2f} kg"),
    ]
    body = "".join(
        f'<div class="kpi"><div class="l">{html.escape(label)}</div>'
        f'<div class="v">{html.escape(value)}</div></div>'
        for label, value in cards
    )
    return f'<div class="kpis" id="kpis">{body}</div>'


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def zone_table(points: Sequence[ZonePoint]) -> pd.DataFrame:
    """Return the zones' current readings as a table."""
    return pd.DataFrame(
        [
            {
                "zone": p.zone,
                "name": p.name,
                "gCO2/kWh": _round(p.carbon_intensity),
                "EUR/MWh": _round(p.price_eur_per_mwh),
                "renewable %": _round(p.renewable_pct),
                "surplus": bool(p.surplus),
                "curtailment": bool(p.curtailment),
                "note": p.note or p.error or "",
            }
            for p in points
        ]
    )


def series_figure(points: Sequence[SeriesPoint], zones: Sequence[str]) -> Figure:
    """Return CI and price over time per zone, with surplus hours shaded."""
    fig, (ax_ci, ax_price) = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True)
    for zone in zones:
        rows = [p for p in points if p.zone == zone]
        ts = [p.ts for p in rows]
        ax_ci.plot(ts, [p.carbon_intensity for p in rows], label=zone, linewidth=1.8)
        ax_price.plot(ts, [p.price_eur_per_mwh for p in rows], label=zone, linewidth=1.8)
        marked = [p for p in rows if p.surplus or p.curtailment]
        ax_ci.scatter(
            [p.ts for p in marked],
            [p.carbon_intensity for p in marked],
            marker="v",
            s=40,
            color="#1f78b4",
            zorder=3,
        )
    ax_ci.set_ylabel("gCO2/kWh")
    ax_price.set_ylabel("EUR/MWh")
    ax_ci.set_title("Carbon intensity and day-ahead price (▼ = surplus / curtailment hour)")
    ax_ci.grid(alpha=0.3)
    ax_price.grid(alpha=0.3)
    ax_ci.legend(loc="upper left", fontsize=8, ncol=min(len(zones), 6))
    fig.autofmt_xdate()
    fig.tight_layout()
    plt.close(fig)
    return fig


TIMELINE_COLOURS = {"scheduled": "#74c476", "routed": "#6baed6", "running": "#2171b5"}


def timeline_bars(workloads: Sequence[WorkloadView], now: datetime) -> list[dict[str, Any]]:
    """Return the placed work as bars: label, status, start and end (planned or actual)."""
    bars: list[dict[str, Any]] = []
    for w in workloads:
        start = w.planned_start_at or w.started_at or w.routed_at
        if w.status not in TIMELINE_COLOURS or start is None:
            continue
        end = start + timedelta(hours=w.duration_hours)
        if end < now:
            continue
        label = f"{w.name} ({w.id}) on {w.node_id or '?'}"
        bars.append({"label": label, "status": w.status, "start": start, "end": end})
    return sorted(bars, key=lambda b: (b["start"], b["label"]))


def timeline_figure(workloads: Sequence[WorkloadView], now: datetime) -> Figure:
    """Return a Gantt chart of scheduled, routed and running work, with a line at now."""
    bars = timeline_bars(workloads, now)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.35 * max(len(bars), 1)))
    for i, b in enumerate(bars):
        ax.barh(
            i,
            (b["end"] - b["start"]) / timedelta(days=1),
            left=mdates.date2num(b["start"]),
            color=TIMELINE_COLOURS[b["status"]],
        )
    ax.set_yticks(range(len(bars)), [b["label"] for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(mdates.date2num(now), color="#d62728", linewidth=1.5)
    ax.xaxis_date()
    ax.set_title("Planned starts (green: scheduled, blue: routed / running, red line: now, UTC)")
    ax.grid(alpha=0.3, axis="x")
    fig.autofmt_xdate()
    fig.tight_layout()
    plt.close(fig)
    return fig


def frame(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Return rows as a table with exactly `columns` (empty tables keep their headers)."""
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))


def money(minor: int | None, currency: str = "EUR") -> str:
    """Format integer minor units for display in their currency ("€12.34"; "" for None)."""
    return "" if minor is None else format_money(minor, currency)
