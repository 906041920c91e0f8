"""The zone map: geography from packaged data (no network), marks, colours and labels."""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from itertools import combinations

import numpy as np
import pytest
from matplotlib.font_manager import FontProperties
from matplotlib.path import Path
from matplotlib.textpath import TextPath

from tools.grid import ZONES
from ui import zone_map
from ui.dashboard import ZonePoint
from ui.zone_map_labels import Box, place_labels

CI = {
    "FR": 45.0,
    "DE": 380.0,
    "ES": 150.0,
    "PT": 120.0,
    "NL": 330.0,
    "BE": 170.0,
    "IT": 290.0,
    "GB": 210.0,
    "US-CAL-CISO": 230.0,
    "US-NY-NYIS": 260.0,
    "US-TEX-ERCO": 410.0,
}
PHONE_PANEL_PX = 300  # a panel on a 390 px screen, inside the console's padding


def _points(
    ci: dict[str, float | None], surplus: set[str] = frozenset(), curtail: set[str] = frozenset()
) -> list[ZonePoint]:
    return [
        ZonePoint(
            zone=z.code,
            name=z.name,
            lat=z.lat,
            lon=z.lon,
            carbon_intensity=ci[z.code],
            price_eur_per_mwh=80.0,
            renewable_pct=50.0,
            surplus=z.code in surplus,
            curtailment=z.code in curtail,
            note=None,
            error=None,
        )
        for z in ZONES.values()
    ]


