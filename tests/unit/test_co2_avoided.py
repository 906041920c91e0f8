"""CO2 avoided: one baseline (cheapest eligible node at the first decision), one settled figure.

A workload is routed by the broker, run and settled; its receipt, its profitability row, the
dashboard total and the chat tool that explains it all show the same kg, measured against the
cheapest eligible node of its first routing decision at the actual hourly intensity.
"""

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from solders.keypair import Keypair
from sqlalchemy import select

from agents.offline_answers import answer_from_tool
from store.db import make_session_factory
from store.models import CarbonReceipt, ComputeNode, Organization
from tools.agent_tools.broker import broker_tools
from tools.broker.baseline import BASELINE_NOTE, NEGATIVE_NOTE, explain_avoided, first_baseline
from tools.broker.routing import route_workload
from tools.broker.scoring import DEFAULT_WEIGHTS, ScoreWeights
from tools.broker.workloads import JobSpec, submit_workload
from tools.clock import FixedClock
from tools.grid import GridReading
from tools.integrations.solana.chain import LocalChain
from tools.integrations.solana.rail import SolanaRail
from tools.integrations.stripe import DemoBilling
from tools.money.profitability import ProfitLine, profitability_report
from tools.money.receipts import co2_avoided
from tools.money.settlement import MoneyServices, complete_workload, settle_workload
from ui.cli_money_view import avoided_note
from ui.console_actions import profit_table
from ui.dashboard import carbon_report, dashboard

T0 = datetime(2023, 6, 1, 12, tzinfo=UTC)
H = timedelta(hours=1)


@dataclass
class StepGrid:
    """Constant intensity per zone, except `later` (zone -> g/kWh) from `switch_at` on."""

    base: dict[str, float]
    later: dict[str, float] = field(default_factory=dict)
    switch_at: datetime = T0 + H

    name = "sim"

    def reading(self, zone: str, at: datetime) -> GridReading:
        ts = at.replace(minute=0, second=0, microsecond=0)
        ci = self.base.get(zone, 200.0)  # zones without a node: any reading will do
        if ts >= self.switch_at:
            ci = self.later.get(zone, ci)
        return GridReading(
            zone=zone, ts=ts, source="sim", carbon_intensity=ci, price_eur_per_mwh=50.0
        )

    def series(self, zone: str, start: datetime, hours: int) -> list[GridReading]:
        return [self.reading(zone, start + i * H) for i in range(hours)]

    def ci(self, zone: str, hour: datetime) -> float:
        return self.reading(zone, hour).carbon_intensity or 0.0


@dataclass(frozen=True)
class Ctx:
    sessions: object
    grid: StepGrid
    clock: FixedClock
    weights: ScoreWeights = DEFAULT_WEIGHTS
    org_id: str = "acme"


def _fleet(session) -> None:
    session.add_all(
        [
            Organization(id="acme", name="Acme", kind="enterprise", created_at=T0),
            Organization(id="beta", name="Beta", kind="enterprise", created_at=T0),
            Organization(id="dc", name="DC", kind="datacenter", created_at=T0),
        ]
    )
    session.flush()
    for node_id, zone, price in (("cheap", "PL", 100), ("clean", "FR", 300), ("mid", "DE", 200)):
        session.add(
            ComputeNode(
                id=node_id,
                name=node_id,
                owner_id="dc",
                kind="datacenter",
                zone=zone,
                gpu_model="H100",
                gpu_count=8,
                reserved_gpus=0,
                power_kw_per_gpu=0.7,
                price_per_gpu_hour_minor=price,
                currency="EUR",
                status="online",
                created_at=T0,
            )
        )
    session.commit()


def _route(session, grid, org: str, gpus: int, hours: float) -> str:
    spec = JobSpec(gpu_count=gpus, duration_hours=hours)
    wl = submit_workload(session=session, org_id=org, name="job", spec=spec, now=T0)
    decision = route_workload(session=session, grid=grid, workload_id=wl.id, now=T0)
    session.commit()
    assert decision.outcome == "routed"
    assert decision.baseline_node == "cheap"  # the route answer names its baseline
    forecast = co2_avoided(session=session, workload_id=wl.id)
    assert decision.co2_avoided_kg == pytest.approx(forecast.kg, abs=5e-4)
    assert decision.co2_avoided_note == forecast.explanation
    return wl.id


