"""Render console data for people: KPI cards, the offline zone map, charts and tables.

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

CI_BANDS = (
    (100, "#1a9850", "< 100"),
    (200, "#91cf60", "100–200"),
    (300, "#fee08b", "200–300"),
    (400, "#fc8d59", "300–400"),
    (float("inf"), "#d73027", "≥ 400"),
)
NO_DATA = "#9aa5b1"
_NUDGE = {"NL": (10.0, -12.0), "BE": (-12.0, 12.0)}
"""Pixel offsets that keep neighbouring zones apart on the map."""
_PANELS = (
    ("North America", (-125.0, -68.0), (24.0, 50.0), (20, 40, 400, 300)),
    ("Europe", (-11.0, 19.0), (35.0, 58.0), (450, 40, 430, 300)),
)

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


def ci_colour(value: float | None) -> str:
    """Return the map colour of a carbon intensity (gCO2/kWh)."""
    if value is None:
        return NO_DATA
    return next(colour for limit, colour, _ in CI_BANDS if value < limit)


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


def _project(lon: float, lat: float, panel: tuple[Any, ...]) -> tuple[float, float]:
    _, (lon0, lon1), (lat0, lat1), (x, y, w, h) = panel
    return x + (lon - lon0) / (lon1 - lon0) * w, y + (lat1 - lat) / (lat1 - lat0) * h


def zone_map_svg(points: Sequence[ZonePoint]) -> str:
    """Return an inline SVG map of the zones coloured by carbon intensity (no internet needed)."""
    parts = [
        '<svg id="zone-map" viewBox="0 0 900 380" width="100%" role="img" '
        'aria-label="Zones by carbon intensity" style="font-family:sans-serif">'
    ]
    for panel in _PANELS:
        name, _, _, (x, y, w, h) = panel
        parts.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="14" fill="#eef4f8" '
            'stroke="#c9d6e0"/>'
        )
        parts.append(
            f'<text x="{x + 12}" y="{y + 22}" font-size="14" fill="#44525f" '
            f'font-weight="600">{name}</text>'
        )
        for i in range(1, 6):
            gx = x + w * i / 6
            parts.append(
                f'<line x1="{gx:.0f}" y1="{y}" x2="{gx:.0f}" y2="{y + h}" '
                'stroke="#dde7ee" stroke-dasharray="3 5"/>'
            )
    for p in points:
        panel = _PANELS[0] if p.lon < -30 else _PANELS[1]
        cx, cy = _project(p.lon, p.lat, panel)
        dx, dy = _NUDGE.get(p.zone, (0.0, 0.0))
        cx, cy = cx + dx, cy + dy
        colour = ci_colour(p.carbon_intensity)
        value = "no data" if p.carbon_intensity is None else f"{p.carbon_intensity:.0f} g"
        title = html.escape(
            f"{p.name} ({p.zone}): {value}"
            + (f", {p.price_eur_per_mwh:.0f} EUR/MWh" if p.price_eur_per_mwh is not None else "")
            + (", renewable surplus" if p.surplus else "")
            + (", curtailing" if p.curtailment else "")
        )
        parts.append(f'<g class="zone" data-zone="{html.escape(p.zone)}"><title>{title}</title>')
        if p.curtailment:
            parts.append(
                f'<circle class="curtailment-ring" cx="{cx:.0f}" cy="{cy:.0f}" r="29" '
                'fill="none" stroke="#6a3d9a" stroke-width="2"/>'
            )
        if p.surplus:
            parts.append(
                f'<circle class="surplus-ring" cx="{cx:.0f}" cy="{cy:.0f}" r="25" fill="none" '
                'stroke="#1f78b4" stroke-width="3" stroke-dasharray="6 4"/>'
            )
        parts.append(
            f'<circle cx="{cx:.0f}" cy="{cy:.0f}" r="18" fill="{colour}" '
            'stroke="#ffffff" stroke-width="2"/>'
        )
        short = html.escape(p.zone.split("-")[1] if "-" in p.zone else p.zone)
        parts.append(
            f'<text x="{cx:.0f}" y="{cy + 4:.0f}" text-anchor="middle" font-size="12" '
            f'font-weight="700" fill="#1b1f23">{short}</text>'
        )
        parts.append(
            f'<text x="{cx:.0f}" y="{cy + 32:.0f}" text-anchor="middle" font-size="11" '
            f'fill="#1b1f23">{html.escape(value)}</text></g>'
        )
    parts.append('<text x="20" y="364" font-size="11" font-weight="600">gCO2/kWh</text>')
    lx = 84
    for _, colour, label in CI_BANDS:
        parts.append(
            f'<rect x="{lx}" y="352" width="14" height="14" fill="{colour}"/>'
            f'<text x="{lx + 18}" y="364" font-size="11">{label}</text>'
        )
        lx += 82
    parts.append(
        f'<circle cx="{lx + 10}" cy="359" r="7" fill="none" stroke="#1f78b4" '
        f'stroke-width="2" stroke-dasharray="4 3"/><text x="{lx + 22}" y="364" '
        'font-size="11">surplus</text>'
        f'<circle cx="{lx + 85}" cy="359" r="7" fill="none" stroke="#6a3d9a" '
        f'stroke-width="2"/><text x="{lx + 97}" y="364" font-size="11">curtailment</text></svg>'
    )
    return "".join(parts)


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
