"""Pay gamers their share in SOL under a policy enforced in code, exactly once.

Policy (checked before any chain call, whatever an agent or operator asks for): the recipient is
the owner's registered wallet and the node's wallet; the amount equals the workload's ledger
payable and never exceeds what is still unreserved (checked under a row lock); a per-payout cap
and a daily cap send the payout to a person (`needs_review`); above the approval threshold it
waits for approval (`awaiting_approval`). Life cycle: awaiting_approval -> approved -> signed ->
sent -> posted, or rejected / voided (every attempt proven absent) / needs_review.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store import ledger
from store.ledger import LedgerEntry, Leg, PayoutIntent
from store.models import ComputeNode, Organization, Workload
from tools.errors import DomainError, IllegalTransitionError, InvalidInputError, NotFoundError
from tools.money.ports import FaultHook, PaymentRail, no_fault
from tools.money.usage import usage_transaction

logger = logging.getLogger(__name__)


class PayoutPolicyError(DomainError):
    """A payout request breaks the payout policy (recipient, amount or caps)."""


class PayoutPolicy(BaseModel):
    """Limits of automatic payouts; amounts in minor units of the ledger currency."""

    lamports_per_minor: int = 50_000
    """SOL rate: lamports paid per cent (50,000 = 200 EUR per SOL)."""
    approval_threshold_minor: int = 5_000
    max_payout_minor: int = 50_000
    daily_cap_minor: int = 200_000


class PayoutView(BaseModel):
    """A payout intent as shown to people and agents."""

    id: str
    workload_id: str
    org_id: str
    wallet_address: str
    amount_minor: int
    currency: str
    lamports: int
    status: str
    approval_required: bool
    approved_by: str | None
    transaction_id: str | None
    reason: str | None

    @classmethod
    def of(cls, p: PayoutIntent) -> PayoutView:
        """Return the view of an ORM payout intent."""
        return cls.model_validate(p, from_attributes=True)


def payout_id(workload_id: str) -> str:
    """Return the deterministic payout intent id of a workload."""
    return "po_" + hashlib.sha256(f"payout:{workload_id}".encode()).hexdigest()[:20]


def workload_payable(*, session: Session, workload_id: str) -> tuple[str, int] | None:
    """Return (provider org, amount) credited to a provider payable by the workload's usage."""
    txn = usage_transaction(session=session, workload_id=workload_id)
    if txn is None:
        return None
    row = session.execute(
        select(LedgerEntry.account_id, LedgerEntry.amount_minor).where(
            LedgerEntry.transaction_id == txn.id,
            LedgerEntry.side == "credit",
            LedgerEntry.account_id.like("provider_payable:%"),
        )
    ).one_or_none()
    return None if row is None else (row[0].partition(":")[2], int(row[1]))


def check_payout(
    *,
    session: Session,
    org_id: str,
    wallet_address: str,
    amount_minor: int,
    expected_minor: int,
    policy: PayoutPolicy,
    rail: PaymentRail,
) -> None:
    """Refuse a payout that is not to the registered wallet or not the exact unreserved payable.

    Locks the provider's payable account row (FOR UPDATE on PostgreSQL) until the caller commits.

    Raises:
        PayoutPolicyError: Naming the rule that refused it.
    """
    org = session.get(Organization, org_id)
    if org is None or org.kind != "gamer" or not org.wallet_address:
        raise PayoutPolicyError(f"organisation {org_id!r} has no registered payout wallet")
    if wallet_address != org.wallet_address:
        raise PayoutPolicyError(
            f"recipient {wallet_address!r} is not {org_id!r}'s registered wallet; pay only that one"
        )
    rail.check_address(wallet_address)
    if type(amount_minor) is not int or amount_minor != expected_minor:
        raise PayoutPolicyError(
            f"amount {amount_minor!r} differs from the ledger payable {expected_minor!r}"
        )
    account = ledger.account_id("provider_payable", org_id)
    ledger.lock_account(session=session, account=account)
    available = ledger.account_balance(session=session, account=account) - ledger.open_payout_total(
        session=session, org_id=org_id
    )
    if amount_minor > available:
        raise PayoutPolicyError(
            f"amount {amount_minor!r} exceeds the unreserved payable {available!r} of {org_id!r}"
        )


def _paid_today(session: Session, org_id: str, now: datetime) -> int:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(
        session.execute(
            select(func.coalesce(func.sum(PayoutIntent.amount_minor), 0)).where(
                PayoutIntent.org_id == org_id,
                PayoutIntent.created_at >= day,
                PayoutIntent.created_at < day + timedelta(days=1),
                PayoutIntent.status.not_in(("rejected", "voided")),
            )
        ).scalar_one()
    )


def _route_by_limits(
    session: Session, org_id: str, amount: int, policy: PayoutPolicy, now: datetime
) -> tuple[str, str | None]:
    if amount > policy.max_payout_minor:
        return "needs_review", f"above the per-payout cap {policy.max_payout_minor}"
    if _paid_today(session, org_id, now) + amount > policy.daily_cap_minor:
        return "needs_review", f"above the daily cap {policy.daily_cap_minor}"
    if amount > policy.approval_threshold_minor:
        return "awaiting_approval", "above the approval threshold"
    return "approved", None


