"""Score one run of an operator task: tools, final answer and store state, each 1.0 or 0.0.

Each scorer returns `(score, reason)`. A criterion the task leaves empty is "not evaluated" and
scores 1.0. The reward is the product of the components in the task's `reward_basis`. Tools are
judged by name, key arguments and the approvals asked for; the answer only by facts (ids,
zones, figures, values read from the store), never by wording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evals.tasks import AnswerFact, Expected, RewardComponent


@dataclass(frozen=True)
class StoreFacts:
    """The store fields the suite checks after a run."""

    workload_statuses: list[str]
    workload_zones: list[str | None]
    workload_gpus: list[int]
    decisions: int
    workload_ids: list[str] = field(default_factory=list)
    workload_nodes: list[str | None] = field(default_factory=list)
    workload_orgs: list[str] = field(default_factory=list)
    recommended_nodes: list[str] = field(default_factory=list)
    """Node of each stored recommendation, oldest first."""


@dataclass(frozen=True)
class RunRecord:
    """What the agent did: tool calls with their arguments and the approvals it asked for."""

    calls: list[dict[str, Any]]
    """`{"name", "args"}` of every tool call that ran or was refused, in order."""
    approvals_asked: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Return the tool names in call order."""
        return [str(c["name"]) for c in self.calls]


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def same_value(expected: object, actual: object) -> bool:
    """Return whether a tool argument has the expected value (see `Expected.tool_args`)."""
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return False
        return {str(x).strip().upper() for x in expected} == {
            str(x).strip().upper() for x in actual
        }
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return abs(float(expected) - float(actual)) < 1e-6
    if (when := _instant(expected)) is not None:
        return when == _instant(actual)
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.strip().upper() == actual.strip().upper()
    return expected == actual


def _args_ok(wanted: dict[str, Any], record: RunRecord, tool: str) -> bool:
    return any(
        all(same_value(v, (c.get("args") or {}).get(k)) for k, v in wanted.items())
        for c in record.calls
        if c["name"] == tool
    )


def score_tools(expected: Expected, record: RunRecord) -> tuple[float, str]:
    """Return 1.0 when the right tools ran with the key arguments and the right approvals."""
    names = record.names
    missing = [t for t in expected.tools_called if t not in names]
    forbidden = [t for t in expected.forbidden_tools if t in names]
    problems = []
    if missing or forbidden:
        problems.append(f"missing tools {missing!r}, forbidden tools called {forbidden!r}")
    for tool, wanted in expected.tool_args.items():
        if not _args_ok(wanted, record, tool):
            seen = [c.get("args") for c in record.calls if c["name"] == tool]
            problems.append(f"no {tool} call with {wanted!r} (calls: {seen!r})")
    asked = expected.approvals_asked
    if asked is not None and set(asked) != set(record.approvals_asked):
        problems.append(f"approvals asked for {record.approvals_asked!r}, expected {asked!r}")
    if problems:
        return 0.0, "; ".join(problems)
    return 1.0, f"tools ok ({', '.join(names) or 'none'})"


def _fact(name: AnswerFact, facts: StoreFacts) -> str | None:
    values: dict[AnswerFact, list[Any]] = {
        "workload_node": facts.workload_nodes,
        "workload_zone": facts.workload_zones,
        "workload_id": facts.workload_ids,
        "recommended_node": facts.recommended_nodes,
    }
    found = values[name]
    return str(found[-1]) if found and found[-1] is not None else None


def score_answer(expected: Expected, answer: str, facts: StoreFacts) -> tuple[float, str]:
    """Return 1.0 when the last answer states the expected facts and none of the excluded."""
    low = answer.lower()
    missing = [p for p in expected.answer_contains if p.lower() not in low]
    present = [p for p in expected.answer_excludes if p.lower() in low]
    for name in expected.answer_facts:
        value = _fact(name, facts)
        if value is None or value.lower() not in low:
            missing.append(f"{name}={value!r}")
    problems = []
    if missing or present:
        problems.append(f"answer lacks {missing!r} or has {present!r}")
    if expected.asks_question is not None and answer.rstrip().endswith("?") != (
        expected.asks_question
    ):
        problems.append(f"asks a question: expected {expected.asks_question}")
    if problems:
        return 0.0, "; ".join(problems) + f": {answer[:200]!r}"
    return 1.0, "answer ok"


def score_store(expected: Expected, facts: StoreFacts) -> tuple[float, str]:
    """Return 1.0 when the store's workloads, decisions and recommendations match."""
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
    if expected.workload_org is not None:
        others = [o for o in facts.workload_orgs if o != expected.workload_org]
        if others:
            problems.append(f"workloads of {others!r}, expected {expected.workload_org!r}")
    stored = len(facts.recommended_nodes)
    if expected.recommendations is not None and stored != expected.recommendations:
        problems.append(f"{stored} recommendations stored, expected {expected.recommendations}")
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
