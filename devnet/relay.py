"""A private relay in front of anvil, as Flashbots Protect or MEV Blocker's no-revert endpoint
promise to be: a send-only JSON-RPC endpoint whose transactions never reach the public pool,
are included only where they succeed, and are dropped, costing nothing, after `max_blocks`.

The relay makes the blocks: it turns anvil's automine off and, at each `mine()` (every
`block_time` seconds in a thread of its own, or called by a test), first mines the public
block (what anvil's pool holds, ordered by tip), then includes what it holds in a block of its
own, as much as the block's gas limit takes: per sender, in nonce order from its next nonce,
each simulated (`eth_simulateV1`, one after another on top of the public block) and kept only
if it succeeds, every later nonce of its sender waiting behind one that does not. Should one
still revert (a public transaction reached anvil in between), the block is taken back
(`evm_snapshot`/`evm_revert`) and that public transaction sent again: a transaction of the
relay's never stays mined with status 0.

It answers `eth_sendRawTransaction` with the hash (a held transaction sent again, or its
replacement for the same nonce, too), `eth_getTransactionByHash` with null for what it holds
(the public node does not know it), `eth_chainId`, and refuses everything else: reads go to
another endpoint. `calls` counts the methods asked; `received`, `included`, `dropped` what
became of the transactions, `held` what it holds now.
"""

from __future__ import annotations

import collections
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import rlp

from devnet.nodes import free_port
from devnet.rawtx import Held, decode

REFUSED = {"code": -32601, "message": "the method is not available on this send-only endpoint"}


