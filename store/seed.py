"""Seed the demo fleet: 13 organisations and 14 compute nodes (idempotent).

Wallet addresses are real Solana public keys derived deterministically from the node id, so the
same seed always gives the same registered recipients.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, MetaData, func, select, text
from sqlalchemy.orm import Session

from store.models import ComputeNode, Organization


@dataclass(frozen=True)
class _Org:
    id: str
    name: str
    kind: str
    country: str


@dataclass(frozen=True)
class _Node:
    id: str
    name: str
    owner: str
    zone: str
    gpu_model: str
    gpu_count: int
    reserved: int
    kw_per_gpu: float
    cents_per_gpu_hour: int
    status: str = "online"


ORGS: tuple[_Org, ...] = (
    _Org("acme-ai", "Acme AI", "enterprise", "DE"),
    _Org("nordlicht", "Nordlicht Robotics", "enterprise", "DE"),
    _Org("helios-bio", "Helios Bio", "enterprise", "FR"),
    _Org("bluebird", "Bluebird Analytics", "enterprise", "US"),
    _Org("verdant", "Verdant Vision", "enterprise", "NL"),
    _Org("seine-compute", "Seine Compute", "datacenter", "FR"),
    _Org("iberia-green", "Iberia Green DC", "datacenter", "ES"),
    _Org("lowlands-gpu", "Lowlands GPU", "datacenter", "NL"),
    _Org("atlantic-cloud", "Atlantic Cloud", "datacenter", "US"),
    _Org("gamer-giulia", "Giulia (gamer)", "gamer", "IT"),
    _Org("gamer-jonas", "Jonas (gamer)", "gamer", "DE"),
    _Org("gamer-amelia", "Amelia (gamer)", "gamer", "GB"),
    _Org("gamer-tyler", "Tyler (gamer)", "gamer", "US"),
)

NODES: tuple[_Node, ...] = (
    _Node("fr-par-h100", "Paris H100 pod", "seine-compute", "FR", "H100", 8, 2, 0.70, 290),
    _Node("de-fra-h100", "Frankfurt H100 pod", "lowlands-gpu", "DE", "H100", 8, 4, 0.70, 250),
    _Node("es-mad-a100", "Madrid A100 pod", "iberia-green", "ES", "A100", 8, 2, 0.40, 170),
    _Node("pt-lis-a100", "Lisbon A100 pod", "iberia-green", "PT", "A100", 4, 0, 0.40, 160),
    _Node("nl-ams-h100", "Amsterdam H100 pod", "lowlands-gpu", "NL", "H100", 8, 2, 0.70, 260),
    _Node("be-bru-l40s", "Brussels L40S pod", "lowlands-gpu", "BE", "L40S", 8, 0, 0.35, 110),
    _Node("gb-lon-h100", "London H100 pod", "atlantic-cloud", "GB", "H100", 8, 2, 0.70, 300),
    _Node("us-cal-h100", "San Jose H100", "atlantic-cloud", "US-CAL-CISO", "H100", 16, 8, 0.7, 240),
    _Node("us-ny-a100", "Albany A100 pod", "atlantic-cloud", "US-NY-NYIS", "A100", 8, 2, 0.40, 180),
    _Node("us-tex-h100", "Austin H100", "atlantic-cloud", "US-TEX-ERCO", "H100", 16, 4, 0.70, 210),
    _Node("it-mil-4090", "Giulia 4090", "gamer-giulia", "IT", "RTX4090", 1, 0, 0.45, 45),
    _Node("de-ber-4090", "Jonas 4090", "gamer-jonas", "DE", "RTX4090", 1, 0, 0.45, 40),
    _Node("gb-man-4090", "Amelia 4090", "gamer-amelia", "GB", "RTX4090", 1, 0, 0.45, 42, "offline"),
    _Node("us-tex-4090", "Tyler 4090", "gamer-tyler", "US-TEX-ERCO", "RTX4090", 1, 0, 0.45, 35),
)


DEMO_WALLETS: dict[str, str] = {
    "gamer-giulia": "CuB8xFt9yuVRJZ7gG94ULdBX7p3njW6esez45nDFwhfW",
    "gamer-jonas": "BHYRnrF6ZFYXLKdCpm7pSMeGMCArLSdtk1hnkZ6nkbic",
    "gamer-amelia": "56HhoHv3ibsDy3BKbu3tSHakdDDCAvqEr3R8RJctzKKr",
    "gamer-tyler": "CMLHuFN6fCijNS2G4o4vxTHpHayJhy4eXAW3qj1Jwhg8",
}
"""The seeded gamers' Solana wallets: `tools.integrations.solana.chain.demo_wallet(owner)`."""


