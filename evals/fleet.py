"""Describe the replay fleet: GPU capacity, power and customer price per zone.

Default: the seeded fleet (`store.seed.NODES`). A zone's capacity is the GPUs the broker may place
work on, `gpu_count - reserved_gpus` summed over its *online* nodes; power and customer price are
the capacity-weighted means of those nodes. `scale` multiplies capacity (`--fleet-scale`); a zone
whose scaled capacity rounds below one GPU keeps its fractional capacity (jobs may share GPUs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from store.seed import NODES
from tools.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]


class NodeLike(Protocol):
    """The node fields the fleet needs, read-only (the seed's frozen node rows satisfy it)."""

    @property
    def zone(self) -> str:
        """Electricity Maps zone code of the node."""

    @property
    def gpu_count(self) -> int:
        """GPUs the node has."""

    @property
    def reserved(self) -> int:
        """GPUs already reserved: the free ones are `gpu_count - reserved`."""

    @property
    def kw_per_gpu(self) -> float:
        """Power draw per GPU, in kW."""

    @property
    def cents_per_gpu_hour(self) -> int:
        """Customer price per GPU-hour, in minor units."""

    @property
    def status(self) -> str:
        """Node status; only "online" nodes count."""


@dataclass(frozen=True)
class Fleet:
    """Per-zone capacity (GPUs), power (kW/GPU) and customer price (minor units per GPU-hour)."""

    zones: tuple[str, ...]
    capacity: FloatArray
    kw_per_gpu: FloatArray
    price_minor_per_gpu_hour: FloatArray

    def __post_init__(self) -> None:
        n = len(self.zones)
        shapes = {a.shape for a in (self.capacity, self.kw_per_gpu, self.price_minor_per_gpu_hour)}
        if shapes != {(n,)}:
            raise InvalidInputError(f"fleet arrays must each have {n} entries, got {shapes!r}")
        if n == 0 or self.capacity.min() < 0 or self.capacity.sum() <= 0:
            raise InvalidInputError(f"fleet capacity {self.capacity.tolist()!r}: need GPUs > 0")

    def scaled(self, scale: float) -> Fleet:
        """Return the fleet with every zone's capacity multiplied by `scale` (> 0)."""
        if scale <= 0:
            raise InvalidInputError(f"fleet scale {scale!r}: give a value > 0")
        return Fleet(
            self.zones, self.capacity * scale, self.kw_per_gpu, self.price_minor_per_gpu_hour
        )


def fleet_from_nodes(nodes: Iterable[NodeLike]) -> Fleet:
    """Aggregate online nodes into a per-zone fleet (zones in first-seen order).

    Raises:
        InvalidInputError: No online node has a free GPU.
    """
    cap: dict[str, float] = {}
    kw: dict[str, float] = {}
    price: dict[str, float] = {}
    for node in nodes:
        free = float(node.gpu_count - node.reserved)
        if node.status != "online" or free <= 0:
            continue
        cap[node.zone] = cap.get(node.zone, 0.0) + free
        kw[node.zone] = kw.get(node.zone, 0.0) + free * node.kw_per_gpu
        price[node.zone] = price.get(node.zone, 0.0) + free * node.cents_per_gpu_hour
    if not cap:
        raise InvalidInputError("no online node with free GPUs; the replay fleet would be empty")
    zones = tuple(cap)
    capacity = np.array([cap[z] for z in zones])
    return Fleet(
        zones=zones,
        capacity=capacity,
        kw_per_gpu=np.array([kw[z] for z in zones]) / capacity,
        price_minor_per_gpu_hour=np.array([price[z] for z in zones]) / capacity,
    )


def default_fleet(scale: float = 1.0) -> Fleet:
    """Return the seeded fleet, capacity scaled by `scale`."""
    return fleet_from_nodes(NODES).scaled(scale)
