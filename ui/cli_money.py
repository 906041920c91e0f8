"""The money commands of `tgtg`: complete workloads, ledger, payouts, receipts, profitability."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from store import ledger, repo
from store.ledger_models import PAYOUT_STATUSES, LedgerAccount
from tools.errors import InvalidInputError, NotFoundError
from tools.money.amounts import format_money
from tools.money.payouts import list_payouts, owed_to
from tools.money.profitability import is_group_by, profitability_report, routing_signals
from tools.money.receipts import list_receipts, verify_receipt
from tools.money.settlement import complete_workload, unsettled_workloads
from ui.cli_common import (
    AT_OPTION,
    JSON_OPTION,
    domain_errors,
    emit_json,
    fail,
    one_of,
    services,
    table,
)
from ui.cli_money_view import avoided_note, balance_line, kg
from ui.services import Services

if TYPE_CHECKING:
    from graphs.context import BillingContext

# LangGraph, the billing graph and the chain/Stripe adapters load inside the commands that use
# them, so that the other `tgtg` commands start quickly.

ledger_app = typer.Typer(help="The double-entry ledger: balances and what is owed.")
payouts_app = typer.Typer(help="Gamer payouts on Solana: list them, approve or reject one.")
receipts_app = typer.Typer(help="Carbon receipts anchored on chain: list or verify.")


def _context(svc: Services) -> BillingContext:
    from graphs.context import BillingContext
    from graphs.wiring import make_money_services

    money = make_money_services(svc.settings, grid=svc.grid())
    return BillingContext(sessions=svc.sessions, money=money, clock=svc.clock)


def _settle(svc: Services, ids: list[str]) -> tuple[list[dict[str, Any]], str, str]:
    from graphs.billing import settle_workloads

    context = _context(svc)
    results = asyncio.run(settle_workloads(ids, context=context, engine=svc.engine))
    return results, context.money.biller.mode, context.money.rail.label


@domain_errors
def complete(
    ctx: typer.Context,
    workload_id: Annotated[str | None, typer.Argument(help="Workload id (or --all).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every routed or running workload.")] = False,
    at: str | None = AT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Complete workloads, then bill them, pay gamer nodes and mint carbon receipts."""
    if workload_id is not None and all_:
        raise fail(f"workload {workload_id!r} and --all: give a workload id or --all, not both")
    if workload_id is None and not all_:
        raise fail("no workload given: give a workload id or --all (not both)")
    svc = services(ctx, at)
    now = svc.clock.now()
    with svc.sessions() as session:
        if workload_id is not None:
            w = repo.get_workload(session=session, workload_id=workload_id)
            if w is None:
                raise NotFoundError(
                    f"workload {workload_id!r} does not exist; see `tgtg workloads`"
                )
            ids = [workload_id]
        else:
            active = repo.list_workloads(session=session, statuses=["routed", "running"])
            ids = [w.id for w in active]
        completed = []
        for wid in ids:
            w = repo.get_workload(session=session, workload_id=wid)
            if w is not None and w.status in ("routed", "running"):
                complete_workload(session=session, workload_id=wid, now=now)
                completed.append(wid)
        to_settle = ids if workload_id is not None else unsettled_workloads(session=session)
    results, stripe_mode, chain = _settle(svc, to_settle)
    with svc.sessions() as session:
        tb = ledger.trial_balance(session=session)["trial_balance"]
    report = {
        "completed": completed,
        "settled": results,
        "stripe": stripe_mode,
        "chain": chain,
        "awaiting_approval": [
            r["payout"]["id"]
            for r in results
            if r.get("payout") and r["payout"]["status"] == "awaiting_approval"
        ],
        "trial_balance": tb,
    }
    if as_json:
        emit_json(report)
        return
    rows = []
    for r in results:
        s, payout = r.get("settlement") or {}, r.get("payout") or {}
        currency = s.get("currency", "EUR")
        paid = (
            f"{format_money(payout['amount_minor'], payout['currency'])} {payout['status']}"
            if payout
            else "-"
        )
        rows.append(
            [
                r["workload_id"],
                "" if "gross_minor" not in s else format_money(s["gross_minor"], currency),
                "" if "fee_minor" not in s else format_money(s["fee_minor"], currency),
                paid,
                s.get("receipt", {}).get("id"),
                kg(s.get("co2_kg")),
                kg(s.get("co2_avoided_kg")),
            ]
        )
    table(
        f"settled (stripe: {stripe_mode}, chain: {chain})",
        ["workload", "gross", "fee", "gamer payout", "receipt", "kg CO2", "kg avoided"],
        rows,
    )
    avoided_note([(r.get("settlement") or {}).get("co2_avoided_kg") for r in results])
    print(balance_line(tb))


