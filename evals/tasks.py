"""Define an operator chat task (a recorded day of the agent suite) and load a suite of them.

A task is data: `evals/datasets/<suite>/<id>.yaml`. It names the starting store (`seed`: the
seeded demo fleet, no workloads), the fixed clock, the simulated grid's seed, the organisation the
operator acts for, the operator's turns, what must hold at the end, and which checks make up the
reward. `python -m evals schema` prints the JSON schema of this model for editors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from tools.errors import InvalidInputError

DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
RewardComponent = Literal["tools", "answer", "store"]


class Expected(BaseModel):
    """What must hold after the last turn; an empty field is not evaluated."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    tools_called: list[str] = Field(default_factory=list)
    """Tools that must have been called (any turn, any order)."""
    forbidden_tools: list[str] = Field(default_factory=list)
    """Tools that must not have been called."""
    answer_contains: list[str] = Field(default_factory=list)
    """Case-insensitive phrases the last answer must contain."""
    answer_excludes: list[str] = Field(default_factory=list)
    """Case-insensitive phrases the last answer must not contain."""
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
