"""Settle completed workloads: book, meter, pay the gamer, mint the carbon receipt; resumable.

The receipt carries the workload's CO2 avoided, measured once here against its baseline
(`tools.broker.baseline`); profitability, the dashboard, metrics and chat read that figure.

Each step commits before the next one's external call, and every step is idempotent (ledger
idempotency keys, meter identifiers, persisted signatures), so running `settle_workload` again
after a crash anywhere finishes the work without doing any of it twice. `fault` is called at
every boundary; the crash harness raises from it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.ledger import PayoutIntent
from store.models import CarbonReceipt, ComputeNode, Workload
from tools.broker.baseline import first_baseline
from tools.broker.workloads import set_workload_status
from tools.grid import GridSource
from tools.money import metering, payouts, receipts
from tools.money import usage as billing
from tools.money.payouts import PayoutPolicy
from tools.money.ports import Biller, FaultHook, PaymentRail, no_fault

logger = logging.getLogger(__name__)

FAULT_POINTS = (
    "usage_booked",
    "meter_sent",
    "metered",
    "intent_persisted",
    "payout_signed",
    "payout_sent",
    "payout_finalized",
    "payout_posted",
    "receipt_persisted",
    "receipt_signed",
    "receipt_sent",
    "receipt_anchored",
)
"""Every boundary between a committed local step and the next external call."""


@dataclass
class MoneyServices:
    """The external services and rules the billing cycle uses."""

    biller: Biller
    rail: PaymentRail
    grid: GridSource
    policy: PayoutPolicy = field(default_factory=PayoutPolicy)


class Settlement(BaseModel):
    """What settling one workload did."""

    workload_id: str
    gross_minor: int
    fee_minor: int
    provider_share_minor: int
    currency: str
    meter: metering.MeterResult | None
    payout: payouts.PayoutView | None
    receipt: receipts.ReceiptView
    energy_kwh: float
    co2_kg: float
    co2_avoided_kg: float | None


def complete_workload(*, session: Session, workload_id: str, now: datetime) -> None:
    """Mark a routed or running workload completed (routed ones start first)."""
    w = session.get(Workload, workload_id)
    if w is not None and w.status == "routed":
        set_workload_status(session=session, workload_id=workload_id, status="running", now=now)
    set_workload_status(session=session, workload_id=workload_id, status="completed", now=now)
    session.commit()


async def settle_workload(
    *,
    session: Session,
    services: MoneyServices,
    workload_id: str,
    now: datetime,
    fault: FaultHook = no_fault,
) -> Settlement:
    """Run (or resume) the whole money pipeline of one completed workload."""
    charge = billing.book_usage(session=session, workload_id=workload_id, now=now)
    session.commit()
    fault("usage_booked")
    meter = metering.meter_usage(
        session=session, biller=services.biller, workload_id=workload_id, now=now, fault=fault
    )
    session.commit()
    fault("metered")
    payout = payouts.plan_payout(
        session=session,
        workload_id=workload_id,
        policy=services.policy,
        rail=services.rail,
        now=now,
    )
    session.commit()
    if payout is not None:
        fault("intent_persisted")
        payout = await payouts.execute_payout(
            session=session,
            rail=services.rail,
            intent_id=payout.id,
            now=now,
            fault=fault,
        )
        if payout.status == "posted":
            fault("payout_posted")
    w = session.get(Workload, workload_id)
    node = session.get(ComputeNode, charge.node_id)
    assert w is not None and node is not None  # noqa: S101 - booked above
    start, end = billing.run_window(w)
    energy = billing.measure_energy(
        grid=services.grid,
        zone=node.zone,
        start=start,
        end=end,
        gpu_count=w.gpu_count,
        power_kw_per_gpu=node.power_kw_per_gpu,
        baseline=first_baseline(session=session, workload_id=workload_id),
    )
    receipt = receipts.build_receipt(
        session=session,
        workload_id=workload_id,
        charge=charge,
        energy=energy,
        grid_source=services.grid.name,
        now=now,
    )
    session.commit()
    fault("receipt_persisted")
    receipt = await receipts.anchor_receipt(
        session=session,
        rail=services.rail,
        receipt_id=receipt.id,
        now=now,
        fault=fault,
    )
    if receipt.status == "anchored":
        fault("receipt_anchored")
    return Settlement(
        workload_id=workload_id,
        gross_minor=charge.gross_minor,
        fee_minor=charge.fee_minor,
        provider_share_minor=charge.provider_share_minor,
        currency=charge.currency,
        meter=meter,
        payout=payout,
        receipt=receipt,
        energy_kwh=energy.energy_kwh,
        co2_kg=energy.co2_kg,
        co2_avoided_kg=energy.co2_avoided_kg,
    )


def claim_unbilled(*, session: Session) -> str | None:
    """Lock one completed workload that has no usage booked yet, skipping ones others hold.

    PostgreSQL: `FOR UPDATE OF workloads SKIP LOCKED`, so concurrent workers take different
    workloads; the usage idempotency key is the final guard on any database.
    """
    stmt = billing.select_unbilled().limit(1).with_for_update(of=Workload, skip_locked=True)
    return session.scalars(stmt).first()


def unsettled_workloads(*, session: Session, limit: int | None = None) -> list[str]:
    """Return completed workloads whose receipt is not anchored or whose payout is in flight."""
    no_receipt = (
        select(Workload.id)
        .outerjoin(CarbonReceipt, CarbonReceipt.workload_id == Workload.id)
        .where(
            Workload.status == "completed",
            Workload.node_id.is_not(None),
            (CarbonReceipt.id.is_(None)) | (CarbonReceipt.status == "pending"),
        )
    )
    in_flight = select(PayoutIntent.workload_id).where(
        PayoutIntent.status.in_(("approved", "signed", "sent"))
    )
    ids = sorted(set(session.scalars(no_receipt)) | set(session.scalars(in_flight)))
    return ids[:limit] if limit is not None else ids
