"""Price a completed workload and book it in the ledger; measure its energy and CO2 by the hour.

CO2 avoided is measured here, once per workload at settlement, against the baseline that
`tools.broker.baseline` defines (the cheapest eligible node at the first routing decision).

Money rules (integers only, never floats):

- billed seconds = the workload's booked duration (`duration_hours`) rounded to the nearest second;
- gross = gpu_count x price_per_gpu_hour_minor x seconds / 3600, rounded half up to a minor unit;
- fee = floor(gross x 15 / 100), the platform's share; provider share = gross - fee.

So fee + provider share == gross for every amount, by construction.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, aliased

from store import ledger
from store.ledger import Leg
from store.models import ComputeNode, Transaction, Workload
from tools.errors import IllegalTransitionError, InvalidInputError, NoGridDataError, NotFoundError

if TYPE_CHECKING:
    from tools.broker.baseline import BaselineChoice
    from tools.grid.models import GridSource

logger = logging.getLogger(__name__)

FEE_PERCENT = 15
HOUR = timedelta(hours=1)


class UsageCharge(BaseModel):
    """What a completed workload costs and how the money splits."""

    workload_id: str
    transaction_id: str
    org_id: str
    node_id: str
    provider_org_id: str
    node_kind: str
    gpu_count: int
    billed_seconds: int
    price_per_gpu_hour_minor: int
    currency: str
    gross_minor: int
    fee_minor: int
    provider_share_minor: int


class HourUsage(BaseModel):
    """Energy and CO2 of one (partial) hour of a run."""

    ts: datetime
    seconds: int
    carbon_intensity: float
    energy_kwh: float
    co2_kg: float


class BaselineRun(BaseModel):
    """The same energy on the carbon-agnostic baseline, hour by hour (`tools.broker.baseline`)."""

    node_id: str
    zone: str
    start: datetime
    end: datetime
    co2_kg: float
    hours: list[HourUsage]


class EnergyReport(BaseModel):
    """Actual energy and CO2 of a run, hour by hour, and CO2 avoided against the baseline.

    `co2_avoided_kg` = baseline CO2 - actual CO2, as `tools.broker.baseline` defines it; None
    when the workload has no baseline or its zone has no grid data for the baseline window.
    """

    zone: str
    start: datetime
    end: datetime
    energy_kwh: float
    co2_kg: float
    baseline: BaselineRun | None = None
    baseline_co2_kg: float | None
    co2_avoided_kg: float | None
    hours: list[HourUsage]


def billed_seconds(duration_hours: float) -> int:
    """Return the booked duration in whole seconds (nearest second, halves up)."""
    if not duration_hours > 0:
        raise InvalidInputError(f"duration_hours {duration_hours!r}: give a positive number")
    return int((Decimal(repr(duration_hours)) * 3600).quantize(Decimal(1), ROUND_HALF_UP))


def gross_minor(gpu_count: int, price_per_gpu_hour_minor: int, seconds: int) -> int:
    """Return gpu_count x price x seconds / 3600 in minor units, rounded half up."""
    for name, value in (("gpu_count", gpu_count), ("price", price_per_gpu_hour_minor)):
        if type(value) is not int or value < 0:
            raise InvalidInputError(f"{name} {value!r}: give a non-negative integer")
    if type(seconds) is not int or seconds < 0:
        raise InvalidInputError(f"seconds {seconds!r}: give a non-negative integer")
    numerator = gpu_count * price_per_gpu_hour_minor * seconds
    return (2 * numerator + 3600) // 7200


def split_fee(gross: int) -> tuple[int, int]:
    """Return (platform fee, provider share): fee = floor(gross x 15 / 100), share = the rest."""
    if type(gross) is not int or gross < 0:
        raise InvalidInputError(f"gross {gross!r}: give a non-negative integer of minor units")
    fee = gross * FEE_PERCENT // 100
    return fee, gross - fee


def run_window(workload: Workload) -> tuple[datetime, datetime]:
    """Return the (start, end) of a workload's run: from start (or routing) for its duration."""
    start = workload.started_at or workload.routed_at
    if start is None:
        raise InvalidInputError(f"workload {workload.id!r} never started; route and run it first")
    return start, start + timedelta(seconds=billed_seconds(workload.duration_hours))


