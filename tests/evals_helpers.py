"""Small synthetic grids, fleets and job sets for the replay, policy and oracle tests."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

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


GRID_HEADER = "datetime_utc,carbon_intensity_gco2_per_kwh,renewable_pct,price_eur_per_mwh\n"
TRACE_HEADER = (
    "submit_time_utc_or_offset_s,duration_s,num_gpus,gpu_milli,cpu_milli,memory_mib,scheduled,"
    "queue_delay_s,gpu_spec,qos,pod_phase,ends_at_trace_end,pod_name\n"
)


def write_zone_csv(
    directory: Path, zone: str, start: datetime, hours: int, base: float, skip: range = range(0)
) -> Path:
    """Write an hourly zone file: CI = base + 50 * sin(hour of day); rows in `skip` left out."""
    lines = [GRID_HEADER]
    for h in range(hours):
        if h in skip:
            continue
        at = start + timedelta(hours=h)
        ci = base + 50.0 * np.sin(2 * np.pi * (h % 24) / 24) + (h // 24) % 3
        lines.append(f"{at:%Y-%m-%dT%H:00:00Z},{ci:.2f},,{40 + h % 24}\n")
    path = directory / f"{zone}.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_trace(path: Path, jobs_per_day: dict[int, int], gpus: int = 1) -> Path:
    """Write a trace with `n` one-to-three-hour jobs spread over each trace day `d`."""
    rows = [TRACE_HEADER]
    for day, n in jobs_per_day.items():
        for i in range(n):
            submit = day * 86_400 + (i * 86_400) // max(n, 1)
            rows.append(f"{submit},{3600 * (1 + i % 3)},{gpus},1000,1000,1024,1,0,,BE,S,0,p{i}\n")
    path.write_text("".join(rows), encoding="utf-8")
    return path
