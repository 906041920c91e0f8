"""Load-test the API: N concurrent clients against a server on 127.0.0.1; report p50/p99 and errors.

By default it starts `tgtg serve` on a free port with a fresh data directory (rate limit raised,
background loop off, so the figures measure the server, not the policy) and stops it afterwards.
`--url` targets a running server instead. The run is bounded by `--requests` and `--seconds`.

    .venv/bin/python scripts/load_test.py                 # 50 clients, 2,000 requests
    .venv/bin/python scripts/load_test.py --url http://127.0.0.1:7860 --clients 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

PATHS = (
    "/api/v1/health",
    "/api/v1/nodes",
    "/api/v1/workloads?limit=50",
    "/api/v1/analytics/zones",
    "/api/v1/analytics/dashboard",
    "/api/v1/analytics/carbon_report",
    "/api/v1/alerts?limit=20",
    "/api/v1/incidents?limit=10",
)
GOAL_P99_MS = 200.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start `tgtg serve` on a free loopback port; return the process and its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "TGTG_DATA_DIR": str(data_dir),
        "TGTG_LOOP_INTERVAL_S": "0",
        "TGTG_RATE_LIMIT_PER_MINUTE": "10000000",
        "TGTG_RATE_LIMIT_BURST": "10000000",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    tgtg = Path(sys.executable).with_name("tgtg")
    proc = subprocess.Popen(  # noqa: S603 - our own console script
        [str(tgtg), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"tgtg serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("tgtg serve did not answer within 180 s")


class Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams (a light load generator)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        """Send a GET and read the whole response; return its status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
        }
        if "content-length" not in headers:
            raise ValueError(f"response to {path!r} has no Content-Length")
        await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status

    async def close(self) -> None:
        """Close the connection (it reopens on the next request)."""
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def run_load(
    url: str, *, clients: int, requests: int, seconds: float, warmup: int = 0
) -> dict[str, object]:
    """Send `requests` GETs from `clients` concurrent connections (stopping after `seconds`).

    Each client first sends `warmup` requests (one per path, not timed, errors still count).
    """
    parsed = httpx.URL(url)
    host, port = parsed.host, parsed.port or 80
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    issued = 0
    deadline = time.monotonic() + seconds

    ready = 0
    all_ready = asyncio.Event()

    async def one(conn: Connection, path: str) -> None:
        start = time.perf_counter()
        try:
            statuses[str(await conn.get(path))] += 1
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] += 1
            await conn.close()
        latencies.append((time.perf_counter() - start) * 1000)

    async def client(index: int) -> None:
        nonlocal issued, ready
        conn = Connection(host, port)
        try:
            for path in PATHS[: min(warmup, len(PATHS))]:
                await one(conn, path)
            ready += 1
            if ready == clients:
                all_ready.set()
            await all_ready.wait()
            while issued < requests and time.monotonic() < deadline:
                path = PATHS[(issued + index) % len(PATHS)]
                issued += 1
                await one(conn, path)
        finally:
            await conn.close()

    httpx.get(url + "/api/v1/health", timeout=10).raise_for_status()
    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await all_ready.wait()
    # Measured from when every client has its connection open and warmed up.
    latencies.clear()
    warm_statuses = dict(statuses)
    statuses.clear()
    began = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    errors = sum(n for status, n in [*statuses.items(), *warm_statuses.items()] if status != "200")

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1)

    return {
        "clients": clients,
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": round(ordered[-1], 1),
        "mean_ms": round(statistics.fmean(ordered), 1),
        "errors": errors,
        "statuses": dict(statuses),
        "warmup_statuses": warm_statuses,
        "goal_p99_ms": GOAL_P99_MS,
        "goal_met": errors == 0 and pct(99) <= GOAL_P99_MS,
    }


def main() -> int:
    """Parse arguments, run the load and print the figures as JSON; exit 1 on any error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Target a running server instead of starting one.")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--warmup",
        type=int,
        default=len(PATHS),
        help="Untimed requests per client before measuring (0: none).",
    )
    args = parser.parse_args()
    if args.url and not args.url.startswith(("http://127.0.0.1", "http://localhost")):
        parser.error(f"--url {args.url!r}: load tests run against 127.0.0.1 only")
    proc = None
    with tempfile.TemporaryDirectory(prefix="tgtg-load-") as tmp:
        url = args.url
        if url is None:
            proc, url = start_server(Path(tmp))
        try:
            result = asyncio.run(
                run_load(
                    url,
                    clients=args.clients,
                    requests=args.requests,
                    seconds=args.seconds,
                    warmup=args.warmup,
                )
            )
        finally:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
    print(json.dumps(result, indent=2))  # noqa: T201 - script output
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
