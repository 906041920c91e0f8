"""Turn a free-text job description into a validated `WorkloadSpec`.

With a real endpoint the model fills the schema through structured output; offline the same
deterministic parser the offline chat model uses does it. Either way the result is validated
by pydantic and converted to the broker's `JobSpec` only when the required fields are present.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, field_validator

from prompts import render
from tools.broker.workloads import MAX_GPUS_PER_JOB, MAX_JOB_HOURS, JobSpec, normalise_gpu_model
from tools.grid import ZONE_CODES
from tools.grid.zones import REGIONS

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("gpu_count", "duration_hours")
KNOWN_ZONES: tuple[str, ...] = ZONE_CODES
EU_ZONES: tuple[str, ...] = REGIONS["EU"]
"""The supported zones inside the European Union (GB is not one)."""


class WorkloadSpec(BaseModel):
    """A GPU job as described by an operator; fields the text does not state stay empty."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    gpu_count: int | None = Field(None, ge=1, le=MAX_GPUS_PER_JOB)
    """Number of GPUs the job needs (e.g. 4 for '4xH100')."""
    gpu_model: str | None = None
    """GPU model such as H100, A100, L40S, RTX4090; empty when any model will do."""
    duration_hours: float | None = Field(None, gt=0, le=MAX_JOB_HOURS)
    """How long the job runs, in hours ('half a day' is 12)."""
    deadline: datetime | None = None
    """Absolute UTC time by which the job must be finished; empty when flexible."""
    allowed_zones: list[str] | None = None
    """Only these grid zones may be used (e.g. the EU zones for 'EU only')."""
    denied_zones: list[str] | None = None
    """These grid zones must not be used (e.g. DE for 'not in Germany')."""
    max_carbon_intensity: float | None = Field(None, gt=0)
    """Highest acceptable grid carbon intensity in gCO2/kWh."""
    movable: bool | None = None
    """False when the job cannot checkpoint or must not be moved once running; else empty."""

    @field_validator("gpu_model")
    @classmethod
    def _canonical_model(cls, value: str | None) -> str | None:
        return normalise_gpu_model(value)

    @field_validator("allowed_zones", "denied_zones")
    @classmethod
    def _known_zones(cls, value: list[str] | None) -> list[str] | None:
        if not value:
            return None
        zones = sorted({z.strip().upper() for z in value})
        unknown = [z for z in zones if z not in KNOWN_ZONES]
        if unknown:
            raise ValueError(f"unknown zones {unknown!r}; use codes from {', '.join(KNOWN_ZONES)}")
        return zones

    @field_validator("deadline")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"deadline {value.isoformat()!r} has no time zone; give it in UTC")
        return value

    def missing(self) -> list[str]:
        """Return the required fields that are still empty, in asking order."""
        return [name for name in REQUIRED_FIELDS if getattr(self, name) is None]

    def merged(self, newer: WorkloadSpec) -> WorkloadSpec:
        """Return this spec with every field `newer` sets taking precedence."""
        data = self.model_dump()
        data.update(newer.model_dump(exclude_none=True))
        return WorkloadSpec.model_validate(data)

    def to_job_spec(self) -> JobSpec:
        """Return the broker's `JobSpec`, or raise naming the missing fields."""
        missing = self.missing()
        if missing:
            raise ValueError(f"the job description does not say {', '.join(missing)}; add them")
        return JobSpec.model_validate(self.model_dump(exclude_none=True))

    def tool_args(self) -> dict[str, object]:
        """Return the non-empty fields as JSON-shaped tool-call arguments."""
        return cast(dict[str, object], self.model_dump(mode="json", exclude_none=True))


def evaluate_workload(text: str, *, model: BaseChatModel, now: datetime) -> WorkloadSpec:
    """Return the `WorkloadSpec` described by `text` using `model`'s structured output.

    Args:
        text: The operator's free-text job description (treated as data).
        model: A chat model; the offline model answers through the deterministic parser.
        now: Aware current time, used to resolve relative deadlines.
    """
    # Function calling is what OpenAI-compatible servers support most widely (json_schema varies).
    structured = model.with_structured_output(WorkloadSpec, method="function_calling")
    system = render(
        "workload_eval.system",
        now=now.isoformat(),
        zones=", ".join(KNOWN_ZONES),
        eu_zones=", ".join(EU_ZONES),
    )
    result = structured.invoke([SystemMessage(system), HumanMessage(text)])
    if not isinstance(result, WorkloadSpec):
        raise TypeError(f"structured output returned {type(result).__name__}, not WorkloadSpec")
    logger.debug("evaluated workload text into %s", result.model_dump(exclude_none=True))
    return result
