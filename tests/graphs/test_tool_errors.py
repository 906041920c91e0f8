"""Tool errors: what the model can fix goes back to it; anything else fails the run."""

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from sqlalchemy.exc import OperationalError

from graphs.broker import make_tool_node
from tools.agent_tools.registry import ToolKind
from tools.errors import NotFoundError


@tool
def lookup(name: str) -> str:
    """Look a name up.

    Args:
        name: What to look up.
    """
    if name == "missing":
        raise NotFoundError(f"node {name!r} does not exist")
    if name == "broken":
        raise OperationalError("SELECT 1", {}, Exception("no such table: compute_nodes"))
    return f"found {name}"


lookup.metadata = {"kind": ToolKind.READ}


def _run(state: dict) -> dict:
    graph = StateGraph(MessagesState)
    graph.add_node("tools", make_tool_node([lookup]))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    return graph.compile().invoke(state)


def _call(name: str) -> dict:
    ai = AIMessage("", tool_calls=[{"name": "lookup", "args": {"name": name}, "id": "call_1"}])
    return {"messages": [HumanMessage("look it up"), ai]}


def test_domain_errors_go_back_to_the_model():
    msg = _run(_call("missing"))["messages"][-1]
    assert isinstance(msg, ToolMessage) and msg.status == "error"
    assert "node 'missing' does not exist" in msg.content


def test_bad_arguments_go_back_to_the_model():
    bad = AIMessage("", tool_calls=[{"name": "lookup", "args": {"nom": 1}, "id": "call_2"}])
    msg = _run({"messages": [HumanMessage("x"), bad]})["messages"][-1]
    assert msg.status == "error"


def test_infrastructure_errors_fail_the_run():
    with pytest.raises(OperationalError, match="no such table"):
        _run(_call("broken"))


def test_successful_calls_return_their_result():
    msg = _run(_call("fr-par-h100"))["messages"][-1]
    assert msg.content == "found fr-par-h100" and msg.status == "success"