@dataclass(frozen=True)
class SeedReport:
    """What a seed run added."""

    organizations_added: int
    nodes_added: int


def seed_fleet(*, session: Session, now: datetime) -> SeedReport:
    """Insert the demo organisations and nodes that are not there yet (never overwrites)."""
    orgs_added = nodes_added = 0
    for o in ORGS:
        if session.get(Organization, o.id) is None:
            wallet = DEMO_WALLETS[o.id] if o.kind == "gamer" else None
            session.add(
                Organization(
                    id=o.id,
                    name=o.name,
                    kind=o.kind,
                    country=o.country if len(o.country) == 2 else None,
                    email=f"billing@{o.id}.example",
                    wallet_address=wallet,
                    created_at=now,
                )
            )
            orgs_added += 1
    session.flush()
    for n in NODES:
        if session.get(ComputeNode, n.id) is None:
            owner_kind = next(o.kind for o in ORGS if o.id == n.owner)
            session.add(
                ComputeNode(
                    id=n.id,
                    name=n.name,
                    owner_id=n.owner,
                    kind="gamer" if owner_kind == "gamer" else "datacenter",
                    zone=n.zone,
                    gpu_model=n.gpu_model,
                    gpu_count=n.gpu_count,
                    reserved_gpus=n.reserved,
                    power_kw_per_gpu=n.kw_per_gpu,
                    price_per_gpu_hour_minor=n.cents_per_gpu_hour,
                    currency="EUR",
                    status=n.status,
                    wallet_address=DEMO_WALLETS[n.owner] if owner_kind == "gamer" else None,
                    created_at=now,
                )
            )
            nodes_added += 1
    session.flush()
    return SeedReport(organizations_added=orgs_added, nodes_added=nodes_added)


MONEY_TABLES: dict[str, tuple[str, str]] = {
    "ledger_entries": ("ledger entry", "ledger entries"),
    "payout_intents": ("payout", "payouts"),
    "chain_submissions": ("chain submission", "chain submissions"),
    "carbon_receipts": ("carbon receipt", "carbon receipts"),
    "meter_events": ("Stripe meter event", "Stripe meter events"),
}
"""Tables whose rows mirror money or chain state kept elsewhere (chain journal, Stripe)."""


class MoneyRowsError(RuntimeError):
    """A reset would delete ledger, payout or receipt rows whose counterparts live elsewhere."""

    def __init__(self, counts: dict[str, int]) -> None:
        """Record the money rows found, per table (non-zero counts only)."""
        listed = ", ".join(f"{n} {MONEY_TABLES[t][0 if n == 1 else 1]}" for t, n in counts.items())
        super().__init__(f"the database holds {listed}")
        self.counts = counts


def drop_everything(engine: Engine, *, wipe_ledger: bool = False) -> dict[str, int]:
    """Drop every table (domain data, ledger, checkpoints) for a clean reset.

    On PostgreSQL this is one transaction: the money tables are locked first, so no row slips
    in between the count and the drop, and the migrations' trigger functions go too, so
    `upgrade` can run again. (SQLite's driver commits each DROP on its own.)

    Args:
        engine: The database to empty.
        wipe_ledger: Also drop tables holding ledger, payout, receipt or meter rows; without it
            the reset refuses while any of them has rows.

    Returns:
        The rows each table held when it was dropped (the Alembic version table left out).

    Raises:
        MoneyRowsError: Money rows exist and `wipe_ledger` is False; nothing is dropped.
    """
    with engine.begin() as conn:
        meta = MetaData()
        meta.reflect(bind=conn)
        money = [t for t in MONEY_TABLES if t in meta.tables]
        if money and conn.dialect.name == "postgresql":
            # No settlement can add rows between the count and the drop.
            names = ", ".join(conn.dialect.identifier_preparer.quote(t) for t in money)
            conn.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
        counts = {
            name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in sorted(meta.tables.items())
            if name != "alembic_version"
        }
        held = {t: counts[t] for t in money if counts[t]}
        if held and not wipe_ledger:
            raise MoneyRowsError(held)
        meta.drop_all(bind=conn)
        if conn.dialect.name == "postgresql":
            _drop_trigger_functions(conn)
    return counts


def _drop_trigger_functions(conn: Connection) -> None:
    """Drop the trigger functions migrations created in this schema (their tables are gone)."""
    names = conn.execute(
        text(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() AND p.prorettype = 'trigger'::regtype"
        )
    ).scalars()
    for name in list(names):
        quoted = conn.dialect.identifier_preparer.quote(name)
        conn.execute(text(f"DROP FUNCTION IF EXISTS {quoted}()"))
