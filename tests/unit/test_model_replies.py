"""Tool calls a real model writes into its text become tool calls; regions name zones."""

import pytest
from langchain_core.messages import AIMessage

from agents.replies import recover_tool_calls
from tools.errors import UnknownZoneError
from tools.grid.zones import expand_zones

TOOLS = ["recommend_placement", "route_workload"]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "recommend_placement", "arguments": {"gpu_count": 4, "duration_hours": 6}}',
        '```json\n{"name": "recommend_placement", "parameters": {"gpu_count": 4, '
        '"duration_hours": 6}}\n```',
        '<tool_call>\n{"name": "recommend_placement", "arguments": "{\\"gpu_count\\": 4, '
        '\\"duration_hours\\": 6}"}\n</tool_call>',
        '<tools> {"name": "recommend_placement", "arguments": {"gpu_count": 4, '
        '"duration_hours": 6}} </tools>',
    ],
)
def test_a_tool_call_written_as_text_becomes_a_call(text):
    out = recover_tool_calls(AIMessage(text, id="m1"), TOOLS)
    assert out.content == ""
    (call,) = out.tool_calls
    assert call["name"] == "recommend_placement"
    assert call["args"] == {"gpu_count": 4, "duration_hours": 6}
    # The same text gives the same call id (a replayed answer is decided once).
    assert recover_tool_calls(AIMessage(text, id="m1"), TOOLS).tool_calls[0]["id"] == call["id"]


def test_several_calls_one_per_line_and_unknown_tools_are_kept_for_the_tool_node():
    text = (
        '{"name": "recommend_placement", "arguments": {"gpu_count": 1, "duration_hours": 1}}\n'
        '{"name": "delete_everything", "arguments": {}}'
    )
    out = recover_tool_calls(AIMessage(text), TOOLS)
    assert [c["name"] for c in out.tool_calls] == ["recommend_placement", "delete_everything"]


@pytest.mark.parametrize(
    "text",
    [
        "Routed to fr-par-h100.",
        'I would call {"name": "route_workload", "arguments": {}} next.',
        '{"node": "fr-par-h100", "zone": "FR"}',
        '{"name": "route_workload", "arguments": [1, 2]}',
        "",
    ],
)
def test_prose_and_other_json_stay_answers(text):
    reply = AIMessage(text)
    assert recover_tool_calls(reply, TOOLS) is reply


def test_real_tool_calls_are_left_alone():
    reply = AIMessage(
        '{"name": "route_workload", "arguments": {}}',
        tool_calls=[{"name": "recommend_placement", "args": {}, "id": "c1"}],
    )
    assert recover_tool_calls(reply, TOOLS) is reply


def test_regions_expand_and_unknown_names_are_refused_with_the_choices():
    assert expand_zones(["eu"]) == ["BE", "DE", "ES", "FR", "IT", "NL", "PT"]
    assert expand_zones([" Iberia", "FR"]) == ["ES", "FR", "PT"]
    assert expand_zones(["US"]) == ["US-CAL-CISO", "US-NY-NYIS", "US-TEX-ERCO"]
    with pytest.raises(UnknownZoneError, match="'Mars'.*regions? \\(EU, US"):
        expand_zones(["Mars"])
