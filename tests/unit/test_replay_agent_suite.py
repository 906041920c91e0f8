"""The operator chat task suite: files validate, the offline model passes, scorers can fail."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agents.offline import OfflineChatModel
from evals.cli import app as evals_app
from evals.metrics import pass_hat_k, summarise
from evals.run import run_suite
from evals.scorers import RunRecord, StoreFacts, score_answer, score_store, score_tools
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
    assert routed["approvals_asked"] == ["route_workload"]
    rejected = next(r for r in results if r["task_id"] == "route_13_rejected")
    assert rejected["approvals_asked"] == ["route_workload"] and rejected["reward"] == 1.0


HELD_OUT_FLOOR = 1.0
"""pass^1 of the offline model on `operator_heldout` when it was last measured (70 of 70; the
parser scored 27 of 70 before the failure classes were handled)."""


def test_offline_model_keeps_its_score_on_the_held_out_prompts():
    held_out = load_suite("operator_heldout")
    assert len(held_out) >= 30
    results = run_suite(held_out, OfflineChatModel, trials=1)
    summary = summarise(results, [1])
    assert summary["infra_errors"] == 0
    assert summary["pass^1"] >= HELD_OUT_FLOOR, summary["failed_tasks"]


def test_a_wrong_expectation_scores_zero(tasks):
    task = next(t for t in tasks if t.id == "route_02_go_ahead")
    wrong = task.model_copy(
        update={"expected": Expected(zones_in=["DE"], workloads=1, answer_contains=["Routed"])}
    )
    [result] = run_suite([wrong], OfflineChatModel)
    assert result["reward"] == 0.0
    assert "not in ['DE']" in result["components"]["store"]["reason"]
    assert result["components"]["answer"]["score"] == 1.0


FACTS = StoreFacts(
    workload_statuses=["routed"],
    workload_zones=["FR"],
    workload_gpus=[4],
    decisions=1,
    workload_ids=["wl_1"],
    workload_nodes=["fr-par-h100"],
    workload_orgs=["acme-ai"],
    recommended_nodes=["fr-par-h100"],
)
RECOMMEND = {"name": "recommend_placement", "args": {"gpu_count": 4, "allowed_zones": ["fr"]}}


def test_tools_are_judged_on_key_arguments_and_approvals():
    wanted = Expected(
        tool_args={"recommend_placement": {"gpu_count": 4, "allowed_zones": ["FR"]}},
        approvals_asked=["route_workload"],
    )
    ok = RunRecord([RECOMMEND], ["route_workload"])
    assert score_tools(wanted, ok)[0] == 1.0
    other_args = RunRecord([{**RECOMMEND, "args": {"gpu_count": 8}}], ["route_workload"])
    assert score_tools(wanted, other_args)[0] == 0.0
    unasked = score_tools(wanted, RunRecord([RECOMMEND], []))
    assert unasked[0] == 0.0 and "approvals asked for []" in unasked[1]
    deadline = Expected(tool_args={"recommend_placement": {"deadline": "2026-11-27T10:00:00Z"}})
    same = RunRecord(
        [{"name": "recommend_placement", "args": {"deadline": "2026-11-27T10:00+00:00"}}]
    )
    assert score_tools(deadline, same)[0] == 1.0


def test_answers_are_judged_on_facts_not_wording():
    wanted = Expected(answer_facts=["workload_node", "recommended_node"])
    assert score_answer(wanted, "Done: fr-par-h100.", FACTS)[0] == 1.0
    assert score_answer(wanted, "Routed workload wl_1 somewhere green.", FACTS)[0] == 0.0
    asks = Expected(asks_question=True)
    assert score_answer(asks, "How many GPUs?", FACTS)[0] == 1.0
    assert score_answer(asks, "Routed.", FACTS)[0] == 0.0


def test_the_store_is_judged_on_owner_and_recommendations():
    assert score_store(Expected(workload_org="acme-ai", recommendations=1), FACTS)[0] == 1.0
    assert score_store(Expected(workload_org="verdant"), FACTS)[0] == 0.0
    assert score_store(Expected(recommendations=0), FACTS)[0] == 0.0


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
