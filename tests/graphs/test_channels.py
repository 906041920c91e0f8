"""Each agent runs on its own message channel; routing a turn costs one model call."""

from dataclasses import replace
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver

from agents.offline import OfflineChatModel
from graphs.chat import chat_graph, chat_turn, decide_turn, thread_messages
from graphs.context import DEFAULT_ORG_ID
from tests.fakes import ScriptedChatModel, tool_call


def _kinds(messages):
    return [type(m).__name__ for m in messages]


def test_a_worker_sees_its_task_not_the_operators_earlier_chat(ctx):
    model = ScriptedChatModel(
        [
            AIMessage(
                "", tool_calls=[tool_call("transfer_to_billing_clerk", {"task": "owed?"}, "t1")]
            ),
            AIMessage("We owe gamer-jonas 12.00 EUR."),
            AIMessage(
                "",
                tool_calls=[
                    tool_call("transfer_to_broker", {"task": "Place 4xH100 for 6 hours."}, "t2")
                ],
            ),
            AIMessage("Which zones are allowed?"),
            AIMessage("", tool_calls=[tool_call("transfer_to_broker", {"task": "EU only"}, "t3")]),
            AIMessage("Noted: EU only."),
        ]
    )
    scripted = replace(ctx, model=model)
    saver = InMemorySaver()
    chat_turn(scripted, saver, "what do we owe Jonas? my card is 4242", thread_id="w")
    asked = chat_turn(scripted, saver, "where should 4 H100 run for 6 hours?", thread_id="w")
    broker_first = model.calls[3]
    assert asked["agent"] == "broker" and asked["answer"] == "Which zones are allowed?"
    assert _kinds(broker_first.messages) == ["SystemMessage", "HumanMessage"]
    task = "Place 4xH100 for 6 hours.\n\nThe operator's words: where should 4 H100 run for 6 hours?"
    assert broker_first.messages[1].content == task
    assert "transfer_to_broker" not in broker_first.tool_names
    chat_turn(scripted, saver, "EU only", thread_id="w")
    follow_up = model.calls[5].messages
    seen = " ".join(str(m.content) for m in follow_up)
    assert [str(m.content) for m in follow_up[1:]] == [task, "Which zones are allowed?", "EU only"]
    assert "4242" not in seen and "12.00 EUR" not in seen
    model.assert_complete()
    operator = [str(m.content) for m in thread_messages(chat_graph(saver), "w")]
    assert operator == [
        "what do we owe Jonas? my card is 4242",
        "We owe gamer-jonas 12.00 EUR.",
        "where should 4 H100 run for 6 hours?",
        "Which zones are allowed?",
        "EU only",
        "Noted: EU only.",
    ]


class _Calls(BaseCallbackHandler):
    """Counts chat model calls and notes which of them could hand off (routing calls)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        tools = (kwargs.get("invocation_params") or {}).get("tools") or []
        self.calls.append([t["function"]["name"] for t in tools])

    def take(self) -> tuple[int, int]:
        calls, self.calls = self.calls, []
        routing = sum(any(n.startswith("transfer_to_") for n in names) for names in calls)
        return routing, len(calls)


def test_model_calls_per_turn_with_the_offline_model(ctx, clock):
    counter = _Calls()
    model = OfflineChatModel(clock=clock, org_id=DEFAULT_ORG_ID, callbacks=[counter])
    offline = replace(ctx, model=model)
    saver = InMemorySaver()
    rec = chat_turn(offline, saver, "where should I run 4 H100 for 6 hours", thread_id="n")
    assert rec["tool_calls"] == ["recommend_placement"]
    assert counter.take() == (1, 3)  # route; propose the tool; answer from its result
    book = chat_turn(offline, saver, "yes, go ahead and book it", thread_id="n")
    assert book["pending_approval"]["tool"] == "route_workload"
    assert counter.take() == (1, 2)  # route; propose the write, then wait for a person
    done = decide_turn(offline, saver, thread_id="n", approve=True, by="ops")
    assert done["written"] is True
    assert counter.take() == (0, 1)  # the decision resumes the agent: no routing at all


def test_a_hand_off_written_in_prose_routes_directly_without_another_call(ctx):
    model = ScriptedChatModel(
        [
            AIMessage(
                "To help, one should call the `transfer_to_broker` tool with the task "
                "'place 4xH100 for 6 hours'."
            ),
            AIMessage("Which zones are allowed?"),
        ]
    )
    out = chat_turn(replace(ctx, model=model), InMemorySaver(), "4xH100, 6 h?", thread_id="p")
    model.assert_complete()
    assert out["agent"] == "broker" and out["answer"] == "Which zones are allowed?"
    system, task = model.calls[1].messages
    assert isinstance(system, SystemMessage) and isinstance(task, HumanMessage)
    assert task.content == "4xH100, 6 h?"  # the operator's own words when no task was given


def test_prose_naming_several_agents_is_answered_not_routed(ctx):
    model = ScriptedChatModel(
        [AIMessage("Use transfer_to_broker or transfer_to_billing_clerk, as you prefer.")]
    )
    out = chat_turn(replace(ctx, model=model), InMemorySaver(), "hello", thread_id="q")
    model.assert_complete()
    assert out["agent"] == "supervisor" and out["tool_calls"] == []


def test_the_default_chat_graph_is_compiled_once_and_bound_per_checkpointer():
    first, second = InMemorySaver(), InMemorySaver()
    a, b = chat_graph(first), chat_graph(second)
    assert a.checkpointer is first and b.checkpointer is second
    assert a.nodes["broker"] is b.nodes["broker"]  # one compiled graph, not one per call
