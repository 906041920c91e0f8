import pytest

from prompts import PromptError, load_prompt, placeholders, prompt_hash, prompt_names, render

SAMPLES = {
    "now": "2026-11-26T10:00:00+00:00",
    "zones": "FR, DE, ES",
    "eu_zones": "FR, DE, ES",
    "agents": "- broker: placement",
    "incident_id": "inc-1",
    "zone": "FR",
    "trigger": "carbon_spike",
    "opened_at": "2026-11-26T10:00:00+00:00",
    "transitions": "MONITORING -> ANOMALY_DETECTED",
    "reroutes": "wl-1: n1 -> n2",
    "org_id": "acme-ai",
}


def test_expected_prompts_exist() -> None:
    assert {
        "broker.system",
        "supervisor.system",
        "incident.summary",
        "workload_eval.system",
        "billing_clerk.system",
    } <= set(prompt_names())


@pytest.mark.parametrize("name", prompt_names())
def test_every_prompt_renders_with_sample_variables(name: str) -> None:
    variables = {key: SAMPLES[key] for key in placeholders(name)}
    text = render(name, **variables)
    assert text.strip()
    assert "{" not in text.replace("{{", "")  # every placeholder was filled
    for value in variables.values():
        assert value in text


def test_missing_variable_is_named() -> None:
    with pytest.raises(PromptError, match=r"missing variables \['now'\]"):
        render("supervisor.system", agents="x")


def test_unused_variable_is_named() -> None:
    with pytest.raises(PromptError, match=r"does not use variables \['colour'\]"):
        render("supervisor.system", agents="x", now="t", colour="green")


def test_unknown_prompt_lists_known_ones() -> None:
    with pytest.raises(PromptError, match="unknown prompt 'nope'"):
        load_prompt("nope")
    with pytest.raises(PromptError):
        load_prompt("../pyproject")


def test_hash_is_stable_and_short() -> None:
    assert prompt_hash("broker.system") == prompt_hash("broker.system")
    assert len(prompt_hash("broker.system")) == 16
