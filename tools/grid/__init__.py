"""Read the electricity grid of each zone: simulated, recorded (CSV replay) or live.

Every source returns `GridReading`s through the `GridSource` protocol; `make_grid_source` picks
one by name. Zones and their simulator parameters live in `tools.grid.zones`.
"""

from tools.grid.curtailment import CurtailmentWindow, find_curtailment_events
from tools.grid.factory import GRID_SOURCE_NAMES, make_grid_source
from tools.grid.live import DEFAULT_BASE_URL, LiveGrid
from tools.grid.models import GridReading, GridSource, SourceName, ZoneSeries, surplus_flags
from tools.grid.recorded import RecordedGrid
from tools.grid.simulated import SimComponents, SimulatedGrid
from tools.grid.zonefile import load_zone_series
from tools.grid.zones import ZONE_CODES, ZONES, Zone, get_zone

__all__ = [
    "DEFAULT_BASE_URL",
    "GRID_SOURCE_NAMES",
    "ZONES",
    "ZONE_CODES",
    "CurtailmentWindow",
    "GridReading",
    "GridSource",
    "LiveGrid",
    "RecordedGrid",
    "SimComponents",
    "SimulatedGrid",
    "SourceName",
    "Zone",
    "ZoneSeries",
    "find_curtailment_events",
    "get_zone",
    "load_zone_series",
    "make_grid_source",
    "surplus_flags",
]
