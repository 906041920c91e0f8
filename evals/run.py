"""Run operator chat tasks through the supervisor graph: one fresh store per (task, trial).

Each trial gets a new SQLite file (migrated, then seeded), a fixed clock, the simulated grid with
the task's seed, a fresh model from the factory and its own conversation thread. The operator's
turns go through `graphs.chat.chat_turn`; every write the agent proposes is answered as the task
says (`approval`) through `graphs.chat.decide_turn`. Afterwards the scorers compare the tool
calls, the approvals asked for, the last answer's facts and the store to the expectations.
Model transport failures (connection, timeout, rate limit, 5xx) are recorded as infrastructure
errors, apart from task failures; a run the graph ends early (recursion limit) scores 0.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError
from sqlalchemy import select

from evals.scorers import (
    RunRecord,
    StoreFacts,
    reward,
    score_answer,
    score_store,
    score_tools,
)
from evals.tasks import RewardComponent, Task
from graphs.chat import chat_turn, decide_turn
from graphs.context import Context
from graphs.wiring import make_forecast_provider
from store import repo
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import Recommendation
from store.seed import seed_fleet
from tools.clock import FixedClock
from tools.grid import GridSource, SimulatedGrid
from tools.grid.outlook import ForecastProvider
from tools.integrations.incidentio import DemoAlerts

logger = logging.getLogger(__name__)

ModelFactory = Callable[..., BaseChatModel]
"""Returns a fresh chat model; called with `clock=` and `org_id=` (the offline model uses them)."""
MAX_APPROVALS_PER_TURN = 4
"""A turn that keeps proposing writes after this many decisions is cut short."""
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
INFRA_ERRORS = (
    openai.APIConnectionError,
    openai.APITimeoutError,
    openai.RateLimitError,
    openai.InternalServerError,
)


def prompt_hashes(directory: Path = PROMPTS_DIR) -> dict[str, str]:
    """Return the SHA-256 (first 16 hex) of every prompt file, by file name."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in sorted(directory.glob("*.md"))
    }


def _facts(sessions: Any) -> StoreFacts:
    with sessions() as session:
        workloads = repo.list_workloads(session=session)
        zones: list[str | None] = []
        for w in workloads:
            node = repo.get_node(session=session, node_id=w.node_id) if w.node_id else None
            zones.append(node.zone if node else None)
        quotes = session.scalars(
            select(Recommendation.node_id).order_by(Recommendation.created_at)
        ).all()
        return StoreFacts(
            workload_statuses=[w.status for w in workloads],
            workload_zones=zones,
            workload_gpus=[w.gpu_count for w in workloads],
            decisions=len(repo.list_decisions(session=session)),
            workload_ids=[w.id for w in workloads],
            workload_nodes=[w.node_id for w in workloads],
            workload_orgs=[w.org_id for w in workloads],
            recommended_nodes=list(quotes),
        )


@functools.cache
def _grid(seed: int) -> tuple[GridSource, ForecastProvider]:
    """Return the simulated grid of `seed` and its forecasts, shared by the tasks that use it.

    The product builds its provider once per process; so does the suite, so a task's plan
    does not pay for the history model's fit again.
    """
    grid = SimulatedGrid(seed=seed)
    return grid, make_forecast_provider(grid)


def migrated_template(directory: Path) -> Path:
    """Create an empty, migrated SQLite store in `directory` to copy for each trial."""
    path = directory / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return path


def run_trial(
    task: Task, model_factory: ModelFactory, *, trial: int, template: Path | None = None
) -> dict[str, Any]:
    """Run one trial of `task` on a fresh store and return its scored record.

    Args:
        task: The task.
        model_factory: Returns a fresh chat model for the trial.
        trial: Trial number (names the conversation thread).
        template: A migrated empty store to copy (from `migrated_template`); migrate anew if None.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tgtg-task-") as tmp:
        path = Path(tmp) / "store.db"
        if template is not None:
            shutil.copyfile(template, path)
        engine = make_engine(f"sqlite:///{path}")
        try:
            if template is None:
                upgrade(engine)
            sessions = make_session_factory(engine)
            with sessions.begin() as session:
                seed_fleet(session=session, now=task.clock)
            clock = FixedClock(task.clock)
            grid, forecasts = _grid(task.grid_seed)
            ctx = Context(
                model=model_factory(clock=clock, org_id=task.org_id),
                sessions=sessions,
                grid=grid,
                clock=clock,
                org_id=task.org_id,
                alerts=DemoAlerts(),
                forecasts=forecasts,
            )
            saver = InMemorySaver()
            calls: list[dict[str, Any]] = []
            asked: list[str] = []
            answer = ""
            error: str | None = None
            infra: str | None = None
            thread = f"{task.id}-{trial}"
            approve = task.approval == "approve"
            try:
                for text in task.turns:
                    out = chat_turn(ctx, saver, text, thread_id=thread)
                    calls += out["tool_call_args"]
                    for _ in range(MAX_APPROVALS_PER_TURN):
                        if out["pending_approval"] is None:
                            break
                        asked.append(out["pending_approval"]["tool"])
                        out = decide_turn(
                            ctx,
                            saver,
                            thread_id=thread,
                            approve=approve,
                            by="eval operator",
                            reason=None if approve else "the operator declines",
                        )
                        calls += out["tool_call_args"]
                    answer = out["answer"]
            except GraphRecursionError as exc:
                error = f"ended early: {exc}"
            except INFRA_ERRORS as exc:
                infra = f"{type(exc).__name__}: {exc}"
            facts = _facts(sessions)
        finally:
            engine.dispose()
    record = RunRecord(calls=calls, approvals_asked=asked)
    components: dict[RewardComponent, tuple[float, str]] = {
        "tools": score_tools(task.expected, record),
        "answer": score_answer(task.expected, answer, facts),
        "store": score_store(task.expected, facts),
    }
    value = 0.0 if error else reward(task.reward_basis, components)
    return {
        "task_id": task.id,
        "trial": trial,
        "reward": value,
        "components": {k: {"score": s, "reason": r} for k, (s, r) in components.items()},
        "tool_calls": record.names,
        "tool_call_args": calls,
        "approvals_asked": asked,
        "workloads_written": len(facts.workload_ids),
        "answer": answer,
        "error": error,
        "infra_error": infra,
        "seconds": round(time.perf_counter() - started, 3),
    }


def run_suite(
    tasks: list[Task],
    model_factory: ModelFactory,
    *,
    trials: int = 1,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every task `trials` times; call `on_result` after each trial."""
    results = []
    with tempfile.TemporaryDirectory(prefix="tgtg-suite-") as tmp:
        template = migrated_template(Path(tmp))
        for task in tasks:
            for trial in range(trials):
                record = run_trial(task, model_factory, trial=trial, template=template)
                results.append(record)
                if on_result is not None:
                    on_result(record)
    return results