class Relay:
    """The relay on `port` in front of the anvil at `upstream`."""

    def __init__(
        self,
        upstream: str,
        *,
        port: int | None = None,
        block_time: float | None = None,
        max_blocks: int = 25,
    ) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self.block_time = block_time  # None: blocks only when `mine()` is called
        self.max_blocks = max_blocks  # blocks a transaction waits before it is dropped
        self.calls: collections.Counter[str] = collections.Counter()
        self.received = 0
        self.included: list[str] = []  # hashes, in the order they were mined
        self.dropped: list[str] = []
        self.blocks = 0  # mine() calls so far
        self.errors: list[str] = []  # what failed in the block thread
        self._held: dict[tuple[str, int], Held] = {}
        self._lock = threading.Lock()  # the counters and what is held
        self._mining = threading.Lock()  # one mine() at a time
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def holds(self, tx_hash: str) -> bool:
        with self._lock:
            return any(h.hash == tx_hash for h in self._held.values())

    # the endpoint

    def answer(self, message: Any) -> Any:
        """The answer to a JSON-RPC request or batch."""
        if isinstance(message, list):
            return [self._answer_one(m) for m in message]
        return self._answer_one(message)

    def _answer_one(self, member: dict) -> dict:
        method, params = member.get("method", "?"), member.get("params") or []
        reply = {"jsonrpc": "2.0", "id": member.get("id")}
        with self._lock:
            self.calls[method] += 1
        try:
            if method == "eth_sendRawTransaction":
                return reply | {"result": self.accept(params[0])}
            if method == "eth_getTransactionByHash":
                if self.holds(params[0]):
                    return reply | {"result": None}
                return reply | {"result": self._rpc(method, *params)}
            if method == "eth_chainId":
                return reply | {"result": self._rpc(method)}
        except (RelayError, ValueError, IndexError, TypeError, rlp.DecodingError) as error:
            return reply | {"error": {"code": -32000, "message": str(error)}}
        return reply | {"error": REFUSED}

    def accept(self, raw: str) -> str:
        """Hold a raw transaction; its hash. A later one for the same sender and nonce
        replaces it; one whose nonce is used already is refused as a node refuses it."""
        held = decode(raw)
        if held.nonce < self._next_nonce(held.sender):
            raise RelayError("nonce too low")
        with self._lock:
            known = self._held.get((held.sender, held.nonce))
            if known is None or known.hash != held.hash:
                held.since = self.blocks
                self.received += 1
                self._held[(held.sender, held.nonce)] = held
        return held.hash

    # the blocks

    def mine(self) -> list[str]:
        """One block time: the public block, then the relay's own with what succeeds now;
        drops what has waited `max_blocks`. Returns the hashes included."""
        with self._mining:
            self._rpc("evm_mine")
            included = self._include()
            with self._lock:
                self.blocks += 1
                for key, held in list(self._held.items()):
                    if self.blocks - held.since >= self.max_blocks:
                        del self._held[key]
                        self.dropped.append(held.hash)
            return included

    def _include(self) -> list[str]:
        chosen = self._fitting(self._succeeding(self._candidates()))
        if not chosen:
            return []
        snapshot = self._rpc("evm_snapshot")
        for held in chosen:
            self._rpc("eth_sendRawTransaction", held.raw)
        self._rpc("evm_mine")
        receipts = [self._rpc("eth_getTransactionReceipt", h.hash) for h in chosen]
        if all(r is not None and r["status"] == "0x1" for r in receipts):
            with self._lock:
                for held in chosen:
                    self._held.pop((held.sender, held.nonce), None)
                    self.included.append(held.hash)
            return [h.hash for h in chosen]
        self._take_back(snapshot, {h.hash for h in chosen})
        return []

    def _take_back(self, snapshot: str, ours: set[str]) -> None:
        """Undo the relay's block; send again the public transactions it held, and take the
        relay's own out of anvil's pool."""
        block = self._rpc("eth_getBlockByNumber", "latest", False)
        theirs = [
            self._rpc("eth_getRawTransactionByHash", h)
            for h in block["transactions"]
            if h not in ours
        ]
        self._rpc("evm_revert", snapshot)
        for tx_hash in ours:
            self._rpc("anvil_dropTransaction", tx_hash)
        for raw in theirs:
            self._rpc("eth_sendRawTransaction", raw)

    def _candidates(self) -> list[Held]:
        """Per sender, the held transactions from its next nonce on without a gap; those of
        a nonce already used are dropped."""
        with self._lock:
            by_sender = collections.defaultdict(list)
            for held in self._held.values():
                by_sender[held.sender].append(held)
        chosen = []
        for sender, txs in by_sender.items():
            nonce = self._next_nonce(sender)
            for held in sorted(txs, key=lambda h: h.nonce):
                if held.nonce < nonce:
                    self._drop(held)
                elif held.nonce == nonce:
                    chosen.append(held)
                    nonce += 1
        return chosen

    def _succeeding(self, candidates: list[Held]) -> list[Held]:
        """The candidates that succeed one after another on top of the latest block, less
        each that fails and every later nonce of its sender."""
        while candidates:
            calls = [h.call for h in candidates]
            block = {"blockStateCalls": [{"calls": calls}], "validation": False}
            results = self._rpc("eth_simulateV1", block, "latest")[0]["calls"]
            failed = next((h for h, r in zip(candidates, results) if r["status"] != "0x1"), None)
            if failed is None:
                return candidates
            candidates = [
                h for h in candidates if h.sender != failed.sender or h.nonce < failed.nonce
            ]
        return []

    def _fitting(self, chosen: list[Held]) -> list[Held]:
        """What one block takes of `chosen`, by gas limits; a sender's later nonces wait."""
        room = int(self._rpc("eth_getBlockByNumber", "latest", False)["gasLimit"], 16)
        kept, stopped = [], set()
        for held in chosen:
            if held.sender in stopped or int(held.call["gas"], 16) > room:
                stopped.add(held.sender)
            else:
                kept.append(held)
                room -= int(held.call["gas"], 16)
        return kept

    def _drop(self, held: Held) -> None:
        with self._lock:
            if self._held.pop((held.sender, held.nonce), None) is not None:
                self.dropped.append(held.hash)

    def _next_nonce(self, sender: str) -> int:
        return int(self._rpc("eth_getTransactionCount", sender, "latest"), 16)

    def _rpc(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        request = urllib.request.Request(
            self.upstream, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise RelayError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]

    # start and stop

    def start(self) -> Relay:
        self._rpc("anvil_setIntervalMining", 0)
        self._rpc("evm_setAutomine", False)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="relay-http", daemon=True)
        ]
        if self.block_time is not None:
            self._threads.append(threading.Thread(target=self._blocks, name="relay-blocks"))
        for thread in self._threads:
            thread.start()
        return self

    def _blocks(self) -> None:
        while not self._stop.wait(self.block_time):
            try:
                self.mine()
            except (OSError, RelayError) as error:  # a test reads them; the blocks go on
                self.errors.append(repr(error))

    def stop(self) -> None:
        """Stop answering and making blocks; anvil mines every transaction at once again."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(10)
        try:
            self._rpc("evm_setAutomine", True)
        except OSError:
            pass  # the node went first

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RelayError(Exception):
    """A transaction the relay refuses, or an error of the node behind it."""


def _handler(relay: Relay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                payload = json.dumps(relay.answer(json.loads(body))).encode()
            except ValueError:
                payload = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    return Handler
