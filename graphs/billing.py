"""Build the billing graph: settle a completed workload, ask a person for big payouts, report.

settle_money -> (await_approval -> apply_decision)? -> report_profit. `await_approval` only
interrupts with the payout to decide and records the answer; it has no side effects, so a
resume or replay never moves money by itself. `apply_decision` runs the decision through the
payout policy code. With a checkpointer the run is durable: one thread per workload.

Checkpoints are written before the next node runs (`durability="sync"`): the nodes use the
store's database too, and on SQLite a checkpoint write still open in the background would hold
the file's write lock while a node waits for it.

`settle_workloads` is the one settle path: the CLI, the console and the billing worker call it,
and its approval pauses live in the store's database (`open_async_checkpointer`), so every
replica on the same database sees the same pending approval.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer, Command, interrupt
from sqlalchemy import Engine

from graphs.checkpoint import open_async_checkpointer
from graphs.context import BillingContext
from graphs.state import BillingInput, BillingState
from tools.errors import InvalidInputError, NotFoundError
from tools.money.payouts import decide_payout, execute_payout, list_payouts
from tools.money.profitability import profitability_report
from tools.money.settlement import claim_unbilled, settle_workload
from tools.money.usage import book_usage

logger = logging.getLogger(__name__)

BILLING_RECURSION_LIMIT = 8
"""Four nodes, no loops: eight super-steps is ample and still stops a bug."""


async def settle_money(state: BillingState, runtime: Runtime[BillingContext]) -> dict[str, Any]:
    """Book, meter, pay (unless approval is needed) and mint the receipt of the workload."""
    ctx = runtime.context
    with ctx.sessions() as session:
        result = await settle_workload(
            session=session,
            services=ctx.money,
            workload_id=state["workload_id"],
            now=ctx.clock.now(),
        )
    payout = result.payout.model_dump(mode="json") if result.payout else None
    return {"settlement": result.model_dump(mode="json"), "payout": payout}


async def await_approval(state: BillingState) -> dict[str, Any]:
    """Pause until a person approves or rejects the payout (no side effects here)."""
    payout = state["payout"] or {}
    answer = interrupt(
        {
            "payout_id": payout.get("id"),
            "org_id": payout.get("org_id"),
            "wallet_address": payout.get("wallet_address"),
            "amount_minor": payout.get("amount_minor"),
            "currency": payout.get("currency"),
            "question": "approve this payout?",
        }
    )
    if not isinstance(answer, dict) or not isinstance(answer.get("approve"), bool):
        raise InvalidInputError(f"approval answer {answer!r}: send {{'approve': bool, 'by': str}}")
    return {"decision": {"approve": answer["approve"], "by": str(answer.get("by", "operator"))}}


async def apply_decision(state: BillingState, runtime: Runtime[BillingContext]) -> dict[str, Any]:
    """Record the decision and, when approved, send the payout through the policy code."""
    ctx = runtime.context
    decision = state["decision"] or {}
    payout_id = (state["payout"] or {})["id"]
    with ctx.sessions() as session:
        view = decide_payout(
            session=session,
            intent_id=payout_id,
            approve=bool(decision.get("approve")),
            decided_by=str(decision.get("by", "operator")),
            now=ctx.clock.now(),
        )
        session.commit()
        if view.status == "approved":
            view = await execute_payout(
                session=session,
                rail=ctx.money.rail,
                intent_id=payout_id,
                now=ctx.clock.now(),
            )
    return {"payout": view.model_dump(mode="json")}


async def report_profit(state: BillingState, runtime: Runtime[BillingContext]) -> dict[str, Any]:
    """Attach the workload's profitability line (fee, chain costs, carbon ROI)."""
    ctx = runtime.context
    with ctx.sessions() as session:
        lines = profitability_report(
            session=session,
            group_by="workload",
            lamports_per_minor=ctx.money.policy.lamports_per_minor,
        )
    line = next((x for x in lines if x.key == state["workload_id"]), None)
    return {"profitability": line.model_dump(mode="json") if line else {}}


def route_after_settle(state: BillingState) -> Literal["await_approval", "report_profit"]:
    """Ask a person only when the payout waits for approval."""
    payout = state.get("payout")
    if payout and payout.get("status") == "awaiting_approval":
        return "await_approval"
    return "report_profit"


