"""Bill a few workloads in a seeded store through the money functions (billing clerk tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from solders.keypair import Keypair
from sqlalchemy.orm import Session, sessionmaker

from store import repo
from store.models import Workload
from tools.integrations.solana.chain import LocalChain
from tools.integrations.solana.rail import SolanaRail
from tools.money import usage as billing
from tools.money.payouts import PayoutPolicy, plan_payout
from tools.money.settlement import complete_workload

OCTOBER = datetime(2026, 10, 15, 12, tzinfo=UTC)
JONAS_WL = "wl_clerknov0001"
GIULIA_WL = "wl_clerknov0002"
UNBILLED_WL = "wl_clerknov0004"


def _complete_and_bill(
    session: Session,
    wid: str,
    *,
    org: str,
    node: str,
    hours: float,
    gpus: int,
    at: datetime,
    book: bool = True,
) -> None:
    start = at - timedelta(hours=hours + 1)
    session.add(
        Workload(
            id=wid,
            org_id=org,
            name=wid,
            gpu_count=gpus,
            duration_hours=hours,
            status="routed",
            node_id=node,
            reroute_count=0,
            submitted_at=start,
            routed_at=start,
            updated_at=start,
        )
    )
    session.flush()
    assert repo.take_gpus(session=session, node_id=node, gpus=gpus)  # it was routed there
    complete_workload(session=session, workload_id=wid, now=at)
    if book:
        billing.book_usage(session=session, workload_id=wid, now=at)
    session.commit()


def bill_demo(sessions: sessionmaker[Session], *, now: datetime) -> None:
    """Bill Acme in October and November, Nordlicht in November; gamer payouts await approval.

    One more Acme workload is completed but not billed yet.
    """
    with sessions() as s:
        _complete_and_bill(
            s, "wl_clerkoct0001", org="acme-ai", node="fr-par-h100", hours=2, gpus=2, at=OCTOBER
        )
        _complete_and_bill(
            s,
            JONAS_WL,
            org="acme-ai",
            node="de-ber-4090",
            hours=5,
            gpus=1,
            at=now - timedelta(hours=1),
        )
        _complete_and_bill(
            s,
            GIULIA_WL,
            org="acme-ai",
            node="it-mil-4090",
            hours=3,
            gpus=1,
            at=now - timedelta(hours=2),
        )
        _complete_and_bill(
            s,
            "wl_clerknov0003",
            org="nordlicht",
            node="nl-ams-h100",
            hours=4,
            gpus=2,
            at=now - timedelta(hours=3),
        )
        _complete_and_bill(
            s,
            UNBILLED_WL,
            org="acme-ai",
            node="us-tex-4090",
            hours=6,
            gpus=1,
            at=now - timedelta(minutes=30),
            book=False,
        )
        policy = PayoutPolicy(approval_threshold_minor=1)  # every gamer payout waits for a person
        rail = SolanaRail(LocalChain(payer=Keypair()), Keypair())
        for wid in (JONAS_WL, GIULIA_WL):
            plan_payout(session=s, workload_id=wid, policy=policy, rail=rail, now=now)
        s.commit()
