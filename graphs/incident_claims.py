"""Fence incident work to the watcher that claimed it: the claim lease and its renewal.

Several watchers share one database. A watcher claims an incident for `CLAIM_LEASE` under its
worker id (`store.incident_repo.claim_incident`, run by `graphs.incident_watch`); every
transaction of the incident graph then starts with `load_claimed`, a conditional UPDATE that
renews the lease and takes the row's write lock. It is the lease heartbeat and the fence in one:
a watcher whose lease ran out and whose incident another watcher took over gets
`ClaimLostError` before writing anything.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from graphs.context import Context
from store import incident_repo
from store.incident_models import Incident

CLAIM_LEASE = timedelta(minutes=2)
"""How long a claim holds without renewal; every node transaction renews it."""


class ClaimLostError(RuntimeError):
    """This watcher's claim on an incident was taken over after its lease ran out."""


def load_claimed(ctx: Context, session: Session, incident_id: str) -> Incident:
    """Renew this watcher's claim and return the incident, locked for this transaction.

    Raises:
        ClaimLostError: Another watcher holds the claim now; write nothing.
        LookupError: No such incident.
    """
    renewed = incident_repo.renew_claim(
        session=session,
        incident_id=incident_id,
        worker_id=ctx.worker_id,
        now=ctx.clock.now(),
        lease=CLAIM_LEASE,
    )
    incident = incident_repo.get_incident(session=session, incident_id=incident_id, for_update=True)
    if incident is None:
        raise LookupError(f"incident {incident_id!r} does not exist")
    if not renewed:
        raise ClaimLostError(
            f"watcher {ctx.worker_id!r} no longer holds incident {incident_id!r} "
            f"(held by {incident.claimed_by!r}); it stops here"
        )
    return incident