def plan_payout(
    *,
    session: Session,
    workload_id: str,
    policy: PayoutPolicy,
    rail: PaymentRail,
    now: datetime,
) -> PayoutView | None:
    """Persist the payout intent of a gamer-node workload once; None when none is owed.

    The caller commits (that releases the payable lock).
    """
    existing = session.get(PayoutIntent, payout_id(workload_id))
    if existing is not None:
        return PayoutView.of(existing)
    w = session.get(Workload, workload_id)
    if w is None or w.node_id is None:
        raise NotFoundError(f"workload {workload_id!r} has no placement to pay for")
    node = session.get(ComputeNode, w.node_id)
    payable = workload_payable(session=session, workload_id=workload_id)
    if node is None or node.kind != "gamer" or payable is None:
        return None
    org_id, amount = payable
    wallet = node.wallet_address or ""
    status, reason = "approved", None
    try:
        check_payout(
            session=session,
            org_id=org_id,
            wallet_address=wallet,
            amount_minor=amount,
            expected_minor=amount,
            policy=policy,
            rail=rail,
        )
    except (PayoutPolicyError, InvalidInputError) as exc:
        # Owed but not payable automatically: keep it visible for a person, never drop it.
        status, reason = "needs_review", str(exc)
    if status == "approved":
        status, reason = _route_by_limits(session, org_id, amount, policy, now)
    intent = PayoutIntent(
        id=payout_id(workload_id),
        workload_id=workload_id,
        org_id=org_id,
        wallet_address=wallet,
        amount_minor=amount,
        currency=node.currency,
        lamports=amount * policy.lamports_per_minor,
        status=status,
        approval_required=status == "awaiting_approval",
        reason=reason,
        created_at=now,
        updated_at=now,
    )
    session.add(intent)
    session.flush()
    return PayoutView.of(intent)


def _load(session: Session, intent_id: str) -> PayoutIntent:
    intent = session.get(PayoutIntent, intent_id)
    if intent is None:
        raise NotFoundError(
            f"payout {intent_id!r} does not exist; check the id against the list of payouts"
        )
    return intent


def decide_payout(
    *, session: Session, intent_id: str, approve: bool, decided_by: str, now: datetime
) -> PayoutView:
    """Approve or reject a payout that awaits approval (no chain call happens here)."""
    intent = _load(session, intent_id)
    if intent.status != "awaiting_approval":
        raise IllegalTransitionError(
            f"payout {intent_id!r} is {intent.status!r}; only awaiting_approval can be decided"
        )
    intent.status = "approved" if approve else "rejected"
    intent.approved_by = decided_by
    intent.updated_at = now
    session.flush()
    return PayoutView.of(intent)


async def execute_payout(
    *,
    session: Session,
    rail: PaymentRail,
    intent_id: str,
    now: datetime,
    fault: FaultHook = no_fault,
) -> PayoutView:
    """Send an approved payout and post it to the ledger once the transfer is finalized."""
    intent = _load(session, intent_id)
    if intent.status not in ("approved", "signed", "sent"):
        return PayoutView.of(intent)
    sub = await rail.submit(
        session=session,
        purpose="payout",
        ref_id=intent.id,
        memo=f"tgtg-payout:{intent.id}",
        to=intent.wallet_address,
        lamports=intent.lamports,
        now=now,
        fault=fault,
    )
    if sub is None:
        intent.status, intent.reason = "voided", "every signature expired unseen; nothing was paid"
    elif sub.status == "failed":
        intent.status, intent.reason = "needs_review", f"transfer {sub.signature} failed on chain"
    elif sub.status == "finalized":
        fault("payout_finalized")
        txn = ledger.post_transaction(
            session=session,
            kind="payout",
            idempotency_key=f"payout:{intent.id}",
            legs=[
                Leg(
                    ledger.account_id("provider_payable", intent.org_id),
                    "debit",
                    intent.amount_minor,
                ),
                Leg(ledger.account_id("solana_hot_wallet"), "credit", intent.amount_minor),
            ],
            currency=intent.currency,
            now=now,
            workload_id=intent.workload_id,
            org_id=intent.org_id,
            external_ref=sub.signature,
            memo=f"{intent.lamports} lamports on {rail.label}",
        )
        intent.status, intent.transaction_id = "posted", txn.id
    else:
        intent.status = sub.status
    intent.updated_at = now
    session.commit()
    return PayoutView.of(intent)


def list_payouts(*, session: Session, status: str | None = None) -> list[PayoutView]:
    """Return payout intents, newest first, optionally of one status."""
    q = select(PayoutIntent).order_by(PayoutIntent.created_at.desc(), PayoutIntent.id)
    if status is not None:
        q = q.where(PayoutIntent.status == status)
    return [PayoutView.of(p) for p in session.scalars(q)]


def owed_to(*, session: Session, org_id: str) -> dict[str, int]:
    """Return what the platform owes a provider: payable balance, reserved and unreserved."""
    payable = ledger.account_balance(
        session=session, account=ledger.account_id("provider_payable", org_id)
    )
    reserved = ledger.open_payout_total(session=session, org_id=org_id)
    return {
        "payable_minor": payable,
        "reserved_minor": reserved,
        "unreserved_minor": payable - reserved,
    }
