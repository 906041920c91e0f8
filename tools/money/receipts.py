"""Mint and verify carbon receipts: a canonical JSON document whose hash is anchored on chain.

The memo is `cr1:{receipt_id}:{sha256(canonical_json)}`; the full receipt stays in the store.
The receipt holds the workload's CO2 avoided and its baseline (`tools.broker.baseline`), the
figure every surface shows; `co2_avoided` reads it (or, before settlement, the forecast).
Verification recomputes the hash from the stored document, checks that the signed transaction
carries exactly that memo and is validly signed, and asks the chain that its signature is
finalized without error.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.ledger import ChainSubmission
from store.models import CarbonReceipt, Workload
from tools.broker.baseline import explain_avoided, workload_forecast
from tools.errors import NotFoundError
from tools.money.ports import FaultHook, PaymentRail, no_fault
from tools.money.usage import EnergyReport, UsageCharge

logger = logging.getLogger(__name__)


class ReceiptView(BaseModel):
    """A carbon receipt as shown to people and agents."""

    id: str
    workload_id: str
    receipt_hash: str
    energy_kwh: float
    co2_kg: float
    co2_avoided_kg: float | None
    chain: str | None
    signature: str | None
    status: str

    @classmethod
    def of(cls, r: CarbonReceipt) -> ReceiptView:
        """Return the view of an ORM receipt."""
        return cls.model_validate(r, from_attributes=True)


class ReceiptVerification(BaseModel):
    """The outcome of verifying a receipt, check by check."""

    receipt_id: str
    valid: bool
    memo: str | None
    signature: str | None
    chain: str | None
    checks: dict[str, bool]


def canonical_json(payload: dict[str, Any]) -> str:
    """Return the canonical form: sorted keys, no spaces, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def receipt_hash(payload: dict[str, Any]) -> str:
    """Return the hex SHA-256 of the canonical JSON of `payload`."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def receipt_memo(receipt_id: str, digest: str) -> str:
    """Return the on-chain memo of a receipt."""
    return f"cr1:{receipt_id}:{digest}"


def receipt_id_for(workload_id: str) -> str:
    """Return the deterministic receipt id of a workload."""
    return "cr_" + hashlib.sha256(f"receipt:{workload_id}".encode()).hexdigest()[:20]


def build_receipt(
    *,
    session: Session,
    workload_id: str,
    charge: UsageCharge,
    energy: EnergyReport,
    grid_source: str,
    now: datetime,
) -> ReceiptView:
    """Persist the receipt document of a completed workload once (status `pending`)."""
    rid = receipt_id_for(workload_id)
    existing = session.get(CarbonReceipt, rid)
    if existing is not None:
        return ReceiptView.of(existing)
    w = session.get(Workload, workload_id)
    if w is None:
        raise NotFoundError(f"workload {workload_id!r} does not exist")
    base = energy.baseline
    payload: dict[str, Any] = {
        "v": 2,
        "receipt_id": rid,
        "workload_id": workload_id,
        "org_id": charge.org_id,
        "node_id": charge.node_id,
        "zone": energy.zone,
        "gpu_count": charge.gpu_count,
        "start": energy.start.isoformat(),
        "end": energy.end.isoformat(),
        "grid_source": grid_source,
        "energy_kwh": round(energy.energy_kwh, 6),
        "co2_kg": round(energy.co2_kg, 6),
        "baseline": None
        if base is None
        else {
            "definition": "cheapest eligible node at the first routing decision, started then",
            "node_id": base.node_id,
            "zone": base.zone,
            "start": base.start.isoformat(),
            "end": base.end.isoformat(),
            "hourly_carbon_intensity": [round(h.carbon_intensity, 3) for h in base.hours],
        },
        "baseline_co2_kg": None
        if energy.baseline_co2_kg is None
        else round(energy.baseline_co2_kg, 6),
        "co2_avoided_kg": None
        if energy.co2_avoided_kg is None
        else round(energy.co2_avoided_kg, 6),
        "hourly_carbon_intensity": [round(h.carbon_intensity, 3) for h in energy.hours],
        "gross_minor": charge.gross_minor,
        "currency": charge.currency,
    }
    receipt = CarbonReceipt(
        id=rid,
        workload_id=workload_id,
        payload=payload,
        receipt_hash=receipt_hash(payload),
        energy_kwh=payload["energy_kwh"],
        co2_kg=payload["co2_kg"],
        co2_avoided_kg=payload["co2_avoided_kg"],
        status="pending",
        created_at=now,
    )
    session.add(receipt)
    session.flush()
    return ReceiptView.of(receipt)


class AvoidedCO2(BaseModel):
    """A workload's kg CO2 avoided as every surface shows it (`tools.broker.baseline`)."""

    workload_id: str
    kg: float | None
    """Settled: from the carbon receipt. Forecast: from the routing decision's readings."""
    forecast: bool
    """True until the workload is settled (the figure is then a forecast of the same quantity)."""
    baseline_node_id: str | None
    baseline_zone: str | None
    explanation: str


