"""Score one run of an operator task: tools, final answer and store state, each 1.0 or 0.0.

Each scorer returns `(score, reason)`. A criterion the task leaves empty is "not evaluated" and
scores 1.0. The reward is the product of the components in the task's `reward_basis`.
"""

from __future__ import annotations

from dataclasses import dataclass

from evals.tasks import Expected, RewardComponent


@dataclass(frozen=True)
class StoreFacts:
    """The store fields the suite checks after a run."""

    workload_statuses: list[str]
    workload_zones: list[str | None]
    workload_gpus: list[int]
    decisions: int


def score_tools(expected: Expected, calls: list[str]) -> tuple[float, str]:
    """Return 1.0 when every required tool was called and no forbidden one was."""
    missing = [t for t in expected.tools_called if t not in calls]
    forbidden = [t for t in expected.forbidden_tools if t in calls]
    if missing or forbidden:
        return 0.0, f"missing tools {missing!r}, forbidden tools called {forbidden!r}"
    return 1.0, f"tools ok ({', '.join(calls) or 'none'})"


def score_answer(expected: Expected, answer: str) -> tuple[float, str]:
    """Return 1.0 when the last answer has every required phrase and no excluded one."""
    low = answer.lower()
    missing = [p for p in expected.answer_contains if p.lower() not in low]
    present = [p for p in expected.answer_excludes if p.lower() in low]
    if missing or present:
        return 0.0, f"answer lacks {missing!r} or has {present!r}: {answer[:200]!r}"
    return 1.0, "answer ok"


def score_store(expected: Expected, facts: StoreFacts) -> tuple[float, str]:
    """Return 1.0 when the store's workloads and decisions match the expectations."""
    problems = []
    n = len(facts.workload_statuses)
    if expected.workloads is not None and n != expected.workloads:
        problems.append(f"{n} workloads, expected {expected.workloads}")
    if expected.workload_status is not None:
        bad = [s for s in facts.workload_statuses if s != expected.workload_status]
        if bad:
            problems.append(f"statuses {bad!r}, expected {expected.workload_status!r}")
    if expected.zones_in is not None:
        bad_zones = [z for z in facts.workload_zones if z not in expected.zones_in]
        if bad_zones:
            problems.append(f"zones {bad_zones!r} not in {expected.zones_in!r}")
    if expected.decisions is not None and facts.decisions != expected.decisions:
        problems.append(f"{facts.decisions} decisions, expected {expected.decisions}")
    if expected.min_gpu_count is not None:
        small = [g for g in facts.workload_gpus if g < expected.min_gpu_count]
        if small:
            problems.append(f"gpu counts {small!r} below {expected.min_gpu_count}")
    if problems:
        return 0.0, "; ".join(problems)
    return 1.0, f"store ok ({n} workloads, {facts.decisions} decisions)"


def reward(
    basis: list[RewardComponent], components: dict[RewardComponent, tuple[float, str]]
) -> float:
    """Return the product of the scores named in `basis`."""
    value = 1.0
    for name in basis:
        value *= components[name][0]
    return value
