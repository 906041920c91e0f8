from dataclasses import replace

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from graphs.context import Context
from graphs.state import ChatState
from graphs.supervisor import (
    AgentEntry,
    AgentRegistry,
    broker_entry,
    build_supervisor_graph,
    default_registry,
)
from tests.fakes import ScriptedChatModel, tool_call


def _billing_graph():
    def answer(state, runtime):
        return {"messages": [AIMessage("billing clerk: you owe 0 EUR")]}

    builder = StateGraph(ChatState, context_schema=Context)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile()


BILLING = AgentEntry(
    name="billing_clerk",
    description="Answers billing questions.",
    topics=("billing",),
    build=_billing_graph,
)


def _ask(ctx, registry, text):
    graph = build_supervisor_graph(registry=registry, checkpointer=InMemorySaver())
    return graph.invoke(
        {"messages": [HumanMessage(text)]},
        {"configurable": {"thread_id": "s"}, "recursion_limit": 12},
        context=ctx,
    )


def test_a_new_agent_joins_by_registration(ctx):
    registry = AgentRegistry([broker_entry()])
    registry.register(BILLING)
    out = _ask(ctx, registry, "show my last invoice")
    assert out["route_to"] == "billing_clerk"
    assert out["messages"][-1].content == "billing clerk: you owe 0 EUR"
    out = _ask(ctx, registry, "compare zones now")
    assert out["route_to"] == "broker"


def test_without_the_billing_agent_billing_is_declined(ctx):
    out = _ask(ctx, AgentRegistry([broker_entry()]), "show my last invoice")
    assert out["route_to"] == "supervisor"
    assert "no billing tools are registered" in out["messages"][-1].content


def test_supervisor_sees_one_transfer_tool_per_agent_and_only_the_latest_message(ctx):
    model = ScriptedChatModel(
        [
            AIMessage(
                "",
                tool_calls=[tool_call("transfer_to_billing_clerk", {"task": "invoice"}, "call_t1")],
            ),
        ]
    )
    registry = AgentRegistry([BILLING])
    out = _ask(replace(ctx, model=model), registry, "invoice please")
    model.assert_complete()
    assert model.calls[0].tool_names == ["transfer_to_billing_clerk"]
    assert [type(m).__name__ for m in model.calls[0].messages] == ["SystemMessage", "HumanMessage"]
    assert "billing_clerk: Answers billing questions." in model.calls[0].messages[0].content
    assert out["route_to"] == "billing_clerk"


def test_duplicate_or_bad_names_are_refused():
    registry = default_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.entries()[0])
    with pytest.raises(ValueError, match="invalid"):
        registry.register(replace(BILLING, name="billing-clerk"))
