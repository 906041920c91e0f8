"""A reply to an agent's question goes back to that agent and completes the request."""

from dataclasses import replace

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver

from graphs.chat import chat_turn
from store.models import Organization
from tests.fakes import ScriptedChatModel, tool_call
from tests.graphs.clerk_money import bill_demo
from tests.graphs.conftest import T0
from tools.money.amounts import format_money
from tools.money.payouts import owed_to


def _owed(sessions, org):
    with sessions() as session:
        minor = owed_to(session=session, org_id=org)["payable_minor"]
    return format_money(minor, "EUR")


def test_the_clerks_question_is_answered_on_the_same_thread(ctx, sessions):
    bill_demo(sessions, now=T0)
    saver = InMemorySaver()
    asked = chat_turn(ctx, saver, "what do we owe?", thread_id="f")
    assert asked["agent"] == "billing_clerk" and asked["tool_calls"] == []
    assert asked["answer"].rstrip().endswith("?")
    answered = chat_turn(ctx, saver, "gamer Jonas", thread_id="f")
    assert answered["agent"] == "billing_clerk"
    assert answered["tool_calls"] == ["find_organization", "amount_owed"]
    assert _owed(sessions, "gamer-jonas") in answered["answer"]
    assert answered["written"] is False


def test_a_new_request_after_a_question_still_goes_to_the_right_agent(ctx, sessions):
    saver = InMemorySaver()
    chat_turn(ctx, saver, "what do we owe?", thread_id="g")
    moved_on = chat_turn(ctx, saver, "where should 2 H100 run for 3 hours?", thread_id="g")
    assert moved_on["agent"] == "broker" and moved_on["tool_calls"] == ["recommend_placement"]


def test_without_an_open_question_an_unclear_message_is_not_forwarded(ctx, sessions):
    saver = InMemorySaver()
    chat_turn(ctx, saver, "what's the trial balance?", thread_id="h")
    unclear = chat_turn(ctx, saver, "gamer Jonas", thread_id="h")
    assert unclear["agent"] == "supervisor" and unclear["tool_calls"] == []


def test_a_real_model_sees_the_open_question_when_it_routes(ctx, sessions):
    with sessions.begin() as s:
        assert s.get(Organization, "gamer-jonas") is not None
    seen = []

    def route_back(messages):
        seen.append(messages)
        return AIMessage(
            "", tool_calls=[tool_call("transfer_to_billing_clerk", {"task": "owe"}, "t2")]
        )

    model = ScriptedChatModel(
        [
            AIMessage(
                "", tool_calls=[tool_call("transfer_to_billing_clerk", {"task": "owe"}, "t1")]
            ),
            AIMessage("Which organisation do you mean?"),
            route_back,
            AIMessage("", tool_calls=[tool_call("find_organization", {"name": "Jonas"}, "c1")]),
            AIMessage("We owe gamer-jonas nothing."),
        ]
    )
    scripted = replace(ctx, model=model)
    saver = InMemorySaver()
    chat_turn(scripted, saver, "what do we owe?", thread_id="s")
    out = chat_turn(scripted, saver, "Jonas", thread_id="s")
    system, question, latest = seen[0]
    assert isinstance(system, SystemMessage)
    assert question.content == "Which organisation do you mean?"
    assert isinstance(latest, HumanMessage) and latest.content == "Jonas"
    assert out["agent"] == "billing_clerk"
    model.assert_complete()
