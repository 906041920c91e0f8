"""Meter B2B usage: one meter event per usage transaction, sent once through the `Biller` port.

One Stripe customer per enterprise organisation, one meter (`tgtg_billed_minor`, sum of the
billed minor units, so meter totals reconcile exactly with the ledger) and one meter event per
usage transaction. The event `identifier` and the idempotency key derive from the ledger
transaction id, so every retry, restart or second worker sends the same request.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.orm import Session

from store import ledger
from store.ledger import MeterEventRecord
from store.models import Organization
from tools.errors import NotFoundError
from tools.money.ports import Biller, FaultHook, no_fault
from tools.money.usage import usage_transaction

logger = logging.getLogger(__name__)

EVENT_NAME = "tgtg_billed_minor"


class MeterResult(BaseModel):
    """The meter event of one usage transaction."""

    workload_id: str
    transaction_id: str
    identifier: str
    customer_id: str
    value: int
    mode: Literal["stripe", "demo"]
    already_metered: bool


def meter_identifier(transaction_id: str) -> str:
    """Return the meter event identifier of a usage transaction."""
    return f"tgtg-usage-{transaction_id}"


def meter_usage(
    *,
    session: Session,
    biller: Biller,
    workload_id: str,
    now: datetime,
    fault: FaultHook = no_fault,
) -> MeterResult | None:
    """Send the workload's usage to the meter once and record it; None for a zero charge.

    Raises:
        NotFoundError: The workload has no booked usage.
    """
    txn = usage_transaction(session=session, workload_id=workload_id)
    if txn is None:
        raise NotFoundError(f"workload {workload_id!r} has no booked usage; complete it first")
    if txn.status == "no_charge":
        return None
    record = ledger.find_meter_event(session=session, transaction_id=txn.id)
    if record is not None:
        return _result(workload_id, record, already=True)
    org = session.get(Organization, txn.org_id)
    assert org is not None  # noqa: S101 - foreign key guarantees it
    customer_id = org.stripe_customer_id or biller.ensure_customer(org)
    if biller.mode == "stripe" and org.stripe_customer_id != customer_id:
        org.stripe_customer_id = customer_id
    identifier = meter_identifier(txn.id)
    duplicate = biller.send_meter_event(
        identifier=identifier,
        customer_id=customer_id,
        value=txn.amount_minor,
        timestamp=int(txn.created_at.timestamp()),  # stable across retries: same parameters
        key=f"meter-event:{txn.id}",
    )
    fault("meter_sent")
    record = MeterEventRecord(
        identifier=identifier,
        transaction_id=txn.id,
        org_id=org.id,
        customer_id=customer_id,
        event_name=EVENT_NAME,
        value=txn.amount_minor,
        mode=biller.mode,
        created_at=now,
    )
    session.add(record)
    txn.status = "metered"
    session.flush()
    if duplicate:
        logger.info("meter event %s was already delivered", identifier)
    return _result(workload_id, record, already=duplicate)


def _result(workload_id: str, record: MeterEventRecord, *, already: bool) -> MeterResult:
    return MeterResult(
        workload_id=workload_id,
        transaction_id=record.transaction_id,
        identifier=record.identifier,
        customer_id=record.customer_id,
        value=record.value,
        mode=record.mode,
        already_metered=already,
    )
