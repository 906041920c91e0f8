"""Aggregate trial rewards: average reward and pass^k, with infrastructure errors kept apart."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any


def pass_hat_k(trials: int, successes: int, k: int) -> float:
    """Return pass^k: the chance that k trials drawn from `trials` all succeed.

    Uses `comb(successes, k) / comb(trials, k)` (tau2-bench); 0 when k exceeds the trials.
    """
    if k <= 0:
        raise ValueError(f"k {k!r}: give at least 1")
    if trials < k:
        return 0.0
    return math.comb(successes, k) / math.comb(trials, k)


def summarise(results: Iterable[Mapping[str, Any]], k_values: Iterable[int]) -> dict[str, Any]:
    """Return average reward, pass^k per k, and task/infra failure counts.

    Args:
        results: Trial records with `task_id`, `reward` (0..1) and `infra_error` (str or None).
        k_values: The k of pass^k to report.
    """
    by_task: dict[str, list[float]] = defaultdict(list)
    infra = 0
    rewards: list[float] = []
    for r in results:
        if r.get("infra_error"):
            infra += 1
            continue
        by_task[str(r["task_id"])].append(float(r["reward"]))
        rewards.append(float(r["reward"]))
    out: dict[str, Any] = {
        "tasks": len(by_task),
        "trials": len(rewards),
        "infra_errors": infra,
        "average_reward": sum(rewards) / len(rewards) if rewards else 0.0,
        "failed_tasks": sorted(t for t, rs in by_task.items() if min(rs) < 1.0),
    }
    for k in k_values:
        scores = [pass_hat_k(len(rs), sum(1 for x in rs if x >= 1.0), k) for rs in by_task.values()]
        out[f"pass^{k}"] = sum(scores) / len(scores) if scores else 0.0
    return out
