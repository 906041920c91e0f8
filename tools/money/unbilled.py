"""Report completed workloads the billing pipeline has not booked yet, with their charge."""

from __future__ import annotations

import logging

from pydantic import BaseModel
from sqlalchemy.orm import Session

from store.models import Workload
from tools.money.usage import select_unbilled, usage_charge

logger = logging.getLogger(__name__)


class UnbilledWorkload(BaseModel):
    """A completed workload whose usage is not booked yet, and what booking it will charge."""

    workload_id: str
    org_id: str
    node_id: str
    gross_minor: int
    fee_minor: int
    provider_share_minor: int
    currency: str


def unbilled_workloads(*, session: Session, org_id: str | None = None) -> list[UnbilledWorkload]:
    """Return completed, placed workloads with no usage transaction, ordered by id (read-only).

    Args:
        session: Open session.
        org_id: Only this customer's workloads; None for every customer.
    """
    stmt = select_unbilled()
    if org_id is not None:
        stmt = stmt.where(Workload.org_id == org_id)
    out = []
    for workload_id in session.scalars(stmt):
        charge = usage_charge(session=session, workload_id=workload_id)
        out.append(
            UnbilledWorkload(
                workload_id=workload_id,
                org_id=charge.org_id,
                node_id=charge.node_id,
                gross_minor=charge.gross_minor,
                fee_minor=charge.fee_minor,
                provider_share_minor=charge.provider_share_minor,
                currency=charge.currency,
            )
        )
    return out