def _hourly(
    grid: GridSource, zone: str, start: datetime, end: datetime, kw: float
) -> list[HourUsage]:
    """Return `kw` drawn over [start, end) hour by hour at `zone`'s carbon intensity.

    An hour without intensity takes the mean of the known hours of the window.
    """
    first = start.replace(minute=0, second=0, microsecond=0)
    n_hours = math.ceil((end - first) / HOUR)
    readings = grid.series(zone, first, n_hours)
    known = [r.carbon_intensity for r in readings if r.carbon_intensity is not None]
    if not known:
        raise NoGridDataError(f"no carbon intensity for zone {zone!r} from {first.isoformat()}")
    fallback = sum(known) / len(known)
    hours: list[HourUsage] = []
    for i, reading in enumerate(readings):
        h_start = first + i * HOUR
        seconds = int((min(end, h_start + HOUR) - max(start, h_start)).total_seconds())
        if seconds <= 0:
            continue
        ci = reading.carbon_intensity if reading.carbon_intensity is not None else fallback
        kwh = kw * seconds / 3600
        hours.append(
            HourUsage(
                ts=h_start,
                seconds=seconds,
                carbon_intensity=ci,
                energy_kwh=kwh,
                co2_kg=kwh * ci / 1000,
            )
        )
    return hours


def measure_energy(
    *,
    grid: GridSource,
    zone: str,
    start: datetime,
    end: datetime,
    gpu_count: int,
    power_kw_per_gpu: float,
    baseline: BaselineChoice | None = None,
) -> EnergyReport:
    """Compute energy and CO2 hour by hour over [start, end), and CO2 avoided against `baseline`.

    The baseline and CO2 avoided are defined once, in `tools.broker.baseline`.
    Each hour's energy is gpu_count x kW per GPU x the seconds of the run inside that hour; its
    CO2 uses that hour's carbon intensity. An hour without intensity takes the mean of the known
    hours. The baseline draws the same power for the same duration from `baseline.start_at` in
    `baseline.zone`, at that zone's actual intensity hour by hour.
    """
    if end <= start:
        raise InvalidInputError(f"run end {end.isoformat()!r} is not after start {start!r}")
    kw = gpu_count * power_kw_per_gpu
    hours = _hourly(grid, zone, start, end, kw)
    co2 = sum(h.co2_kg for h in hours)
    run: BaselineRun | None = None
    if baseline is not None:
        b_end = baseline.start_at + (end - start)
        try:
            b_hours = _hourly(grid, baseline.zone, baseline.start_at, b_end, kw)
        except NoGridDataError:
            logger.warning("no grid data for baseline zone %s; CO2 avoided unknown", baseline.zone)
        else:
            run = BaselineRun(
                node_id=baseline.node_id,
                zone=baseline.zone,
                start=baseline.start_at,
                end=b_end,
                co2_kg=sum(h.co2_kg for h in b_hours),
                hours=b_hours,
            )
    return EnergyReport(
        zone=zone,
        start=start,
        end=end,
        energy_kwh=sum(h.energy_kwh for h in hours),
        co2_kg=co2,
        baseline=run,
        baseline_co2_kg=None if run is None else run.co2_kg,
        co2_avoided_kg=None if run is None else run.co2_kg - co2,
        hours=hours,
    )


def usage_key(workload_id: str) -> str:
    """Return the idempotency key of a workload's usage transaction."""
    return f"usage:{workload_id}"


def _charge(w: Workload, node: ComputeNode, txn_id: str) -> UsageCharge:
    seconds = billed_seconds(w.duration_hours)
    gross = gross_minor(w.gpu_count, node.price_per_gpu_hour_minor, seconds)
    fee, share = split_fee(gross)
    return UsageCharge(
        workload_id=w.id,
        transaction_id=txn_id,
        org_id=w.org_id,
        node_id=node.id,
        provider_org_id=node.owner_id,
        node_kind=node.kind,
        gpu_count=w.gpu_count,
        billed_seconds=seconds,
        price_per_gpu_hour_minor=node.price_per_gpu_hour_minor,
        currency=node.currency,
        gross_minor=gross,
        fee_minor=fee,
        provider_share_minor=share,
    )