def _explain(sessions, grid, workload_id: str) -> dict:
    builder = StateGraph(MessagesState, context_schema=Ctx)
    builder.add_node("tools", ToolNode(broker_tools()))
    builder.add_edge(START, "tools")
    call = {"id": "c1", "name": "explain_decision", "args": {"workload_id": workload_id}}
    out = builder.compile().invoke(
        {"messages": [AIMessage("", tool_calls=[call])]},
        context=Ctx(sessions=sessions, grid=grid, clock=FixedClock(T0 + 10 * H)),
    )
    return out["messages"][-1]


def _settle(session, grid, workload_id: str) -> None:
    payer = Keypair()
    services = MoneyServices(
        biller=DemoBilling(), rail=SolanaRail(LocalChain(payer=payer), payer), grid=grid
    )
    done = T0 + 6 * H
    complete_workload(session=session, workload_id=workload_id, now=done)
    asyncio.run(
        settle_workload(session=session, services=services, workload_id=workload_id, now=done)
    )


def test_one_figure_from_receipt_to_profitability_dashboard_and_chat(engine):
    # At the decision PL is at 700 g/kWh; from the second hour on it is 400 (actuals differ).
    grid = StepGrid(base={"PL": 700.0, "FR": 50.0, "DE": 300.0}, later={"PL": 400.0})
    sessions = make_session_factory(engine)
    with sessions() as s:
        _fleet(s)
        wid = _route(s, grid, "acme", gpus=2, hours=3.0)
        base = first_baseline(session=s, workload_id=wid)
        assert base is not None and (base.node_id, base.zone) == ("cheap", "PL")
        before = co2_avoided(session=s, workload_id=wid)
    # Before it runs: a forecast of the same quantity, with the decision-time readings.
    energy = 2 * 0.7 * 3.0
    assert before.forecast and before.baseline_node_id == "cheap"
    assert before.kg == pytest.approx(energy * (700 - 50) / 1000)
    assert "forecast CO2 avoided vs the cheapest eligible node cheap" in before.explanation
    msg = _explain(sessions, grid, wid)
    assert json.loads(msg.content)["co2_avoided"]["forecast"] is True

    with sessions() as s:
        _settle(s, grid, wid)
        receipt = s.scalars(select(CarbonReceipt)).one()
        by_workload = profitability_report(session=s, group_by="workload", lamports_per_minor=1)
        board = dashboard(session=s, grid=grid, now=T0 + 10 * H)
        report = carbon_report(session=s, now=T0 + 10 * H)

    # Settled: the same energy on PL at its actual hours (700, 400, 400) minus FR's (50 each).
    per_hour = 2 * 0.7
    expected = sum(per_hour * (grid.ci("PL", T0 + i * H) - 50) / 1000 for i in range(3))
    assert expected == pytest.approx(per_hour * (700 + 400 + 400 - 150) / 1000)
    assert receipt.co2_avoided_kg == pytest.approx(expected, abs=1e-6)
    assert receipt.payload["baseline"]["node_id"] == "cheap"
    assert receipt.payload["baseline"]["zone"] == "PL"
    assert receipt.payload["baseline_co2_kg"] == pytest.approx(per_hour * 1.5, abs=1e-6)

    (line,) = by_workload
    assert line.co2_avoided_kg == receipt.co2_avoided_kg
    assert board.co2_avoided_kg == pytest.approx(receipt.co2_avoided_kg, abs=1e-4)
    assert report.co2_avoided_kg == pytest.approx(receipt.co2_avoided_kg, abs=1e-4)
    answer = json.loads(_explain(sessions, grid, wid).content)["co2_avoided"]
    assert answer["forecast"] is False and answer["baseline_node_id"] == "cheap"
    assert answer["kg"] == round(receipt.co2_avoided_kg, 3)
    spoken = answer_from_tool(
        "explain_decision", _explain(sessions, grid, wid).content, is_error=False
    )
    assert f"{receipt.co2_avoided_kg:.3f} kg" in spoken and "carbon receipt" in spoken


