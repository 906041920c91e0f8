"""Map a GPU job trace onto a replay window: arrivals, durations, GPUs, slack and origin zones.

The trace gives submit *offsets* (seconds from an anonymised origin), so placing it on real grid
hours needs a rule. The rule, in order:

1. Keep executed GPU work only: `scheduled == 1` and `num_gpus > 0`.
2. GPUs per job: `num_gpus` for multi-GPU pods; a single-GPU pod asks for `gpu_milli / 1000` of a
   GPU (GPU sharing; 0 or empty counts as a whole GPU).
3. Trace day = `floor(offset / 86400)`. A day is *active* when it has at least
   `ACTIVE_DAY_SHARE` (10 %) of the median submissions of the days that have any; sparse days
   (a handful of long-lived pods months apart) are dropped. Active days are concatenated in order,
   which removes the idle gaps but keeps each day's own inter-arrival pattern.
4. Trace days per window: a replay draws its own sequence of active days, a random permutation
   of them (another one appended whenever more days are needed) from
   `numpy.random.default_rng(day_seed)`, where the replay passes the window's start day
   (`date.toordinal()`), so windows that start on different days replay different trace days and
   a window always replays the same ones. Window day `j` overlays positions
   `floor(j*s) .. floor((j+1)*s) - 1` of that sequence, where `s = arrival_scale` (1.0 = the
   trace's own daily volume; 2.0 = two trace days per window day). Without `day_seed` the
   sequence is the active days in trace order, looped. A job's arrival hour is the window day's
   midnight UTC plus `floor(second_of_day / 3600)`.
5. Duration in whole hours: `ceil(duration_s / 3600)`, at least 1 h, capped at
   `max_duration_hours` (default 48 h). The cap turns months-long latency-sensitive service pods
   (and the right-censored rows) into two-day jobs instead of letting them dominate the window.
6. Flexibility: each job draws a deadline slack class (default 0 h / 6 h / 24 h with shares
   20 % / 30 % / 50 %); deadline = arrival + slack + duration (hours).
7. GPUs per job are capped at the largest zone's capacity (a job must fit somewhere). The origin
   zone is drawn among the zones that can hold the job, with probability proportional to their
   GPU capacity, so the carbon-agnostic baseline loads the fleet evenly.

Origin and slack draws use `numpy.random.default_rng(seed)` in job order, so a seed and a window
start fix the job set.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tools.errors import InvalidInputError

logger = logging.getLogger(__name__)

ACTIVE_DAY_SHARE = 0.10
DEFAULT_SLACK_CLASSES: tuple[tuple[int, float], ...] = ((0, 0.2), (6, 0.3), (24, 0.5))
DEFAULT_MAX_DURATION_HOURS = 48
_SECONDS_PER_DAY = 86_400
_REQUIRED_COLUMNS = ("submit_time_utc_or_offset_s", "duration_s", "num_gpus", "scheduled")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RawTrace:
    """Executed GPU pods of a trace file, in submit order."""

    submit_s: FloatArray
    duration_s: FloatArray
    gpus: FloatArray
    """GPUs asked for (fractional for shared single-GPU pods)."""


@dataclass(frozen=True)
class JobSet:
    """Jobs placed on the replay's hour grid (hour 0 = window start), sorted by arrival."""

    arrival: IntArray
    duration: IntArray
    gpus: FloatArray
    slack: IntArray
    origin: IntArray
    """Index into the fleet's zones."""

    @property
    def deadline(self) -> IntArray:
        """Return the hour by which each job must have finished (exclusive end)."""
        return self.arrival + self.slack + self.duration

    @property
    def latest_start(self) -> IntArray:
        """Return the last start hour that still meets each job's deadline."""
        return self.arrival + self.slack

    def __len__(self) -> int:
        return int(self.arrival.shape[0])


def _float(value: str, default: float) -> float:
    value = value.strip()
    return float(value) if value else default


def load_trace(path: Path) -> RawTrace:
    """Read a job trace CSV and keep executed GPU pods (`scheduled==1 && num_gpus>0`).

    Raises:
        InvalidInputError: The file misses a required column or has no executed GPU pod.
    """
    submit: list[float] = []
    duration: list[float] = []
    gpus: list[float] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInputError(
                f"job trace {str(path)!r} lacks columns {missing!r}; expected the Alibaba "
                f"GPU trace layout ({', '.join(_REQUIRED_COLUMNS)}, ...)"
            )
        for row in reader:
            n_gpus = int(_float(row["num_gpus"], 0))
            if int(_float(row["scheduled"], 0)) != 1 or n_gpus <= 0:
                continue
            share = _float(row.get("gpu_milli") or "", 0) / 1000.0
            submit.append(_float(row["submit_time_utc_or_offset_s"], 0))
            duration.append(_float(row["duration_s"], 0))
            gpus.append(float(n_gpus) if n_gpus > 1 or share <= 0 else min(share, 1.0))
    if not submit:
        raise InvalidInputError(f"job trace {str(path)!r} has no row with scheduled==1, num_gpus>0")
    order = np.argsort(np.asarray(submit), kind="stable")
    return RawTrace(
        submit_s=np.asarray(submit, dtype=np.float64)[order],
        duration_s=np.asarray(duration, dtype=np.float64)[order],
        gpus=np.asarray(gpus, dtype=np.float64)[order],
    )


def active_days(trace: RawTrace) -> IntArray:
    """Return the trace days (ascending) that count as active under the module's rule."""
    day = np.floor(trace.submit_s / _SECONDS_PER_DAY).astype(np.int64)
    days, counts = np.unique(day, return_counts=True)
    threshold = max(1.0, ACTIVE_DAY_SHARE * float(np.median(counts)))
    return days[counts >= threshold]