def build_billing_graph(
    *, checkpointer: Checkpointer = None
) -> CompiledStateGraph[BillingState, BillingContext, BillingInput, BillingState]:
    """Compile the billing graph (pass a checkpointer for durable approval pauses)."""
    builder = StateGraph(BillingState, context_schema=BillingContext, input_schema=BillingInput)
    builder.add_node("settle_money", settle_money)
    builder.add_node("await_approval", await_approval)
    builder.add_node("apply_decision", apply_decision)
    builder.add_node("report_profit", report_profit)
    builder.add_edge(START, "settle_money")
    builder.add_conditional_edges("settle_money", route_after_settle)
    builder.add_edge("await_approval", "apply_decision")
    builder.add_edge("apply_decision", "report_profit")
    builder.add_edge("report_profit", END)
    return builder.compile(checkpointer=checkpointer, name="billing")


def billing_config(workload_id: str) -> RunnableConfig:
    """Return the run config of a workload's billing thread (`billing:<workload id>`)."""
    return {
        "configurable": {"thread_id": f"billing:{workload_id}"},
        "recursion_limit": BILLING_RECURSION_LIMIT,
    }


async def settle_workloads(
    workload_ids: Sequence[str], *, context: BillingContext, engine: Engine
) -> list[dict[str, Any]]:
    """Settle completed workloads through the billing graph; report the ones paused for approval.

    Args:
        workload_ids: Completed workloads to bill, pay and mint receipts for (idempotent).
        context: Sessions, money services and clock.
        engine: The store's engine; checkpoints live in the same database.
    """
    out: list[dict[str, Any]] = []
    async with open_async_checkpointer(engine) as saver:
        graph = build_billing_graph(checkpointer=saver)
        for wid in workload_ids:
            config = billing_config(wid)
            snapshot = await graph.aget_state(config)
            if snapshot.next:
                out.append({"workload_id": wid, "paused": "awaiting_approval", **snapshot.values})
                continue
            result = dict(
                await graph.ainvoke(
                    {"workload_id": wid}, config, context=context, durability="sync"
                )
            )
            result.pop("__interrupt__", None)
            out.append(result)
    return out


async def decide_payout_approval(
    payout_id: str, *, approve: bool, by: str, context: BillingContext, engine: Engine
) -> dict[str, Any]:
    """Approve or reject a payout: resume its paused billing thread, or decide it directly.

    Raises:
        NotFoundError: No payout has that id.
    """
    with context.sessions() as session:
        view = next((p for p in list_payouts(session=session) if p.id == payout_id), None)
    if view is None:
        raise NotFoundError(f"payout {payout_id!r} does not exist; list the payouts to find it")
    async with open_async_checkpointer(engine) as saver:
        graph = build_billing_graph(checkpointer=saver)
        config = billing_config(view.workload_id)
        snapshot = await graph.aget_state(config)
        if "await_approval" in snapshot.next:
            result = await graph.ainvoke(
                Command(resume={"approve": approve, "by": by}),
                config,
                context=context,
                durability="sync",
            )
            return dict(result["payout"])
    # Not paused in a billing thread (e.g. planned by an earlier worker): same policy code.
    with context.sessions() as session:
        decided = decide_payout(
            session=session,
            intent_id=payout_id,
            approve=approve,
            decided_by=by,
            now=context.clock.now(),
        )
        session.commit()
        if decided.status == "approved":
            decided = await execute_payout(
                session=session,
                rail=context.money.rail,
                intent_id=payout_id,
                now=context.clock.now(),
            )
    return decided.model_dump(mode="json")


async def run_billing_worker(*, context: BillingContext, engine: Engine) -> list[str]:
    """Claim unbilled completed workloads one at a time and settle each; return those done.

    Several workers may run at once: on PostgreSQL each claim skips rows another worker holds,
    and every step is idempotent on any database.
    """
    done: list[str] = []
    while True:
        with context.sessions() as session:
            workload_id = claim_unbilled(session=session)
            if workload_id is None:
                return done
            book_usage(session=session, workload_id=workload_id, now=context.clock.now())
            session.commit()
        await settle_workloads([workload_id], context=context, engine=engine)
        done.append(workload_id)
