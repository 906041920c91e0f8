"""The operator chat task suite: files validate, the offline model passes, scorers can fail."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agents.offline import OfflineChatModel
from evals.cli import app as evals_app
from evals.metrics import pass_hat_k, summarise
from evals.run import run_suite
from evals.tasks import Expected, load_suite


@pytest.fixture(scope="module")
def tasks():
    return load_suite("operator")


def test_suite_has_at_least_40_valid_tasks(tasks):
    assert len(tasks) >= 40
    assert len({t.id for t in tasks}) == len(tasks)
    writes = [t for t in tasks if "route_workload" in t.expected.tools_called]
    read_only = [t for t in tasks if "route_workload" in t.expected.forbidden_tools]
    assert len(writes) >= 10 and len(read_only) >= 20


def test_offline_model_passes_every_task(tasks):
    results = run_suite(tasks, OfflineChatModel, trials=1)
    failures = {r["task_id"]: r["components"] for r in results if r["reward"] < 1.0}
    assert failures == {}
    summary = summarise(results, [1])
    assert summary["pass^1"] == 1.0 and summary["infra_errors"] == 0
    routed = next(r for r in results if r["task_id"] == "route_01_eu")
    assert routed["tool_calls"] == ["recommend_placement", "route_workload"]


def test_a_wrong_expectation_scores_zero(tasks):
    task = next(t for t in tasks if t.id == "route_02_go_ahead")
    wrong = task.model_copy(
        update={"expected": Expected(zones_in=["DE"], workloads=1, answer_contains=["Routed"])}
    )
    [result] = run_suite([wrong], OfflineChatModel)
    assert result["reward"] == 0.0
    assert "not in ['DE']" in result["components"]["store"]["reason"]
    assert result["components"]["answer"]["score"] == 1.0


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [(4, 4, 2, 1.0), (4, 2, 2, 1 / 6), (4, 3, 1, 0.75), (3, 0, 1, 0.0), (2, 2, 3, 0.0)],
)
def test_pass_hat_k(n, c, k, expected):
    assert pass_hat_k(n, c, k) == pytest.approx(expected)


def test_infra_errors_are_counted_apart():
    records = [
        {"task_id": "a", "reward": 1.0, "infra_error": None},
        {"task_id": "a", "reward": 0.0, "infra_error": None},
        {"task_id": "b", "reward": 0.0, "infra_error": "APITimeoutError: slow"},
    ]
    summary = summarise(records, [1, 2])
    assert summary["tasks"] == 1 and summary["infra_errors"] == 1
    assert summary["pass^1"] == 0.5 and summary["pass^2"] == 0.0
    assert summary["failed_tasks"] == ["a"]


def test_schema_command_prints_the_task_schema():
    result = CliRunner().invoke(evals_app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert {"turns", "expected", "reward_basis"} <= set(schema["properties"])


def test_agents_command_rejects_k_above_trials():
    result = CliRunner().invoke(evals_app, ["agents", "--offline", "--trials", "1", "--k", "2"])
    assert result.exit_code == 2
    assert "--k [2]" in result.stderr