def _validate_slack_classes(slack_classes: tuple[tuple[int, float], ...]) -> None:
    if not slack_classes:
        raise InvalidInputError("slack classes are empty; give at least one (hours, share) pair")
    shares = [share for _, share in slack_classes]
    if any(h < 0 for h, _ in slack_classes) or any(s < 0 for s in shares):
        raise InvalidInputError(f"slack classes {slack_classes!r}: hours and shares must be >= 0")
    if not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
        raise InvalidInputError(f"slack class shares {shares!r} sum to {sum(shares)!r}; make it 1")


def window_trace_days(
    active: IntArray, *, days: int, arrival_scale: float = 1.0, day_seed: int | None = None
) -> list[IntArray]:
    """Return the trace days each window day overlays (rule 4 of the module docstring)."""
    needed = math.floor(days * arrival_scale)
    if day_seed is None:
        sequence = active[np.arange(needed) % active.size]
    else:
        rng = np.random.default_rng(day_seed)
        rounds = max(1, math.ceil(needed / active.size))
        sequence = np.concatenate([rng.permutation(active) for _ in range(rounds)])
    return [
        sequence[math.floor(j * arrival_scale) : math.floor((j + 1) * arrival_scale)]
        for j in range(days)
    ]


def map_trace_to_window(
    trace: RawTrace,
    *,
    days: int,
    zone_capacity: FloatArray,
    seed: int,
    arrival_scale: float = 1.0,
    slack_classes: tuple[tuple[int, float], ...] = DEFAULT_SLACK_CLASSES,
    max_duration_hours: int = DEFAULT_MAX_DURATION_HOURS,
    max_jobs: int | None = None,
    day_seed: int | None = None,
) -> JobSet:
    """Place the trace's jobs on a window of `days` days (see the module docstring for the rule).

    Args:
        trace: Executed GPU pods from `load_trace`.
        days: Window length in days (>= 1).
        zone_capacity: GPU capacity per fleet zone (origin weights and the GPU cap).
        seed: Seed of the origin and slack draws.
        arrival_scale: Trace days overlaid per window day (> 0).
        slack_classes: `(slack_hours, share)` pairs; shares sum to 1.
        max_duration_hours: Cap on a job's duration in hours (>= 1).
        max_jobs: Keep only the first `max_jobs` arrivals when given.
        day_seed: Seed of the trace-day draw (the window's start day); None keeps trace order.

    Raises:
        InvalidInputError: A parameter is out of range.
    """
    if days < 1:
        raise InvalidInputError(f"days {days!r}: replay at least 1 day")
    if arrival_scale <= 0:
        raise InvalidInputError(f"arrival_scale {arrival_scale!r}: give a value > 0")
    if max_duration_hours < 1:
        raise InvalidInputError(f"max_duration_hours {max_duration_hours!r}: give at least 1")
    weights = np.asarray(zone_capacity, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0 or weights.min() < 0 or weights.sum() <= 0:
        raise InvalidInputError(f"zone capacity {weights.tolist()!r}: need a positive total")
    _validate_slack_classes(slack_classes)

    day_of_job = np.floor(trace.submit_s / _SECONDS_PER_DAY).astype(np.int64)
    second_of_day = trace.submit_s - day_of_job * _SECONDS_PER_DAY
    active = active_days(trace)
    arrivals: list[IntArray] = []
    picks: list[IntArray] = []
    per_day = window_trace_days(active, days=days, arrival_scale=arrival_scale, day_seed=day_seed)
    for j, trace_days in enumerate(per_day):
        for trace_day in trace_days:
            idx = np.flatnonzero(day_of_job == trace_day)
            picks.append(idx)
            hours = np.floor(second_of_day[idx] / 3600).astype(np.int64)
            arrivals.append(j * 24 + hours)
    if not picks:
        raise InvalidInputError(
            f"arrival_scale {arrival_scale!r} over {days!r} days places no trace day; raise it"
        )
    idx = np.concatenate(picks)
    arrival = np.concatenate(arrivals)
    order = np.argsort(arrival, kind="stable")
    idx, arrival = idx[order], arrival[order]
    if max_jobs is not None:
        idx, arrival = idx[:max_jobs], arrival[:max_jobs]

    hours = np.ceil(trace.duration_s[idx] / 3600).astype(np.int64)
    duration = np.clip(hours, 1, max_duration_hours)
    gpus = np.minimum(trace.gpus[idx], weights.max())
    rng = np.random.default_rng(seed)
    fits = weights[None, :] + 1e-9 >= gpus[:, None]
    prob = np.where(fits, weights[None, :], 0.0)
    cum = np.cumsum(prob, axis=1)
    draw = rng.random(idx.size) * cum[:, -1]
    origin = np.minimum((cum <= draw[:, None]).sum(axis=1), weights.size - 1)
    slack_hours = np.array([h for h, _ in slack_classes], dtype=np.int64)
    shares = np.array([s for _, s in slack_classes], dtype=np.float64)
    slack = slack_hours[rng.choice(slack_hours.size, size=idx.size, p=shares / shares.sum())]
    logger.info(
        "mapped %d trace jobs onto %d days (%d active trace days)", idx.size, days, active.size
    )
    return JobSet(
        arrival=arrival,
        duration=duration.astype(np.int64),
        gpus=gpus,
        slack=slack.astype(np.int64),
        origin=origin.astype(np.int64),
    )
