"""Crash the billing pipeline at every boundary for many seeds, restart it, check the money.

Each run = (seed, crash point): a fresh seeded store (the demo fleet plus a few completed
workloads on gamer and datacenter nodes), the real Stripe SDK against the local FakeStripe
(with seeded transport faults), and an in-process LiteSVM chain. The pipeline crashes at the
chosen boundary (first occurrence always, later ones at random), sometimes while the blockhash
expires, and is restarted from a fresh session; then at most three recovery passes run (a
person approves any payout waiting for approval). Afterwards every invariant is checked:

- trial balance 0 and no unbalanced transaction; fee + share == gross for every usage;
- every completed workload billed exactly once, metered exactly once (FakeStripe), and its
  meter values equal the ledger's usage amounts;
- every wallet's on-chain balance equals the lamports of its posted payouts (0 double, 0 lost),
  at most one finalized transfer per payout;
- every payout intent ends posted, voided, rejected or needs_review; payables never negative;
- every receipt anchored and verifiable.

Usage: python scripts/crash_harness.py [--seeds 200] [--quiet]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import stripe
from solders.keypair import Keypair
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakes_money import FakeStripe, random_faults, stripe_client  # noqa: E402

from store import ledger  # noqa: E402
from store.db import make_engine, make_session_factory  # noqa: E402
from store.ledger import ChainSubmission, LedgerEntry, PayoutIntent  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from store.models import CarbonReceipt, ComputeNode, Transaction, Workload  # noqa: E402
from store.seed import seed_fleet  # noqa: E402
from tools.grid.simulated import SimulatedGrid  # noqa: E402
from tools.integrations.solana.chain import LocalChain  # noqa: E402
from tools.integrations.solana.rail import SolanaRail  # noqa: E402
from tools.integrations.stripe import StripeBilling  # noqa: E402
from tools.money.payouts import PayoutPolicy, decide_payout, execute_payout  # noqa: E402
from tools.money.receipts import verify_receipt  # noqa: E402
from tools.money.settlement import (  # noqa: E402
    FAULT_POINTS,
    MoneyServices,
    settle_workload,
    unsettled_workloads,
)

NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
RECOVERY_PASSES = 3
STRIPE_ERRORS = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)


class Crash(Exception):
    """The process died at a pipeline boundary."""


@dataclass
class RunResult:
    """What one (seed, crash point) run saw and which invariants broke."""

    seed: int
    point: str
    crashes: int = 0
    stripe_failures: int = 0
    resigned: int = 0
    payouts_posted: int = 0
    final_statuses: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)


def _template(tmp: Path) -> Path:
    path = tmp / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with make_session_factory(engine)() as s:
        seed_fleet(session=s, now=NOW)
        s.commit()
    engine.dispose()
    return path


def _workloads(session, rng: random.Random) -> list[str]:
    nodes = list(session.scalars(select(ComputeNode).order_by(ComputeNode.id)))
    gamers = [n for n in nodes if n.kind == "gamer"]
    ids = []
    for i in range(rng.randint(3, 5)):
        node = rng.choice(gamers) if i % 2 == 0 else rng.choice(nodes)
        hours = rng.choice([0.5, 1.0, 2.0, 3.5, 8.0, 30.0])
        wid = f"wl_{i}"
        session.add(
            Workload(
                id=wid,
                org_id=rng.choice(["acme-ai", "nordlicht", "helios-bio"]),
                name=wid,
                gpu_count=rng.randint(1, node.gpu_count),
                duration_hours=hours,
                status="completed",
                node_id=node.id,
                reroute_count=0,
                submitted_at=NOW,
                routed_at=NOW,
                started_at=NOW,
                finished_at=NOW + timedelta(hours=hours),
                updated_at=NOW,
            )
        )
        ids.append(wid)
    session.commit()
    return ids


def run_one(
    seed: int, point: str, template: Path, tmp: Path, *, chain_class: type[LocalChain] = LocalChain
) -> RunResult:
    """Run the pipeline once with crashes at `point`, recover, and check every invariant."""
    rng = random.Random(f"{seed}:{point}")
    res = RunResult(seed, point)
    db = tmp / f"run_{seed}_{point}.db"
    shutil.copy(template, db)
    engine = make_engine(f"sqlite:///{db}")
    sessions = make_session_factory(engine)
    fake = FakeStripe(faults=random_faults(seed, 0.15))
    payer = Keypair.from_seed(rng.randbytes(32))
    chain = chain_class(payer=payer)
    svc = MoneyServices(
        biller=StripeBilling(stripe_client(fake, max_network_retries=1)),
        rail=SolanaRail(chain, payer),
        grid=SimulatedGrid(seed=seed),
        policy=PayoutPolicy(
            approval_threshold_minor=rng.choice([100, 5_000]), max_payout_minor=20_000
        ),
    )
    seen: Counter[str] = Counter()
    armed = [True]

    def fault(p: str) -> None:
        if p != point or not armed[0]:
            return
        seen[p] += 1
        if seen[p] == 1 or (res.crashes < 4 and rng.random() < 0.4):
            res.crashes += 1
            if rng.random() < 0.5:
                chain.expire_blockhash()  # the outage lasted longer than a blockhash
            raise Crash(p)

    with sessions() as s:
        ids = _workloads(s, rng)

    async def attempt(wid: str, hook) -> None:
        with sessions() as s:
            try:
                await settle_workload(session=s, services=svc, workload_id=wid, now=NOW, fault=hook)
            except Crash:
                s.rollback()
            except STRIPE_ERRORS:
                res.stripe_failures += 1
                s.rollback()

    async def pipeline() -> None:
        for wid in ids:
            await attempt(wid, fault)
        for i in range(RECOVERY_PASSES):
            armed[0] = i == 0  # the first restart may crash again; later passes run clean
            with sessions() as s:
                todo = unsettled_workloads(session=s)
                todo += [
                    w
                    for w in ids
                    if ledger.find_meter_event(
                        session=s, transaction_id=ledger.transaction_id_for(f"usage:{w}")
                    )
                    is None
                ]
            for wid in sorted(set(todo)):
                await attempt(wid, fault)
            with sessions() as s:
                waiting = s.scalars(
                    select(PayoutIntent.id).where(PayoutIntent.status == "awaiting_approval")
                ).all()
                for pid in waiting:
                    decide_payout(
                        session=s, intent_id=pid, approve=True, decided_by="harness", now=NOW
                    )
                    s.commit()
                    try:
                        await execute_payout(
                            session=s, rail=svc.rail, intent_id=pid, now=NOW, fault=fault
                        )
                    except Crash:
                        s.rollback()

    asyncio.run(pipeline())
    with sessions() as s:
        asyncio.run(_check(s, ids, fake, svc.rail, res))
    engine.dispose()
    db.unlink()
    return res


async def _check(s, ids: list[str], fake: FakeStripe, rail: SolanaRail, res: RunResult) -> None:
    v = res.violations
    tb = ledger.trial_balance(session=s)
    if tb["trial_balance"] != 0 or tb["unbalanced_transactions"]:
        v.append(f"trial balance {tb['trial_balance']} / {tb['unbalanced_transactions']}")
    usages = s.scalars(select(Transaction).where(Transaction.kind == "usage")).all()
    if sorted(t.workload_id for t in usages) != sorted(ids):
        v.append("a workload was not billed exactly once")
    for t in usages:
        credits = s.scalar(
            select(func.sum(LedgerEntry.amount_minor)).where(
                LedgerEntry.transaction_id == t.id, LedgerEntry.side == "credit"
            )
        )
        if (credits or 0) != t.amount_minor:
            v.append(f"fee + share != gross for {t.workload_id}")
    billed = {f"tgtg-usage-{t.id}": t.amount_minor for t in usages if t.amount_minor > 0}
    sent = {k: int(e["payload"]["value"]) for k, e in fake.meter_events.items()}
    if sent != billed:
        v.append(f"meter events {len(sent)} != billed usages {len(billed)} (or values differ)")
    intents = s.scalars(select(PayoutIntent)).all()
    by_wallet: Counter[str] = Counter()
    for p in intents:
        res.final_statuses[p.status] += 1
        by_wallet[p.wallet_address] += 0
        if p.status not in ("posted", "voided", "rejected", "needs_review"):
            v.append(f"payout {p.id} left {p.status}")
        finals = s.scalars(
            select(ChainSubmission).where(
                ChainSubmission.ref_id == p.id, ChainSubmission.status == "finalized"
            )
        ).all()
        attempts = s.scalar(
            select(func.max(ChainSubmission.attempt)).where(ChainSubmission.ref_id == p.id)
        )
        res.resigned += max(0, (attempts or 1) - 1)
        if len(finals) > 1 or (p.status == "posted") != (len(finals) == 1):
            v.append(f"payout {p.id} has {len(finals)} finalized transfers, status {p.status}")
        if p.status == "posted":
            by_wallet[p.wallet_address] += p.lamports
            res.payouts_posted += 1
    for wallet, lamports in by_wallet.items():
        on_chain = await rail.chain.balance(wallet)
        if on_chain != lamports:
            v.append(f"wallet {wallet[:8]} holds {on_chain}, posted payouts say {lamports}")
    for a in tb["accounts"]:
        if a["account"].startswith("provider_payable:") and a["balance"] < 0:
            v.append(f"{a['account']} is negative")
    for r in s.scalars(select(CarbonReceipt)).all():
        ok = await verify_receipt(session=s, rail=rail, receipt_id=r.id)
        if not ok.valid:
            v.append(f"receipt {r.id} does not verify: {ok.checks}")
    if len(s.scalars(select(CarbonReceipt)).all()) != len(ids):
        v.append("a workload has no receipt")


def run(
    seeds: int,
    *,
    quiet: bool = False,
    first_seed: int = 0,
    points: tuple[str, ...] = FAULT_POINTS,
    chain_class: type[LocalChain] = LocalChain,
) -> list[RunResult]:
    """Run every crash point for `seeds` seeds; return the results."""
    results = []
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmpdir:
        tmp = Path(tmpdir)
        template = _template(tmp)
        for seed in range(first_seed, first_seed + seeds):
            for point in points:
                r = run_one(seed, point, template, tmp, chain_class=chain_class)
                results.append(r)
                if r.violations and not quiet:
                    print(f"seed {seed} point {point}: {r.violations}")
    return results


def main() -> int:
    """Run the harness and print the figures; exit 1 on any violation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    started = time.perf_counter()
    results = run(args.seeds, quiet=args.quiet, first_seed=args.first_seed)
    bad = [r for r in results if r.violations]
    print(f"crash points: {len(FAULT_POINTS)} ({', '.join(FAULT_POINTS)})")
    print(f"seeds: {args.seeds}  runs: {len(results)}  time: {time.perf_counter() - started:.0f} s")
    print(f"crashes injected: {sum(r.crashes for r in results)}")
    print(
        "stripe calls failed after retries (then recovered):",
        sum(r.stripe_failures for r in results),
    )
    print(
        f"payouts posted: {sum(r.payouts_posted for r in results)}  re-signed after expiry: "
        f"{sum(r.resigned for r in results)}"
    )
    statuses: Counter[str] = Counter()
    for r in results:
        statuses.update(r.final_statuses)
    print(f"payout intents by final status: {dict(sorted(statuses.items()))}")
    print(f"runs with a violation: {len(bad)}  (double/lost charges or payouts, balance, receipts)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
