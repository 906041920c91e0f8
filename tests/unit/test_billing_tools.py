import asyncio
import json
from dataclasses import dataclass

from langchain_core.messages import AIMessage
from langchain_core.tools import ToolException
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from money_helpers import NOW, add_completed, add_fleet
from solders.keypair import Keypair
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_session_factory
from tools.agent_tools.billing import billing_tools
from tools.agent_tools.registry import ToolKind, tool_kind
from tools.errors import DomainError
from tools.grid.simulated import SimulatedGrid
from tools.integrations.solana.chain import LocalChain
from tools.integrations.solana.rail import SolanaRail
from tools.integrations.stripe import DemoBilling
from tools.money.settlement import MoneyServices, settle_workload


@dataclass(frozen=True)
class Ctx:
    sessions: sessionmaker[Session]


def _call(sessions, name, args):
    builder = StateGraph(MessagesState, context_schema=Ctx)
    builder.add_node(
        "tools", ToolNode(billing_tools(), handle_tool_errors=(DomainError, ToolException))
    )
    builder.add_edge(START, "tools")
    graph = builder.compile()
    msg = AIMessage("", tool_calls=[{"id": "call_1", "name": name, "args": args}])
    out = graph.invoke({"messages": [msg]}, context=Ctx(sessions))
    return out["messages"][-1]


def _settled(engine):
    sessions = make_session_factory(engine)
    payer = Keypair()
    svc = MoneyServices(
        biller=DemoBilling(),
        rail=SolanaRail(LocalChain(payer=payer), payer),
        grid=SimulatedGrid(seed=1),
    )
    with sessions() as s:
        add_fleet(s)
        add_completed(s, "w1", node="g1", hours=4)
        add_completed(s, "w2", node="d1", hours=1, gpus=2)
        s.commit()
        for wid in ("w1", "w2"):
            asyncio.run(settle_workload(session=s, services=svc, workload_id=wid, now=NOW))
    return sessions


def test_every_billing_tool_is_read_only():
    assert {tool_kind(t) for t in billing_tools()} == {ToolKind.READ}


def test_clerk_answers_what_we_owe_and_what_was_billed(sqlite_engine):
    sessions = _settled(sqlite_engine)
    owed = json.loads(_call(sessions, "amount_owed", {"org_id": "dc"}).content)
    assert owed == {
        "org_id": "dc",
        "payable_minor": 425,
        "reserved_minor": 0,
        "unreserved_minor": 425,
    }
    paid = json.loads(_call(sessions, "amount_owed", {"org_id": "gamer"}).content)
    assert paid["payable_minor"] == 0
    stmt = json.loads(
        _call(sessions, "billing_statement", {"org_id": "acme", "month": "2023-06"}).content
    )
    assert stmt["total_minor"] == 180 + 500 and len(stmt["lines"]) == 2
    assert json.loads(_call(sessions, "ledger_balance", {}).content)["trial_balance"] == 0
    rows = json.loads(_call(sessions, "profitability", {"group_by": "node"}).content)
    assert {r["key"] for r in rows} == {"g1", "d1"}


def test_clerk_gets_correctable_errors(sqlite_engine):
    sessions = _settled(sqlite_engine)
    bad = _call(sessions, "billing_statement", {"org_id": "acme", "month": "November"})
    assert bad.status == "error" and "'November'" in bad.content
    unknown = _call(sessions, "amount_owed", {"org_id": "nobody"})
    assert unknown.status == "error" and "'nobody'" in unknown.content