def test_baseline_is_the_first_decision_not_an_average_of_zones(engine):
    # The first decision sees PL cheapest; a later reroute does not move the baseline.
    grid = StepGrid(base={"PL": 700.0, "FR": 50.0, "DE": 300.0})
    sessions = make_session_factory(engine)
    with sessions() as s:
        _fleet(s)
        wid = _route(s, grid, "acme", gpus=1, hours=2.0)
        s.get(ComputeNode, "cheap").price_per_gpu_hour_minor = 999  # later prices do not count
        s.commit()
        _settle(s, grid, wid)
        receipt = s.scalars(select(CarbonReceipt)).one()
    per_hour = 1 * 0.7
    assert receipt.co2_avoided_kg == pytest.approx(2 * per_hour * (700 - 50) / 1000, abs=1e-6)
    mean_of_zones = (700 + 50 + 300) / 3
    assert receipt.co2_avoided_kg != pytest.approx(2 * per_hour * (mean_of_zones - 50) / 1000)


def test_totals_are_the_sums_of_rows_whatever_the_grouping(engine):
    grid = StepGrid(base={"PL": 700.0, "FR": 50.0, "DE": 300.0}, later={"FR": 1400.0})
    sessions = make_session_factory(engine)
    with sessions() as s:
        _fleet(s)
        ids = [
            _route(s, grid, "acme", gpus=2, hours=3.0),
            _route(s, grid, "beta", gpus=1, hours=1.5),
            _route(s, grid, "acme", gpus=3, hours=2.25),
        ]
        for wid in ids:
            _settle(s, grid, wid)
        receipts = list(s.scalars(select(CarbonReceipt)))
        totals = {
            g: sum(
                x.co2_avoided_kg
                for x in profitability_report(session=s, group_by=g, lamports_per_minor=1)
            )
            for g in ("workload", "org", "node")
        }
        board = dashboard(session=s, grid=grid, now=T0 + 10 * H)
    receipt_sum = sum(r.co2_avoided_kg or 0.0 for r in receipts)
    # FR turns dirtier than PL after the first hour: some runs avoided a negative amount.
    assert any((r.co2_avoided_kg or 0.0) < 0 for r in receipts)
    for total in totals.values():
        assert total == pytest.approx(receipt_sum, abs=1e-9)
    assert board.co2_avoided_kg == pytest.approx(receipt_sum, abs=1e-4)


def test_negative_avoided_co2_is_explained_in_words():
    text = explain_avoided(-1.25, "cheap", forecast=False)
    assert "-1.250 kg" in text and "emitted 1.250 kg more than there" in text
    assert "weighs price and load" in text
    assert explain_avoided(0.5, "cheap", forecast=True) == (
        "forecast CO2 avoided vs the cheapest eligible node cheap: 0.500 kg"
    )
    assert "more than the cheapest eligible node" in NEGATIVE_NOTE


def _line(key: str, kg: float) -> ProfitLine:
    return ProfitLine(
        key=key,
        group_by="workload",
        currency="EUR",
        workloads=1,
        gross_minor=1000,
        fee_minor=150,
        provider_share_minor=850,
        chain_cost_minor=1,
        chain_fee_lamports=10_000,
        margin_minor=149,
        co2_avoided_kg=kg,
        carbon_roi_kg_per_eur=round(kg / 1.5, 6),
    )


def test_profitability_table_names_the_baseline_and_explains_negative_rows(capsys):
    plain = profit_table([_line("wl_a", 1.2344)])
    assert BASELINE_NOTE in plain and NEGATIVE_NOTE not in plain
    assert "| 1.234 |" in plain
    mixed = profit_table([_line("wl_a", 1.5), _line("wl_b", -0.25)])
    assert mixed.endswith(BASELINE_NOTE + NEGATIVE_NOTE)
    assert "| **total** |" in mixed and "| 1.250 |" in mixed
    avoided_note([0.5, -0.1])
    printed = capsys.readouterr().out
    assert "cheapest eligible node" in printed and "emitted more" in printed