def book_usage(*, session: Session, workload_id: str, now: datetime) -> UsageCharge:
    """Book a completed workload's charge once: receivable = platform fee + provider payable.

    Raises:
        NotFoundError: The workload does not exist.
        IllegalTransitionError: The workload is not completed or has no node.
    """
    w = session.get(Workload, workload_id)
    if w is None:
        raise NotFoundError(
            f"workload {workload_id!r} does not exist; check the id against the list of workloads"
        )
    if w.status != "completed" or w.node_id is None:
        raise IllegalTransitionError(
            f"workload {workload_id!r} is {w.status!r} on node {w.node_id!r}; only completed "
            "workloads with a node are billed"
        )
    node = session.get(ComputeNode, w.node_id)
    assert node is not None  # noqa: S101 - foreign key guarantees it
    key = usage_key(w.id)
    charge = _charge(w, node, ledger.transaction_id_for(key))
    if charge.gross_minor == 0:
        ledger.record_empty_transaction(
            session=session,
            kind="usage",
            idempotency_key=key,
            currency=charge.currency,
            now=now,
            workload_id=w.id,
            org_id=w.org_id,
            memo="no charge: zero gross",
        )
        return charge
    legs = [
        Leg(ledger.account_id("customer_receivable", w.org_id), "debit", charge.gross_minor),
        Leg(
            ledger.account_id("provider_payable", node.owner_id),
            "credit",
            charge.provider_share_minor,
        ),
    ]
    if charge.fee_minor:
        legs.append(Leg(ledger.account_id("platform_revenue"), "credit", charge.fee_minor))
    ledger.post_transaction(
        session=session,
        kind="usage",
        idempotency_key=key,
        legs=legs,
        currency=charge.currency,
        now=now,
        workload_id=w.id,
        org_id=w.org_id,
        status="booked",
        memo=f"{charge.gpu_count} GPU x {charge.billed_seconds} s on {node.id}",
    )
    logger.info("booked %s: gross %d %s", w.id, charge.gross_minor, charge.currency)
    return charge


def usage_charge(*, session: Session, workload_id: str) -> UsageCharge:
    """Recompute the charge of an already booked workload (for reports and payouts)."""
    w = session.get(Workload, workload_id)
    if w is None or w.node_id is None:
        raise NotFoundError(f"workload {workload_id!r} has no billable placement")
    node = session.get(ComputeNode, w.node_id)
    assert node is not None  # noqa: S101 - foreign key guarantees it
    return _charge(w, node, ledger.transaction_id_for(usage_key(w.id)))


def usage_transaction(*, session: Session, workload_id: str) -> Transaction | None:
    """Return the workload's usage transaction, if booked."""
    return ledger.find_transaction(session=session, idempotency_key=usage_key(workload_id))


class StatementLine(BaseModel):
    """One billed workload on an organisation's statement."""

    workload_id: str
    transaction_id: str
    amount_minor: int
    currency: str
    status: str
    """booked, metered (sent to Stripe or the demo meter) or no_charge."""
    booked_at: datetime


class UsageStatement(BaseModel):
    """What an organisation was billed in a period."""

    org_id: str
    start: datetime
    end: datetime
    total_minor: int
    lines: list[StatementLine]


def usage_statement(
    *, session: Session, org_id: str, start: datetime, end: datetime
) -> UsageStatement:
    """Return the usage billed to `org_id` with bookings in [start, end)."""
    if end <= start:
        raise InvalidInputError(
            f"period end {end.isoformat()!r} is not after {start.isoformat()!r}"
        )
    txns = ledger.usage_transactions(session=session, org_id=org_id, start=start, end=end)
    lines = [
        StatementLine(
            workload_id=t.workload_id or "",
            transaction_id=t.id,
            amount_minor=t.amount_minor,
            currency=t.currency,
            status=t.status,
            booked_at=t.created_at,
        )
        for t in txns
    ]
    return UsageStatement(
        org_id=org_id,
        start=start,
        end=end,
        total_minor=sum(x.amount_minor for x in lines),
        lines=lines,
    )


def select_unbilled() -> Select[str]:
    """Return the query for completed, placed workloads with no usage booked, ordered by id."""
    usage = aliased(Transaction)
    return (
        select(Workload.id)
        .outerjoin(usage, (usage.workload_id == Workload.id) & (usage.kind == "usage"))
        .where(Workload.status == "completed", Workload.node_id.is_not(None), usage.id.is_(None))
        .order_by(Workload.id)
    )
