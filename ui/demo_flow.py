"""The guided 7-step demo flow, shared by the console's Demo tab and /api/v1/demo/flow/{step}.

Each step is one of the console's actions (`ui.console_actions`), or two of them strung
together, titled with its place in the flow.
"""

from __future__ import annotations

from tools.errors import InvalidInputError
from ui import demo
from ui.console_actions import (
    StepResult,
    complete_workloads,
    create_workload,
    refresh_grid,
    show_dashboard,
    show_profitability,
    trigger_curtailment,
    trigger_reroute,
)
from ui.console_runtime import ConsoleRuntime

DEMO_STEPS = (
    "Dashboard",
    "Refresh grid",
    "Create “Mistral fine-tune” on the best node now, and a nightly eval in its greenest window",
    "France goes surplus (audio alert)",
    "Carbon spike: the incident agent reroutes",
    "Complete: bill, pay, mint receipts",
    "Profitability",
)


NIGHTLY_EVAL = demo.NewWorkload(
    name="Nightly eval", gpu_count=1, duration_hours=3, finish_within_hours=24
)
"""The demo's flexible job: done within a day, so the broker may wait for a greener window."""


def create_now_and_later(rt: ConsoleRuntime) -> StepResult:
    """Create the Mistral fine-tune (starts now) and a nightly eval (scheduled when greener)."""
    now_step = create_workload(rt, demo.NewWorkload())
    later = create_workload(rt, NIGHTLY_EVAL)
    return now_step.model_copy(
        update={
            "summary": f"{now_step.summary}\n\n{later.summary}",
            "details": {**now_step.details, "deferred": later.details},
        }
    )


GAMER_JOB = demo.NewWorkload(
    name="Render batch", gpu_count=1, gpu_model="RTX 4090", duration_hours=2.0
)
"""The small job step 6 places on a gamer's RTX 4090, so that completing pays a gamer."""


def complete_with_gamer_work(rt: ConsoleRuntime) -> StepResult:
    """Step 6: place a small job on a gamer node, then complete, bill, pay and mint receipts."""
    placed = create_workload(rt, GAMER_JOB)
    result = complete_workloads(rt)
    return result.model_copy(
        update={
            "summary": f"{placed.summary}\n\n{result.summary}",
            "details": {"gamer_job": placed.details, **result.details},
        }
    )


def run_step(rt: ConsoleRuntime, step: int) -> StepResult:
    """Run step `step` (1-7) of the guided demo flow."""
    actions = {
        1: show_dashboard,
        2: refresh_grid,
        3: create_now_and_later,
        4: lambda r: trigger_curtailment(r, "FR"),
        5: trigger_reroute,
        6: complete_with_gamer_work,
        7: show_profitability,
    }
    if step not in actions:
        raise InvalidInputError(f"demo step {step!r}: use 1 to {len(actions)}")
    result = actions[step](rt)
    return result.model_copy(update={"step": step, "title": DEMO_STEPS[step - 1]})
