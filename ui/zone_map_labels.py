"""Place map labels next to their marks so that no label covers another label or a mark.

Pure geometry in SVG pixels, no drawing: `ui.zone_map` measures each zone's label and its marks
and draws the label where `place_labels` puts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in SVG pixels."""

    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: Box) -> bool:
        """Return whether the two rectangles share some area."""
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )

    def inside(self, w: float, h: float) -> bool:
        """Return whether the rectangle lies within (0, 0, w, h)."""
        return self.x >= 0 and self.y >= 0 and self.x + self.w <= w and self.y + self.h <= h


_DIRECTIONS = ((1, 0), (-1, 0), (0, -1), (0, 1), (1, -1), (1, 1), (-1, -1), (-1, 1))


def _candidates(cx: float, cy: float, gap: float, w: float, h: float) -> list[Box]:
    out = []
    for dx, dy in _DIRECTIONS:
        g = gap * (0.75 if dx and dy else 1.0)
        x = cx - w / 2 if dx == 0 else cx + g if dx > 0 else cx - g - w
        y = cy - h / 2 if dy == 0 else cy + g if dy > 0 else cy - g - h
        out.append(Box(x, y, w, h))
    return out


def place_labels(
    marks: Sequence[tuple[float, float, float]],
    sizes: Sequence[tuple[float, float]],
    frame: tuple[float, float],
    reserved: Sequence[Box] = (),
) -> list[tuple[Box, bool]]:
    """Place one label per mark (x, y, half-size), each of the given (width, height).

    Greedy, nearest first: eight positions around the mark at growing distances; the first that
    lies inside the frame and overlaps no mark, reserved box or label placed so far wins.
    Returns each label's box and whether it sits away from its mark (then it gets a leader line).
    """
    obstacles = [Box(x - r, y - r, 2 * r, 2 * r) for x, y, r in marks] + list(reserved)
    placed: list[tuple[Box, bool]] = []
    for (cx, cy, r), (w, h) in zip(marks, sizes, strict=True):
        best: tuple[float, Box, bool] | None = None
        for step in range(6):
            for box in _candidates(cx, cy, r + 3 + step * 12, w, h):
                if not box.inside(*frame):
                    continue
                hits = sum(box.overlaps(o) for o in obstacles)
                if best is None or hits < best[0]:
                    best = (hits, box, step > 0)
                if hits == 0:
                    break
            if best is not None and best[0] == 0:
                break
        assert best is not None, "a label wider than its panel"
        placed.append((best[1], best[2]))
        obstacles.append(best[1])
    return placed
