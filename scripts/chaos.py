"""Chaos run: mixed concurrent clients against a live server, then check the invariants. JSON out.

For each store (the embedded SQLite default and PostgreSQL on 127.0.0.1:5432, a fresh schema)
it starts `tgtg serve` on a free loopback port with a fresh data directory and runs, at once:
REST clients that submit, route, reroute and read workloads, a client that completes and settles
work (bills, pays gamers, mints receipts), spike injections that make reroutes worthwhile, and
`tgtg chat` processes that recommend and route through the broker agent on the same database.
Every client stops after `--requests` calls or `--seconds`, whichever comes first.

Then it checks, from the database:
- allocated GPUs equal the GPUs of routed/running workloads and fit every node's capacity;
- one decision per move: at most one `routed` decision per workload, and the `rerouted`
  decisions of a workload equal its `reroute_count`, which is at most 5;
- a recommendation books at most one workload, and every chat approval is recorded once;
- the ledger's trial balance is 0;
- posted payouts equal the provider share booked for gamer-node work (less what awaits approval
  or review), and every payout intent of a billed workload matches its usage share;
- no request answered 5xx.

    .venv/bin/python scripts/chaos.py                       # both stores, 8 clients each
    .venv/bin/python scripts/chaos.py --stores sqlite --clients 12 --requests 60
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from store import ledger, repo  # noqa: E402
from store.db import make_engine, make_session_factory  # noqa: E402
from store.ledger import PayoutIntent, Transaction  # noqa: E402
from store.models import ComputeNode, RoutingDecision, Workload, WriteApproval  # noqa: E402
from tools.money.payouts import workload_payable  # noqa: E402
from tools.money.usage import billed_seconds, gross_minor, split_fee  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KEY = "chaos-" + secrets.token_hex(8)
ZONES = ["FR", "DE", "ES", "PT", "NL", "BE", "GB", "IT"]
CHAT = (  # each turn's arguments after `tgtg chat`; approving twice must book once
    ["Where should I run a 2xH100 fine-tune for 3 hours, EU only?"],
    ["route it"],
    ["--approve", "--by", "chaos"],
    ["--approve", "--by", "chaos"],
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(db_url: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TGTG_DATABASE_URL": db_url,
        "TGTG_DATA_DIR": str(data_dir),
        "TGTG_API_KEY": KEY,
        "TGTG_CONSOLE_AUTH": "chaos:" + secrets.token_hex(8),
        "TGTG_LOOP_INTERVAL_S": "0",
        "TGTG_RATE_LIMIT_PER_MINUTE": "10000000",
        "TGTG_RATE_LIMIT_BURST": "10000000",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start `tgtg serve` on a free loopback port; return the process and its base URL."""
    port = _free_port()
    tgtg = Path(sys.executable).with_name("tgtg")
    proc = subprocess.Popen(  # noqa: S603 - our own console script
        [str(tgtg), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise SystemExit(f"tgtg serve exited with {proc.returncode}: {err}")
        try:
            if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise SystemExit("tgtg serve did not answer within 180 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


class Tally:
    """Counts of responses by (action, status class), shared by client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.server_errors: list[str] = []

    def add(self, action: str, response: httpx.Response) -> None:
        """Record one response."""
        with self.lock:
            self.counts[f"{action} {response.status_code // 100}xx"] += 1
            if response.status_code >= 500:
                self.server_errors.append(f"{action}: {response.status_code} {response.text[:200]}")


def rest_client(url: str, seed: int, requests: int, until: float, tally: Tally) -> None:
    """Submit, route, reroute and read workloads; route some shared ones on purpose."""
    rng = random.Random(seed)
    headers = {"X-API-Key": KEY}
    mine: list[str] = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for _ in range(requests):
            if time.monotonic() > until:
                return
            action = rng.choice(["submit", "route", "route", "reroute", "read", "route_shared"])
            if action == "submit" or not mine:
                body = {
                    "org_id": "acme-ai",
                    "name": f"chaos-{seed}",
                    "gpu_count": rng.choice([1, 2, 4, 8]),
                    "duration_hours": rng.choice([1, 2, 4]),
                    "allowed_zones": rng.sample(ZONES, 3),
                }
                r = client.post("/api/v1/workloads", json=body)
                tally.add("submit", r)
                if r.status_code == 201:
                    mine.append(r.json()["id"])
            elif action == "route":
                r = client.put(f"/api/v1/workloads/{rng.choice(mine)}/route")
                tally.add("route", r)
            elif action == "route_shared":
                # Everyone races for the same few workloads: one route each, the rest 409.
                shared = client.get("/api/v1/workloads", params={"status": "pending", "limit": 3})
                tally.add("read", shared)
                for w in shared.json() if shared.status_code == 200 else []:
                    tally.add("route", client.put(f"/api/v1/workloads/{w['id']}/route"))
            elif action == "reroute":
                r = client.put(f"/api/v1/workloads/{rng.choice(mine)}/reroute")
                tally.add("reroute", r)
            else:
                tally.add("read", client.get("/api/v1/nodes"))


def completer(url: str, seed: int, requests: int, until: float, tally: Tally) -> None:
    """Complete and settle a third of the placed work now and then (bill, pay, mint receipts)."""
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=300) as client:
        for _ in range(requests):
            if time.monotonic() > until:
                return
            time.sleep(1.0)
            placed = client.get("/api/v1/workloads", params={"status": "routed", "limit": 100})
            tally.add("read", placed)
            ids = [w["id"] for w in placed.json()] if placed.status_code == 200 else []
            some = rng.sample(ids, len(ids) // 3)
            if some:
                r = client.post("/api/v1/demo/simulate/complete", json={"workload_ids": some})
                tally.add("complete", r)


def spiker(url: str, requests: int, until: float, tally: Tally) -> None:
    """Inject carbon spikes and grid cycles so that reroutes become worthwhile."""
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=120) as client:
        for _ in range(requests):
            if time.monotonic() > until:
                return
            time.sleep(0.7)
            tally.add("spike", client.post("/api/v1/demo/simulate/reroute"))


def chatter(env: dict[str, str], until: float, tally: Tally, n: int) -> None:
    """Run `tgtg chat` turns (recommend, book, approve twice) as separate processes."""
    tgtg = Path(sys.executable).with_name("tgtg")
    for i in range(n):
        if time.monotonic() > until:
            return
        thread = f"chaos-{os.getpid()}-{threading.get_ident()}-{i}"
        for turn in CHAT:
            done = subprocess.run(  # noqa: S603 - our own console script
                [str(tgtg), "chat", *turn, "--thread", thread, "--json"],
                env=env,
                capture_output=True,
                timeout=300,
                check=False,
            )
            with tally.lock:
                tally.counts[f"chat exit {done.returncode}"] += 1
                if done.returncode not in (0, 2):
                    tally.server_errors.append(f"chat: {done.stderr.decode()[-300:]}")


def check(db_url: str, schema: str | None) -> dict[str, Any]:
    """Check the invariants in the database; return counts and violations."""
    engine = make_engine(db_url, schema=schema)
    sessions = make_session_factory(engine)
    violations: list[str] = []
    with sessions() as s:
        held = repo.allocated_gpus_by_node(session=s)
        for node in s.scalars(select(ComputeNode)):
            if node.allocated_gpus != held.get(node.id, 0):
                violations.append(
                    f"{node.id}: allocated {node.allocated_gpus} != held {held.get(node.id, 0)}"
                )
            if node.allocated_gpus + node.reserved_gpus > node.gpu_count:
                violations.append(f"{node.id}: {node.allocated_gpus} allocated over capacity")
        routed = Counter(
            s.scalars(
                select(RoutingDecision.workload_id).where(RoutingDecision.outcome == "routed")
            )
        )
        violations += [f"{w}: {n} routed decisions" for w, n in routed.items() if n > 1]
        moves = Counter(
            s.scalars(
                select(RoutingDecision.workload_id).where(RoutingDecision.outcome == "rerouted")
            )
        )
        workloads = s.scalars(select(Workload)).all()
        for w in workloads:
            if moves.get(w.id, 0) != w.reroute_count:
                violations.append(f"{w.id}: {moves.get(w.id, 0)} moves, count {w.reroute_count}")
            if w.reroute_count > 5:
                violations.append(f"{w.id}: rerouted {w.reroute_count} times")
        booked = Counter(w.recommendation_id for w in workloads if w.recommendation_id)
        violations += [f"{r}: {n} workloads" for r, n in booked.items() if n > 1]
        calls = Counter(a.tool_call_id for a in s.scalars(select(WriteApproval)))
        violations += [f"approval of {c} recorded {n} times" for c, n in calls.items() if n > 1]
        tb = ledger.trial_balance(session=s)["trial_balance"]
        if tb != 0:
            violations.append(f"trial balance {tb}")
        billed = {
            t.workload_id: t
            for t in s.scalars(select(Transaction).where(Transaction.kind == "usage"))
        }
        for w in workloads:
            txn = billed.get(w.id)
            if txn is None or w.node_id is None:
                continue
            node = s.get(ComputeNode, w.node_id)
            seconds = billed_seconds(w.duration_hours)
            gross = gross_minor(w.gpu_count, node.price_per_gpu_hour_minor if node else 0, seconds)
            if txn.amount_minor != gross:
                violations.append(f"{w.id}: billed {txn.amount_minor}, hours say {gross}")
            payable = workload_payable(session=s, workload_id=w.id)
            share = split_fee(gross)[1]
            if node is not None and node.kind == "gamer" and (payable or ("", -1))[1] != share:
                violations.append(f"{w.id}: payable {payable}, provider share {share}")
        for p in s.scalars(select(PayoutIntent)):
            payable = workload_payable(session=s, workload_id=p.workload_id)
            if payable is None or p.amount_minor != payable[1]:
                violations.append(f"payout {p.id}: {p.amount_minor} != payable {payable}")
        payable = sum(
            ledger.account_balance(session=s, account=a)
            for a in s.scalars(
                select(ledger.LedgerEntry.account_id)
                .where(ledger.LedgerEntry.account_id.like("provider_payable:%"))
                .distinct()
            )
        )
        open_payouts = int(
            s.scalar(
                select(func.coalesce(func.sum(PayoutIntent.amount_minor), 0)).where(
                    PayoutIntent.status.in_(("awaiting_approval", "needs_review", "approved"))
                )
            )
            or 0
        )
        if payable < 0:
            violations.append(f"provider payable {payable} < 0")
        report = {
            "workloads": len(workloads),
            "by_status": dict(Counter(w.status for w in workloads)),
            "routed_decisions": sum(routed.values()),
            "reroutes": sum(moves.values()),
            "chat_bookings": len(booked),
            "payouts_posted": s.scalar(
                select(func.count())
                .select_from(PayoutIntent)
                .where(PayoutIntent.status == "posted")
            ),
            "provider_payable_minor": payable,
            "payouts_open_minor": open_payouts,
            "trial_balance": tb,
        }
    engine.dispose()
    return {**report, "violations": violations}


def run_store(store: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the chaos clients against one store and check it."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"tgtg-chaos-{store}-"))
    schema: str | None = None
    if store == "sqlite":
        db_url = f"sqlite:///{data_dir / 'tgtg.db'}"
        served_url = db_url
    else:
        schema = "chaos_" + secrets.token_hex(4)
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        db_url = PG_URL
        served_url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    env = _env(served_url, data_dir)
    proc, url = start_server(env)
    tally = Tally()
    started = time.monotonic()
    until = started + args.seconds
    threads = [
        threading.Thread(target=rest_client, args=(url, i, args.requests, until, tally))
        for i in range(args.clients)
    ]
    threads.append(threading.Thread(target=completer, args=(url, 99, args.requests, until, tally)))
    threads.append(threading.Thread(target=spiker, args=(url, args.requests, until, tally)))
    threads += [
        threading.Thread(target=chatter, args=(env, until, tally, args.chats))
        for _ in range(args.chat_clients)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=300) as client:
            tally.add("complete", client.post("/api/v1/demo/simulate/complete", json={}))
    finally:
        stop_server(proc)
    result = check(db_url, schema)
    if schema is not None:
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    violations = result.pop("violations") + tally.server_errors
    return {
        "store": store,
        "clients": args.clients + 2 + args.chat_clients,
        "requests": sum(v for k, v in tally.counts.items() if not k.startswith("chat")),
        "responses": dict(sorted(tally.counts.items())),
        "seconds": round(time.monotonic() - started, 1),
        **result,
        "violations": len(violations),
        "violation_examples": violations[:10],
    }


def main() -> None:
    """Parse arguments, run each store, print JSON; exit 1 on any violation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--clients", type=int, default=8, help="REST clients per store")
    parser.add_argument("--requests", type=int, default=40, help="calls per client at most")
    parser.add_argument("--seconds", type=float, default=90.0, help="time limit per store")
    parser.add_argument("--chat-clients", type=int, default=2, help="`tgtg chat` loops per store")
    parser.add_argument("--chats", type=int, default=2, help="conversations per chat loop")
    args = parser.parse_args()
    results = [run_store(store.strip(), args) for store in args.stores.split(",")]
    print(json.dumps({"runs": results}, indent=2, default=int))
    if any(r["violations"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