@domain_errors
def billing_worker(
    ctx: typer.Context, at: str | None = AT_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Settle every completed, unbilled workload (safe to run in several processes at once)."""
    from graphs.billing import run_billing_worker

    svc = services(ctx, at)
    done = asyncio.run(run_billing_worker(context=_context(svc), engine=svc.engine))
    emit_json({"settled": done}) if as_json else print(f"settled {len(done)} workload(s)")


@ledger_app.command("balance")
@domain_errors
def ledger_balance(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show the trial balance (debits minus credits: zero when sound) and account balances."""
    svc = services(ctx)
    with svc.sessions() as session:
        tb = ledger.trial_balance(session=session)
    if as_json:
        emit_json(tb)
        return
    table(
        "accounts",
        ["account", "debits", "credits", "balance"],
        [
            [
                a["account"],
                format_money(a["debits"], a["currency"]),
                format_money(a["credits"], a["currency"]),
                format_money(a["balance"], a["currency"]),
            ]
            for a in tb["accounts"]
        ],
    )
    print(balance_line(tb["trial_balance"], tb["transactions"]))


@ledger_app.command("owed")
@domain_errors
def ledger_owed(
    ctx: typer.Context,
    org_id: Annotated[str, typer.Argument(help="Provider organisation id.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Show what the platform owes a provider (payable, reserved by payouts, unreserved)."""
    svc = services(ctx)
    with svc.sessions() as session:
        if repo.get_organization(session=session, org_id=org_id) is None:
            raise NotFoundError(
                f"organization {org_id!r} does not exist; list them with `tgtg orgs`"
            )
        owed = owed_to(session=session, org_id=org_id)
        account = session.get(LedgerAccount, ledger.account_id("provider_payable", org_id))
    if as_json:
        emit_json({"org_id": org_id, **owed})
        return
    currency = account.currency if account is not None else "EUR"
    print(
        f"{org_id} is owed {format_money(owed['payable_minor'], currency)}: "
        f"{format_money(owed['reserved_minor'], currency)} reserved by open payouts, "
        f"{format_money(owed['unreserved_minor'], currency)} not yet reserved"
    )


@payouts_app.callback(invoke_without_command=True)
@domain_errors
def payouts(
    ctx: typer.Context,
    approve: Annotated[str | None, typer.Option("--approve", help="Approve this payout.")] = None,
    reject: Annotated[str | None, typer.Option("--reject", help="Reject this payout.")] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Filter by status.", callback=one_of(*PAYOUT_STATUSES)),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """List payouts, or approve / reject one that awaits approval."""
    if approve and reject:
        raise fail(f"--approve {approve!r} and --reject {reject!r}: give one of them, not both")
    svc = services(ctx)
    if approve or reject:
        from graphs.billing import decide_payout_approval

        result = asyncio.run(
            decide_payout_approval(
                approve or reject or "",
                approve=approve is not None,
                by="cli",
                context=_context(svc),
                engine=svc.engine,
            )
        )
        emit_json(result) if as_json else print(f"payout {result['id']} is {result['status']}")
        return
    with svc.sessions() as session:
        rows = list_payouts(session=session, status=status)
    if as_json:
        emit_json(rows)
        return
    table(
        "payouts",
        ["id", "workload", "org", "amount", "lamports", "status", "reason"],
        [
            [
                p.id,
                p.workload_id,
                p.org_id,
                format_money(p.amount_minor, p.currency),
                f"{p.lamports:,}",
                p.status,
                p.reason,
            ]
            for p in rows
        ],
    )


@receipts_app.callback(invoke_without_command=True)
@domain_errors
def receipts(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List carbon receipts."""
    if ctx.invoked_subcommand is not None:
        return
    svc = services(ctx)
    with svc.sessions() as session:
        rows = list_receipts(session=session)
    if as_json:
        emit_json(rows)
        return
    table(
        "receipts",
        ["id", "workload", "kWh", "kg CO2", "kg avoided", "status", "chain"],
        [
            [
                r.id,
                r.workload_id,
                round(r.energy_kwh, 3),
                round(r.co2_kg, 3),
                None if r.co2_avoided_kg is None else round(r.co2_avoided_kg, 3),
                r.status,
                r.chain,
            ]
            for r in rows
        ],
    )
    avoided_note([r.co2_avoided_kg for r in rows])


@receipts_app.command("verify")
@domain_errors
def receipts_verify(
    ctx: typer.Context,
    receipt_id: Annotated[str, typer.Argument(help="Receipt id (cr_...).")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Verify a receipt: document hash, on-chain memo, signature and finality (exit 1 if not)."""
    from graphs.wiring import make_rail

    svc = services(ctx)
    rail = make_rail(svc.settings)
    with svc.sessions() as session:
        result = asyncio.run(verify_receipt(session=session, rail=rail, receipt_id=receipt_id))
    if as_json:
        emit_json(result)
    else:
        verdict = "VALID" if result.valid else "INVALID"
        print(f"{result.receipt_id}: {verdict} on {result.chain} ({result.signature})")
        for name, ok in result.checks.items():
            print(f"  {'ok ' if ok else 'FAIL'} {name}")
    if not result.valid:
        sys.exit(1)


@domain_errors
def profitability(
    ctx: typer.Context,
    by: Annotated[str, typer.Option("--by", help="workload | org | node.")] = "workload",
    signals: Annotated[
        bool,
        typer.Option(
            "--signals",
            help="Signals per routing decision; sent to Paid.ai when TGTG_PAID_API_KEY is set.",
        ),
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show profitability and carbon ROI per workload, organisation or node."""
    if not is_group_by(by):
        raise InvalidInputError(f"--by {by!r}: use workload, org or node")
    svc = services(ctx)
    if signals:
        with svc.sessions() as session:
            found = routing_signals(
                session=session, lamports_per_minor=svc.settings.solana_lamports_per_eur_cent
            )
        key = svc.settings.paid_api_key
        if key is not None:
            from tools.integrations.paid import send_signals

            report = send_signals(
                found, api_key=key.get_secret_value(), base_url=svc.settings.paid_base_url
            )
            found = [s.model_copy(update={"mode": "paid.ai"}) for s in found]
            if as_json:
                emit_json({"signals": found, "sent": report})
            else:
                print(f"Paid.ai: sent {report.sent}, failed {report.failed} {report.errors}")
            if report.failed:
                raise fail(f"{report.failed} signal(s) not accepted by Paid.ai", code=1)
            return
        if as_json:
            emit_json(found)
            return
        for signal in found:
            print(signal.model_dump_json())
        return
    with svc.sessions() as session:
        rows = profitability_report(
            session=session,
            group_by=by,
            lamports_per_minor=svc.settings.solana_lamports_per_eur_cent,
        )
    if as_json:
        emit_json(rows)
        return
    table(
        f"profitability by {by} (demo: computed locally)",
        [by, "workloads", "gross", "fee", "chain cost", "margin", "kg avoided", "kg/EUR fee"],
        [
            [
                r.key,
                r.workloads,
                format_money(r.gross_minor, r.currency),
                format_money(r.fee_minor, r.currency),
                format_money(r.chain_cost_minor, r.currency),
                format_money(r.margin_minor, r.currency),
                f"{r.co2_avoided_kg:.3f}",
                "" if r.carbon_roi_kg_per_eur is None else f"{r.carbon_roi_kg_per_eur:.3f}",
            ]
            for r in rows
        ],
    )
    avoided_note([r.co2_avoided_kg for r in rows])


def register(app: typer.Typer, workloads_app: typer.Typer) -> None:
    """Add the money commands to the `tgtg` app and its `workloads` group."""
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(payouts_app, name="payouts")
    app.add_typer(receipts_app, name="receipts")
    app.command("profitability")(profitability)
    workloads_app.command("complete")(complete)
    app.command("billing-worker")(billing_worker)
