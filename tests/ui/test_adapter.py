import json

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from ui.adapter import MAX_RESULT_CHARS, text_of, to_gradio


def _call(name, args, call_id):
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def test_a_tool_call_and_its_result_become_one_collapsible_step():
    messages = [
        SystemMessage("hidden"),
        HumanMessage("Where should I run 4 H100?"),
        AIMessage("", tool_calls=[_call("recommend_placement", {"gpu_count": 4}, "call_1")]),
        ToolMessage(
            json.dumps({"best": {"node_id": "fr-par-h100"}}),
            tool_call_id="call_1",
            name="recommend_placement",
        ),
        AIMessage("Run it on fr-par-h100."),
    ]
    out = to_gradio(messages)
    assert [m["role"] for m in out] == ["user", "assistant", "assistant"]
    step = out[1]
    assert step["metadata"] == {
        "title": "Used tool: recommend_placement",
        "id": "call_1",
        "status": "done",
    }
    assert '"gpu_count": 4' in step["content"] and '"node_id": "fr-par-h100"' in step["content"]
    assert out[2] == {"role": "assistant", "content": "Run it on fr-par-h100."}


def test_a_pending_call_stays_pending_until_its_result_arrives():
    out = to_gradio([AIMessage("", tool_calls=[_call("list_nodes", {}, "c9")])])
    assert out[0]["metadata"]["status"] == "pending"
    assert "Result" not in out[0]["content"]


def test_a_failed_tool_is_titled_as_a_failure():
    messages = [
        AIMessage("", tool_calls=[_call("reroute_workload", {"workload_id": "wl_x"}, "c2")]),
        ToolMessage(
            "Error: refused: the operator did not name workload 'wl_x'",
            tool_call_id="c2",
            name="reroute_workload",
            status="error",
        ),
    ]
    (step,) = to_gradio(messages)
    assert step["metadata"]["title"] == "Tool failed: reroute_workload"
    assert "Error:" in step["content"] and "did not name workload" in step["content"]


def test_parallel_calls_keep_their_own_results():
    messages = [
        AIMessage(
            "Comparing.",
            tool_calls=[
                _call("compare_zones", {"zones": ["FR"]}, "a"),
                _call("list_nodes", {}, "b"),
            ],
        ),
        ToolMessage('{"zone": "FR"}', tool_call_id="b", name="list_nodes"),
        ToolMessage('{"zone": "DE"}', tool_call_id="a", name="compare_zones"),
    ]
    out = to_gradio(messages)
    assert out[0]["content"] == "Comparing."
    by_id = {m["metadata"]["id"]: m["content"] for m in out[1:]}
    assert '"DE"' in by_id["a"] and '"FR"' in by_id["b"]


def test_a_result_without_its_call_is_still_shown():
    (step,) = to_gradio([ToolMessage("plain text", tool_call_id="zz", name="explain_decision")])
    assert step["metadata"]["title"] == "Used tool: explain_decision"
    assert "plain text" in step["content"]


def test_long_results_are_truncated_and_content_blocks_are_joined():
    huge = json.dumps({"rows": ["x" * 50] * 200})
    messages = [
        AIMessage("", tool_calls=[_call("list_nodes", {}, "n")]),
        ToolMessage(huge, tool_call_id="n", name="list_nodes"),
    ]
    (step,) = to_gradio(messages)
    assert "more characters" in step["content"]
    assert len(step["content"]) < MAX_RESULT_CHARS + 300
    assert text_of([{"type": "text", "text": "a"}, "b", {"type": "image_url"}]) == "ab"
    assert to_gradio([AIMessage([{"type": "text", "text": "hi"}])]) == [
        {"role": "assistant", "content": "hi"}
    ]
