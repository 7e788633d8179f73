"""A JSON-RPC proxy in front of anvil for fault and cost tests: it counts the calls by method
(batch members one by one), can answer slowly, and can go down (refuse connections) and come
back on the same port.

It also plays a hosted provider's limits, deterministically: a largest batch (`max_batch`), no
batches at all (`batches=False`), and a rate limit in calls a second (`rate_limit`, a token
bucket holding one second's worth; each batch member is one call), answered with HTTP 429 and
`Retry-After: 1` or, with `limit_answer="mixed"`, every other time with a JSON-RPC -32005 error
object as other providers do; `limiting = True` refuses every request so until it is set back.
With `lag` it answers as a node that many blocks behind (`devnet.lagging`); with
`simulation_gas_cap` it refuses an eth_simulateV1 asking more gas, as reth does
(`devnet.simcap`); with `account_slots` it plays a full pool (`devnet.fullpool`). With
`malformed_header` every answer carries one header line without a colon, as some load
balancers add (urllib3 then logs a warning naming the URL). Connections are kept alive, as a
provider's are."""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devnet.fullpool import refusals
from devnet.lagging import lagging_answers, upstream_json
from devnet.nodes import free_port
from devnet.simcap import over_cap

BATCH_TOO_LARGE = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32600, "message": "batch too large"},
}
NO_BATCHES = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32600, "message": "batch requests are not supported"},
}
LIMIT_EXCEEDED = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32005, "message": "limit exceeded: too many requests"},
}


class TokenBucket:
    """`rate` calls a second, up to one second's worth saved up. A request of more calls than
    the bucket holds passes when it is full (and leaves it in debt), so none starves."""

    def __init__(self, rate: float, monotonic: Callable[[], float]) -> None:
        self.rate = rate
        self.tokens = rate
        self._monotonic = monotonic
        self._at = monotonic()

    def take(self, calls: int) -> bool:
        now = self._monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens < min(calls, self.rate):
            return False
        self.tokens -= calls
        return True


