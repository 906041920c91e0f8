"""Build the billing graph: settle a completed workload, ask a person for big payouts, report.

settle_money -> (await_approval -> apply_decision)? -> report_profit. `await_approval` only
interrupts with the payout to decide and records the answer; it has no side effects, so a
resume or replay never moves money by itself. `apply_decision` runs the decision through the
payout policy code. With a checkpointer the run is durable: one thread per workload.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import stripe
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer, interrupt
from solders.keypair import Keypair

from graphs.context import BillingContext
from graphs.settings import Settings
from graphs.state import BillingInput, BillingState
from tools.billing_cycle import MoneyServices, settle_workload
from tools.errors import InvalidInputError
from tools.grid import GridSource
from tools.payouts import PayoutPolicy, decide_payout, execute_payout
from tools.profitability import profitability_report
from tools.solana_chain import (
    Chain,
    LocalChain,
    RpcChain,
    keypair_from_secret,
    load_or_create_keypair,
)
from tools.stripe_billing import Biller, DemoBilling, StripeBilling

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
                chain=ctx.money.chain,
                payer=ctx.money.payer,
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


def make_biller(settings: Settings) -> Biller:
    """Return the Stripe biller, or the labelled demo biller without a key."""
    if settings.stripe_api_key is None:
        return DemoBilling()
    client = stripe.StripeClient(settings.stripe_api_key.get_secret_value(), max_network_retries=0)
    return StripeBilling(client)


def make_chain(settings: Settings) -> tuple[Chain, Keypair]:
    """Return the chain and payer: a journalled local LiteSVM chain, or an RPC node."""
    if settings.solana_rpc_url is None:
        state = Path(settings.data_dir) / "local_chain"
        payer = load_or_create_keypair(state / "payer.json")
        return LocalChain(payer=payer, journal=state / "journal.jsonl"), payer
    if settings.solana_payer_secret is None:
        raise InvalidInputError(
            "TGTG_SOLANA_RPC_URL is set but TGTG_SOLANA_PAYER_SECRET is not: set the payer key"
        )
    from solana.rpc.async_api import AsyncClient

    payer = keypair_from_secret(settings.solana_payer_secret.get_secret_value())
    return RpcChain(AsyncClient(settings.solana_rpc_url), label="solana rpc"), payer


def make_money_services(
    settings: Settings, *, grid: GridSource, baseline_zones: tuple[str, ...]
) -> MoneyServices:
    """Build the money services from settings (a composition root helper)."""
    chain, payer = make_chain(settings)
    return MoneyServices(
        biller=make_biller(settings),
        chain=chain,
        payer=payer,
        grid=grid,
        policy=PayoutPolicy(
            lamports_per_minor=settings.solana_lamports_per_eur_cent,
            approval_threshold_minor=settings.payout_approval_threshold_minor,
            max_payout_minor=settings.payout_max_minor,
            daily_cap_minor=settings.payout_daily_cap_minor,
        ),
        baseline_zones=baseline_zones,
    )


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
