"""Read the electricity grid of each zone: simulated or recorded (CSV replay).

Every source returns `GridReading`s through the `GridSource` protocol; the live Electricity Maps
source is an integration (`tools.integrations.electricitymaps`) and `graphs.wiring` picks
one by name. Zones and their simulator parameters live in `tools.grid.zones`.
"""

from tools.grid.curtailment import CurtailmentWindow, find_curtailment_events
from tools.grid.models import GridReading, GridSource, SourceName, ZoneSeries, surplus_flags
from tools.grid.recorded import RecordedGrid
from tools.grid.simulated import SimComponents, SimulatedGrid
from tools.grid.zonefile import load_zone_series
from tools.grid.zones import ZONE_CODES, ZONES, Zone, get_zone

__all__ = [
    "ZONES",
    "ZONE_CODES",
    "CurtailmentWindow",
    "GridReading",
    "GridSource",
    "RecordedGrid",
    "SimComponents",
    "SimulatedGrid",
    "SourceName",
    "Zone",
    "ZoneSeries",
    "find_curtailment_events",
    "get_zone",
    "load_zone_series",
    "surplus_flags",
]
