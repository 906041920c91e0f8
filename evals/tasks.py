"""Define an operator chat task (a recorded day of the agent suite) and load a suite of them.

A task is data: `evals/datasets/<suite>/<id>.yaml`. It names the starting store (`seed`: the
seeded demo fleet, no workloads), the fixed clock, the simulated grid's seed, the organisation the
operator acts for, the operator's turns, how the operator answers approval requests, what must
hold at the end, and which checks make up the reward. Tasks are judged on what happened (the
tool calls and their key arguments, the approvals asked for, the store's end state) and on
facts in the last answer (ids, zones, figures), never on its wording.
`python -m evals schema` prints the JSON schema of this model for editors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from tools.errors import InvalidInputError

DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
RewardComponent = Literal["tools", "answer", "store"]
AnswerFact = Literal["workload_node", "workload_zone", "workload_id", "recommended_node"]


class Expected(BaseModel):
    """What must hold after the last turn; an empty field is not evaluated."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    tools_called: list[str] = Field(default_factory=list)
    """Tools that must have been called (any turn, any order)."""
    forbidden_tools: list[str] = Field(default_factory=list)
    """Tools that must not have been called."""
    tool_args: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Key arguments by tool: some call of that tool had each value (lists compare as sets of
    upper-case codes, numbers by value, ISO times as instants)."""
    approvals_asked: list[str] | None = None
    """Tools the agent asked a person to approve, as a set ([]: no approval asked)."""
    answer_contains: list[str] = Field(default_factory=list)
    """Facts (ids, zone codes, figures) the last answer must contain, case-insensitive."""
    answer_excludes: list[str] = Field(default_factory=list)
    """Facts (ids, zone codes) the last answer must not contain, case-insensitive."""
    answer_facts: list[AnswerFact] = Field(default_factory=list)
    """Values from the store the last answer must name: the workload's node, zone or id, or
    the node of the latest stored recommendation."""
    asks_question: bool | None = None
    """The last answer asks the operator something (ends with a question mark)."""
    workloads: int | None = None
    """Number of workloads in the store at the end."""
    workload_status: str | None = None
    """Status every workload must have."""
    zones_in: list[str] | None = None
    """Zones every workload's node must be in."""
    decisions: int | None = None
    """Number of routing decisions recorded."""
    min_gpu_count: int | None = None
    """Every workload asks for at least this many GPUs."""
    workload_org: str | None = None
    """Organisation every workload belongs to."""
    recommendations: int | None = None
    """Number of recommendations stored (0: no node could take the job)."""


class Task(BaseModel):
    """One operator chat task."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    id: str
    description: str
    """Purpose and notes."""
    initial_state: Literal["seed"] = "seed"
    """Starting store: `seed` = the seeded demo fleet with no workloads."""
    clock: AwareDatetime
    """The fixed 'now' of the run."""
    grid_seed: int = 7
    """Seed of the simulated grid the tools read."""
    org_id: str = "acme-ai"
    turns: list[str] = Field(min_length=1)
    """Operator messages, sent in order on one conversation thread."""
    approval: Literal["approve", "reject"] = "approve"
    """How the operator answers every write the agent proposes (approval request)."""
    expected: Expected
    reward_basis: list[RewardComponent] = Field(min_length=1)
    """Checks whose product is the reward."""


def load_task(path: Path) -> Task:
    """Read and validate one task file.

    Raises:
        InvalidInputError: The file is not a valid task; the message names the file and field.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        task = Task.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise InvalidInputError(f"task file {str(path)!r} is invalid: {exc}") from None
    if task.id != path.stem:
        raise InvalidInputError(
            f"task file {str(path)!r} has id {task.id!r}; make it {path.stem!r}"
        )
    return task


def load_suite(suite: str, directory: Path = DATASETS_DIR) -> list[Task]:
    """Return the tasks of `suite` sorted by id.

    Raises:
        InvalidInputError: The suite folder is missing or empty.
    """
    folder = directory / suite
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise InvalidInputError(f"suite {suite!r} has no task files in {str(folder)!r}")
    return [load_task(p) for p in files]


def task_schema() -> dict[str, object]:
    """Return the JSON schema of a task file."""
    return Task.model_json_schema()