class RpcProxy:
    def __init__(
        self,
        upstream: str,
        *,
        port: int | None = None,
        delay: float = 0.0,
        max_batch: int | None = None,
        batches: bool = True,
        batch_refusal_status: int = 200,
        rate_limit: float | None = None,
        limit_answer: str = "http",
        missing_methods: tuple[str, ...] = (),
        lag: int = 0,
        malformed_header: bool = False,
        simulation_gas_cap: int | None = None,
        account_slots: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self.delay = delay
        self.max_batch = max_batch
        self.batches = batches
        self.batch_refusal_status = batch_refusal_status  # 200 (error object), 400 or 413
        self.limit_answer = limit_answer  # "http" (429) or "mixed" (429 and -32005 in turn)
        self.bucket = TokenBucket(rate_limit, monotonic) if rate_limit else None
        self.missing_methods = set(missing_methods)  # answered "method not found", as some nodes
        self.lag = lag  # blocks behind the head it answers from (0: not behind)
        self.malformed_header = malformed_header  # one header line without a colon
        self.limiting = False  # True: every request is refused for the rate limit
        self.simulation_gas_cap = simulation_gas_cap  # refuse bigger eth_simulateV1 (simcap)
        self.simulations_refused = 0
        self.account_slots = account_slots  # a full pool: refuse beyond them (fullpool)
        self.pool_full_refusals = 0
        self.calls: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self.refused_batches = 0  # batches answered as too large / not supported
        self.rate_limited = 0  # requests answered with HTTP 429
        self.rate_limited_json = 0  # requests answered with a -32005 error object
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RpcProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a provider

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, a kept-alive
                # connection waits out the client's delayed ACK (about 40 ms) on every answer
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                refusal = proxy._refusal(body)
                if refusal is not None:
                    self._answer(*refusal)
                    return
                if proxy.delay:
                    time.sleep(proxy.delay)
                try:
                    payload = proxy._forward(body)
                except OSError:
                    self._answer(502, b"bad gateway")
                    return
                self._answer(200, payload)

            def _answer(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if proxy.malformed_header:  # after Content-Length, so the body is still read
                    self._headers_buffer.append(b"X-Balancer trace 7f3a without a separator\r\n")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="rpc-proxy", daemon=True
        )
        self._thread.start()
        return self

    def _forward(self, body: bytes) -> bytes:
        """The node's answer; calls of a missing method are answered here, the rest passed on
        (from an older head, when it lags)."""
        if self.account_slots is not None:
            return self._full_pool(json.loads(body))
        if self.lag:
            answer = lagging_answers(json.loads(body), self.lag, upstream_json(self._upstream))
            return json.dumps(answer).encode()
        message = json.loads(body) if self.missing_methods else None
        members = message if isinstance(message, list) else [message]
        if message is None or not any(
            isinstance(m, dict) and m.get("method") in self.missing_methods for m in members
        ):
            return self._upstream(body)
        kept = [m for m in members if m.get("method") not in self.missing_methods]
        answers = {}
        if kept:
            for answer in json.loads(self._upstream(json.dumps(kept).encode())):
                answers[json.dumps(answer.get("id"))] = answer
        replies = [
            answers.get(json.dumps(m.get("id")))
            or {
                "jsonrpc": "2.0",
                "id": m.get("id"),
                "error": {
                    "code": -32601,
                    "message": f"the method {m.get('method')} does not exist/is not available",
                },
            }
            for m in members
        ]
        return json.dumps(replies if isinstance(message, list) else replies[0]).encode()

    def _full_pool(self, message: object) -> bytes:
        """The node's answers, but a send beyond the account's slots refused (fullpool)."""
        members = message if isinstance(message, list) else [message]
        ask = upstream_json(self._upstream)

        def count(address: str, tag: str) -> int:
            call = {"jsonrpc": "2.0", "id": 0, "method": "eth_getTransactionCount"}
            return int(ask(call | {"params": [address, tag]})["result"], 16)

        refused = refusals(members, self.account_slots or 0, count)
        with self._lock:
            self.pool_full_refusals += len(refused)
        kept = [m for i, m in enumerate(members) if i not in refused]
        answers = iter(ask(kept) if kept else [])
        replies = [refused[i] if i in refused else next(answers) for i in range(len(members))]
        return json.dumps(replies if isinstance(message, list) else replies[0]).encode()

    def _upstream(self, body: bytes) -> bytes:
        request = urllib.request.Request(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def _refusal(self, body: bytes) -> tuple[int, bytes, dict] | None:
        """How a provider with these limits answers instead of the node, or None to pass the
        request on (counted)."""
        try:
            message = json.loads(body)
        except ValueError:
            return None
        batch = isinstance(message, list)
        members = message if batch else [message]
        cap = self.simulation_gas_cap
        refused = None if cap is None or batch else over_cap(message, cap)
        if refused is not None:
            with self._lock:
                self.simulations_refused += 1
            return 200, json.dumps(refused).encode(), {}
        with self._lock:
            if batch and (not self.batches or (self.max_batch and len(members) > self.max_batch)):
                self.refused_batches += 1
                refusal = BATCH_TOO_LARGE if self.batches else NO_BATCHES
                return self.batch_refusal_status, json.dumps(refusal).encode(), {}
            if self.limiting or (self.bucket is not None and not self.bucket.take(len(members))):
                refused = self.rate_limited + self.rate_limited_json
                if self.limit_answer == "mixed" and refused % 2 == 1:
                    self.rate_limited_json += 1
                    return 200, json.dumps(LIMIT_EXCEEDED).encode(), {}
                self.rate_limited += 1
                return 429, json.dumps(LIMIT_EXCEEDED).encode(), {"Retry-After": "1"}
            self.requests += 1
            for member in members:
                method = member.get("method", "?") if isinstance(member, dict) else "?"
                self.calls[method] += 1
        return None

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests = 0

    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def stop(self) -> None:
        """Go down: the port refuses connections until `start()` again, and the connections
        kept alive are cut."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> RpcProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
