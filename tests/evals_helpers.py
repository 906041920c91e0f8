"""Small synthetic grids, fleets and job sets for the replay, policy and oracle tests."""

from datetime import UTC, datetime

import numpy as np

from evals.fleet import Fleet
from evals.gridwindow import GridWindow
from evals.jobs import JobSet

HISTORY = 48


def make_window(ci: np.ndarray, price: np.ndarray | None = None) -> GridWindow:
    zones = tuple(f"Z{i}" for i in range(ci.shape[0]))
    price = np.full(ci.shape, 50.0) if price is None else price
    full_ci = np.concatenate([np.repeat(ci[:, :24], HISTORY // 24, axis=1), ci], axis=1)
    full_price = np.concatenate([np.repeat(price[:, :24], HISTORY // 24, axis=1), price], axis=1)
    return GridWindow(
        zones=zones,
        start=datetime(2023, 6, 1, tzinfo=UTC),
        history=HISTORY,
        horizon=ci.shape[1],
        ci=full_ci,
        price=full_price,
        price_cost=np.nan_to_num(full_price, nan=50.0),
    )


def make_fleet(capacity: list[float], kw: list[float] | None = None) -> Fleet:
    n = len(capacity)
    return Fleet(
        zones=tuple(f"Z{i}" for i in range(n)),
        capacity=np.asarray(capacity, dtype=float),
        kw_per_gpu=np.asarray(kw or [1.0] * n, dtype=float),
        price_minor_per_gpu_hour=np.full(n, 100.0),
    )


def make_jobs(arrival, duration, gpus, slack, origin) -> JobSet:
    return JobSet(
        np.asarray(arrival, dtype=np.int64),
        np.asarray(duration, dtype=np.int64),
        np.asarray(gpus, dtype=float),
        np.asarray(slack, dtype=np.int64),
        np.asarray(origin, dtype=np.int64),
    )