def co2_avoided(*, session: Session, workload_id: str) -> AvoidedCO2:
    """Return the workload's CO2 avoided: its receipt's figure, else the decision's forecast."""
    receipt = session.scalars(
        select(CarbonReceipt).where(CarbonReceipt.workload_id == workload_id)
    ).one_or_none()
    if receipt is not None:
        base = receipt.payload.get("baseline") or {}
        node, zone = base.get("node_id"), base.get("zone")
        kg, forecast = receipt.co2_avoided_kg, False
    else:
        w = session.get(Workload, workload_id)
        if w is None:
            raise NotFoundError(f"workload {workload_id!r} does not exist")
        choice, kg = workload_forecast(
            session=session,
            workload_id=workload_id,
            energy_kwh=w.energy_kwh_estimate if w.node_id else None,
            co2_kg=w.co2_kg_estimate if w.node_id else None,
        )
        node = choice.node_id if choice else None
        zone = choice.zone if choice else None
        forecast = True
    return AvoidedCO2(
        workload_id=workload_id,
        kg=kg,
        forecast=forecast,
        baseline_node_id=node,
        baseline_zone=zone,
        explanation=explain_avoided(kg, node, forecast=forecast),
    )


def _load(session: Session, receipt_id: str) -> CarbonReceipt:
    receipt = session.get(CarbonReceipt, receipt_id)
    if receipt is None:
        raise NotFoundError(f"receipt {receipt_id!r} does not exist; receipts are 'cr_...' ids")
    return receipt


async def anchor_receipt(
    *,
    session: Session,
    rail: PaymentRail,
    receipt_id: str,
    now: datetime,
    fault: FaultHook = no_fault,
) -> ReceiptView:
    """Write the receipt's memo on chain once; `anchored` when finalized."""
    receipt = _load(session, receipt_id)
    if receipt.status in ("anchored", "failed"):
        return ReceiptView.of(receipt)
    sub = await rail.submit(
        session=session,
        purpose="receipt",
        ref_id=receipt.id,
        memo=receipt_memo(receipt.id, receipt.receipt_hash),
        now=now,
        fault=fault,
    )
    if sub is None or sub.status == "failed":
        receipt.status = "failed"
    elif sub.status == "finalized":
        receipt.status, receipt.signature, receipt.chain = "anchored", sub.signature, sub.chain
    session.commit()
    return ReceiptView.of(receipt)


async def verify_receipt(
    *, session: Session, rail: PaymentRail, receipt_id: str
) -> ReceiptVerification:
    """Check a receipt against its stored document, its signed transaction and the chain."""
    receipt = _load(session, receipt_id)
    digest = receipt_hash(receipt.payload)
    expected_memo = receipt_memo(receipt.id, digest)
    checks = {"hash_matches_document": digest == receipt.receipt_hash}
    sub = (
        session.scalars(
            select(ChainSubmission).where(ChainSubmission.signature == receipt.signature)
        ).one_or_none()
        if receipt.signature
        else None
    )
    memo = None
    if sub is None:
        checks["anchored"] = False
    else:
        signed = rail.read_signed(sub)
        memo = signed.memo
        checks["anchored"] = receipt.status == "anchored"
        checks["memo_matches_hash"] = memo == expected_memo
        checks["signature_valid"] = signed.signature_valid
        checks["finalized_on_chain"] = await rail.is_finalized(sub.signature)
    return ReceiptVerification(
        receipt_id=receipt.id,
        valid=all(checks.values()) and len(checks) == 5,
        memo=memo,
        signature=receipt.signature,
        chain=receipt.chain,
        checks=checks,
    )


def list_receipts(*, session: Session) -> list[ReceiptView]:
    """Return every receipt, newest first."""
    q = select(CarbonReceipt).order_by(CarbonReceipt.created_at.desc(), CarbonReceipt.id)
    return [ReceiptView.of(r) for r in session.scalars(q)]
