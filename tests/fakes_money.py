"""Local fakes for the money path: Stripe at the SDK's HTTP layer, a JSON-RPC Solana shim."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import stripe

Fault = str  # "ok" | "drop_before" | "drop_after" | "500" | "429"


def _unflatten(pairs: list[tuple[str, str]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        cur = out
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = value
    return out


@dataclass
class FakeStripe(stripe.HTTPClient):
    """A stateful Stripe fake behind the SDK's pluggable HTTP client.

    Honours what the money path relies on: idempotency-key replay (and a 400 when a key is reused
    with other parameters), meter-event `identifier` de-duplication, and injectable faults:
    `drop_before` (connection error, nothing done), `drop_after` (done, response lost),
    `500`/`429` (refused before execution, nothing stored).
    """

    faults: Callable[[str, str], Fault] = field(default=lambda method, path: "ok")
    customers: dict[str, dict] = field(default_factory=dict)
    meters: dict[str, dict] = field(default_factory=dict)
    meter_events: dict[str, dict] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    executions: int = 0
    injected: int = 0
    name = "fake"

    def __post_init__(self) -> None:
        super().__init__()

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        path = urlsplit(url).path
        key = (headers or {}).get("Idempotency-Key")
        self.requests.append((method, path, key))
        fault = self.faults(method, path)
        self.injected += fault != "ok"
        if fault == "drop_before":
            raise stripe.APIConnectionError("injected: connection reset", should_retry=True)
        if fault in ("500", "429"):
            code = int(fault)
            body = {"error": {"type": "api_error", "message": f"injected {code}"}}
            return json.dumps(body), code, {"Stripe-Should-Retry": "true"}
        params = _unflatten(parse_qsl(post_data or "", keep_blank_values=True))
        fingerprint = hashlib.sha256(
            f"{method} {path} {sorted(params.items())}".encode()
        ).hexdigest()
        if method == "post" and key in self.idempotency:
            seen_fp, body, status = self.idempotency[key]
            if seen_fp != fingerprint:
                err = {
                    "error": {
                        "type": "idempotency_error",
                        "message": f"Keys for idempotent requests can only be used with the same "
                        f"parameters they were first used with. Key {key!r}",
                    }
                }
                return json.dumps(err), 400, {}
            result = (body, status, {"Idempotent-Replayed": "true"})
        else:
            body, status = self._execute(method, path, params)
            if method == "post" and key:
                self.idempotency[key] = (fingerprint, body, status)
            result = (body, status, {})
        if fault == "drop_after":
            raise stripe.APIConnectionError("injected: response lost", should_retry=True)
        return result

    def _execute(self, method: str, path: str, params: dict) -> tuple[str, int]:
        self.executions += 1
        if method == "post" and path == "/v1/customers":
            cid = f"cus_{len(self.customers) + 1:06d}"
            self.customers[cid] = {"id": cid, "object": "customer", **params}
            return json.dumps(self.customers[cid]), 200
        if method == "get" and path == "/v1/billing/meters":
            data = list(self.meters.values())
            return json.dumps({"object": "list", "data": data, "has_more": False, "url": path}), 200
        if method == "post" and path == "/v1/billing/meters":
            if any(m["event_name"] == params["event_name"] for m in self.meters.values()):
                err = {"error": {"type": "invalid_request_error", "message": "event_name in use"}}
                return json.dumps(err), 400
            mid = f"mtr_{len(self.meters) + 1:06d}"
            self.meters[mid] = {
                "id": mid,
                "object": "billing.meter",
                "status": "active",
                "event_name": params["event_name"],
                "display_name": params.get("display_name"),
            }
            return json.dumps(self.meters[mid]), 200
        if method == "post" and path == "/v1/billing/meter_events":
            ident = params["identifier"]
            if ident in self.meter_events:
                err = {
                    "error": {
                        "type": "invalid_request_error",
                        "message": f"An event already exists with identifier {ident}.",
                    }
                }
                return json.dumps(err), 400
            if not any(m["event_name"] == params["event_name"] for m in self.meters.values()):
                err = {"error": {"type": "invalid_request_error", "message": "no such meter"}}
                return json.dumps(err), 400
            event = {
                "object": "billing.meter_event",
                "created": int(params.get("timestamp", 0)),
                "livemode": False,
                **params,
            }
            self.meter_events[ident] = event
            return json.dumps(event), 200
        return json.dumps({"error": {"type": "invalid_request_error", "message": path}}), 404

    def _sleep_time_seconds(self, num_retries: int) -> float:
        return 0.0  # the SDK's own retries, without their back-off wait in tests

    def request_stream(self, method, url, headers, post_data=None, *, _usage=None):
        raise NotImplementedError("streaming is not used by the money path")

    def close(self):
        return None


def random_faults(seed: int, rate: float) -> Callable[[str, str], Fault]:
    """Return a fault plan that fails `rate` of requests with a seeded mix of failures."""
    rng = random.Random(seed)
    kinds = ["drop_before", "drop_after", "500", "429"]

    def plan(method: str, path: str) -> Fault:
        return rng.choice(kinds) if rng.random() < rate else "ok"

    return plan


def stripe_client(fake: FakeStripe, *, max_network_retries: int = 4) -> stripe.StripeClient:
    """Return a real Stripe SDK client (retrying as in production) whose HTTP goes to `fake`."""
    from tools.integrations.stripe import make_stripe_client

    return make_stripe_client(
        "sk_test_fake", http_client=fake, max_network_retries=max_network_retries
    )


class SolanaRpcShim:
    """A JSON-RPC server on 127.0.0.1 backed by an in-process LiteSVM chain.

    Speaks the five methods the payout path uses: getLatestBlockhash, getBlockHeight,
    sendTransaction, getSignatureStatuses and getBalance, with the shapes solana-py parses.
    """

    def __init__(self, chain) -> None:
        import base64
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.chain = chain
        self.calls: list[str] = []
        self.lock = threading.Lock()
        shim = self

        def run(coro):
            import asyncio

            return asyncio.run(coro)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return None

            def do_POST(self):
                with shim.lock:  # one SVM, one request at a time
                    self._handle()

            def _handle(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                method, params = req["method"], req.get("params") or []
                shim.calls.append(method)
                ctx = {"slot": shim.chain.height}
                if method == "getLatestBlockhash":
                    bh = run(shim.chain.latest_blockhash())
                    result = {
                        "context": ctx,
                        "value": {
                            "blockhash": bh.blockhash,
                            "lastValidBlockHeight": bh.last_valid_block_height,
                        },
                    }
                elif method == "getBlockHeight":
                    result = shim.chain.height
                elif method == "sendTransaction":
                    raw = base64.b64decode(params[0])
                    run(shim.chain.send(raw))
                    from solders.transaction import VersionedTransaction

                    result = str(VersionedTransaction.from_bytes(raw).signatures[0])
                elif method == "getSignatureStatuses":
                    value = []
                    for sig in params[0]:
                        state = run(shim.chain.signature_state(sig))
                        if state == "absent":
                            value.append(None)
                            continue
                        err = (
                            None
                            if state == "finalized"
                            else {"InstructionError": [0, {"Custom": 1}]}
                        )
                        value.append(
                            {
                                "slot": ctx["slot"],
                                "confirmations": None,
                                "err": err,
                                "status": {"Ok": None} if err is None else {"Err": err},
                                "confirmationStatus": "finalized",
                            }
                        )
                    result = {"context": ctx, "value": value}
                elif method == "getBalance":
                    result = {"context": ctx, "value": run(shim.chain.balance(params[0]))}
                else:
                    body = {
                        "jsonrpc": "2.0",
                        "id": req["id"],
                        "error": {"code": -32601, "message": f"Method not found: {method}"},
                    }
                    return self._send(body)
                self._send({"jsonrpc": "2.0", "id": req["id"], "result": result})

            def _send(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