@pytest.fixture(scope="module")
def drawn():
    """The map drawn from a cold cache while any socket being opened is recorded."""
    opened: list[tuple[object, ...]] = []
    real = socket.socket

    class Recording(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            opened.append(args)
            super().__init__(*args, **kwargs)

    zone_map._projected.cache_clear()
    mp = pytest.MonkeyPatch()
    mp.setattr(socket, "socket", Recording)
    try:
        html = zone_map.zone_map_svg(_points(CI, surplus={"FR", "ES"}, curtail={"FR", "DE"}))
    finally:
        mp.undo()
    return html, opened


def _tree(html: str) -> ET.Element:
    return ET.fromstring(html)


def _panels(root: ET.Element) -> dict[str, ET.Element]:
    return {svg.get("data-panel"): svg for svg in root.iter("svg") if svg.get("data-panel")}


def _subpaths(d: str) -> list[Path]:
    out = []
    for part in re.findall(r"M[^M]+", d):
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", part)]
        out.append(Path(np.array(nums).reshape(-1, 2)))
    return out


def _layer(panel: ET.Element, name: str) -> list[Path]:
    return [
        p for el in panel.iter("path") if el.get("class") == name for p in _subpaths(el.get("d"))
    ]


def _on_land(panel: ET.Element, x: float, y: float) -> bool:
    inside = lambda name: any(p.contains_point((x, y)) for p in _layer(panel, name))  # noqa: E731
    return inside("land") and not inside("lake")


def _zones(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-zone"): g for g in root.iter("g") if g.get("class") == "zone"}


def test_the_map_draws_packaged_coastlines_and_borders_without_network(drawn):
    html, opened = drawn
    assert opened == []
    panels = _panels(_tree(html))
    assert set(panels) == {"Europe", "North America"}
    for name, panel in panels.items():
        assert len(_layer(panel, "coastline")) > 20, name
        assert len(_layer(panel, "country-border")) > 5, name
        assert len(_layer(panel, "land")) > 5, name
    assert len(_layer(panels["North America"], "state-border")) > 40
    assert not _layer(panels["Europe"], "state-border")


def test_each_zone_sits_on_land_where_it_is_and_has_its_colour(drawn):
    root = _tree(drawn[0])
    zones = _zones(root)
    assert len(zones) == 11
    panels = _panels(root)
    where = {}
    for code, g in zones.items():
        panel = panels["North America" if code.startswith("US-") else "Europe"]
        assert g in list(panel.iter("g")), code
        disc = next(c for c in g.iter("circle") if c.get("class") == "zone-disc")
        x, y = float(disc.get("cx")), float(disc.get("cy"))
        assert _on_land(panel, x, y), code
        where[code] = (x, y)
        assert f"{CI[code]:.0f} g" in "".join(g.itertext())
    # The Bay of Biscay, the North Sea and the Gulf of Mexico are sea.
    for panel, lon, lat in (
        (zone_map.PANELS[1], -5.0, 45.5),
        (zone_map.PANELS[1], 3.0, 55.0),
        (zone_map.PANELS[0], -90.0, 25.5),
    ):
        w, h = panel.size
        sx, sy = zone_map._projected(panel).basemap(lon, lat)
        px, py = sx / panel.width_m * w, h - sy / panel.height_m * h
        assert not _on_land(panels[panel.name], px, py), (lon, lat)
        assert 0 < px < w and 0 < py < h
    # Compass order on the map follows longitude and latitude.
    x, y = {k: v[0] for k, v in where.items()}, {k: v[1] for k, v in where.items()}
    assert x["PT"] < x["ES"] < x["FR"] < x["DE"] < x["IT"] + 60 and y["GB"] < y["FR"] < y["ES"]
    assert y["NL"] < y["BE"] < y["FR"] and x["GB"] < x["NL"]
    assert x["US-CAL-CISO"] < x["US-TEX-ERCO"] < x["US-NY-NYIS"]
    assert y["US-NY-NYIS"] < y["US-TEX-ERCO"]
    # The colour follows the band of the carbon intensity.
    expected = {"FR": "#1a9850", "ES": "#91cf60", "GB": "#fee08b", "DE": "#fc8d59"}
    expected["US-TEX-ERCO"] = "#d73027"
    for code, colour in expected.items():
        disc = next(c for c in zones[code].iter("circle") if c.get("class") == "zone-disc")
        assert disc.get("fill") == colour, code


def test_surplus_and_curtailment_have_their_own_marks_only_where_they_happen(drawn):
    zones = _zones(_tree(drawn[0]))

    def marks(g: ET.Element, cls: str) -> list[ET.Element]:
        return [el for el in g.iter() if el.get("class") == cls]

    for code, g in zones.items():
        assert len(marks(g, "surplus-ring")) == (code in {"FR", "ES"}), code
        assert len(marks(g, "curtailment-mark")) == (code in {"FR", "DE"}), code
    ring, mark = marks(zones["FR"], "surplus-ring")[0], marks(zones["FR"], "curtailment-mark")[0]
    assert ring.tag != mark.tag and ring.get("stroke") != mark.get("stroke")
    assert "renewable surplus, curtailing" in zones["FR"].find("title").text
    assert "curtailing" not in zones["ES"].find("title").text


def test_the_legend_puts_the_unit_on_the_carbon_scale(drawn):
    root = _tree(drawn[0])
    legend = next(d for d in root.iter("div") if d.get("class") == "zone-map-legend")
    spans = {s.get("class"): "".join(s.itertext()) for s in legend.iter("span") if s.get("class")}
    assert "gCO₂/kWh" in spans["ci-scale"] and "≥ 400" in spans["ci-scale"]
    assert "gCO" not in spans["surplus-key"] + spans["curtailment-key"]


@pytest.mark.parametrize(
    "case",
    [
        "today",
        "crowded",  # every zone surplus and curtailing, long values: the biggest marks and labels
    ],
)
def test_labels_do_not_collide_and_stay_readable_at_390_px(drawn, case):
    if case == "today":
        html = drawn[0]
    else:
        every = set(CI)
        html = zone_map.zone_map_svg(
            _points({k: 1000 + v for k, v in CI.items()} | {"BE": None}, every, every)
        )
    prop = FontProperties(family="DejaVu Sans", weight="bold")
    for name, panel in _panels(_tree(html)).items():
        width, height = (float(v) for v in panel.get("viewBox").split()[2:])
        boxes, discs = [], []
        for g in panel.iter("g"):
            rect = next(r for r in g.iter("rect") if r.get("class") == "label")
            box = [float(rect.get(k)) for k in ("x", "y", "width", "height")]
            text = g.find("text")
            size = float(text.get("font-size"))
            assert size * PHONE_PANEL_PX / width >= 12, (name, size)  # px on a phone
            ink = TextPath((0, 0), text.text, size=size, prop=prop).get_extents()
            assert float(text.get("x")) >= box[0] and ink.x1 <= box[2] - 2, text.text
            assert 0 <= box[0] and box[0] + box[2] <= width and 0 <= box[1] <= height - box[3]
            boxes.append((g.get("data-zone"), box))
            disc = next(c for c in g.iter("circle") if c.get("class") == "zone-disc")
            discs.append((g.get("data-zone"), float(disc.get("cx")), float(disc.get("cy"))))
        for (za, a), (zb, b) in combinations(boxes, 2):
            apart = (
                a[0] + a[2] <= b[0]
                or b[0] + b[2] <= a[0]
                or a[1] + a[3] <= b[1]
                or b[1] + b[3] <= a[1]
            )
            assert apart, (case, za, zb)
        for zone, box in boxes:
            for other, cx, cy in discs:
                r = zone_map.DISC_R
                clear = (
                    cx + r <= box[0]
                    or box[0] + box[2] <= cx - r
                    or cy + r <= box[1]
                    or box[1] + box[3] <= cy - r
                )
                assert clear, (case, zone, "covers", other)


def test_place_labels_moves_a_label_off_a_neighbour():
    marks = [(100.0, 100.0, 10.0), (140.0, 100.0, 10.0)]  # the second sits where the first's
    placed = place_labels(marks, [(40.0, 20.0)] * 2, (300.0, 300.0))  # label would go
    (a, _), (b, _) = placed
    assert not a.overlaps(b)
    assert not any(
        box.overlaps(Box(x - r, y - r, 2 * r, 2 * r)) for box in (a, b) for x, y, r in marks
    )
