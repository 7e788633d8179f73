"""One wallet's consumer over an in-memory Redis and a node double: the consumer tests drive
`Consumer.run_once` and look at Redis, the node double and the monitor's store."""

from __future__ import annotations

import threading
from collections.abc import Callable

from eth_utils import keccak
from prometheus_client import CollectorRegistry

from depeg_processor import errors
from depeg_processor.clock import Clock
from depeg_processor.metrics import Metrics
from depeg_processor.state import SharedState

from .helpers import ENTITY_ID
from .wallet_harness import ETHER, STREAM, build_consumer, build_wallet

KEY = f"PendingApplication:{ENTITY_ID}"
ESTIMATE = 100_000  # the gas the node estimates for one application
WALL_TIME = 1795830700.0


class Time:
    """The injected clock: `now` seconds on the monotonic clock; the wall clock stands still."""

    def __init__(self) -> None:
        self.now = 500.0

    def monotonic(self) -> float:
        return self.now


class Node:
    """The node as one wallet's consumer sees it. Simulations (`eth_estimateGas`, `eth_call`)
    are answered with `answer` in each one's place when it is set (a revert, a paused product,
    a node error about that call); with `failure` set, each batch of them raises it instead
    (the node unreachable, or a bug). Raw transactions are taken; the balance is `wei`; the
    wallet has mined nothing."""

    def __init__(self, wei: int = 2 * ETHER) -> None:
        self.wei = wei
        self.mined = 0  # the wallet's transactions mined
        self.balance_error: Exception | None = None
        self.balance_calls = 0
        self.answer: errors.ProcessorError | None = None
        self.failure: Exception | None = None
        self.on_simulate: Callable[[], None] | None = None  # called as each batch is simulated
        self.simulations = 0  # calls simulated
        self.sent: list[str] = []  # raw transactions taken, in order
        self.unexpected: list[str] = []  # methods the consumer had no reason to call
        self.head = 100  # the latest block's number
        self.logs: list[dict] = []  # the product's logs (eth_getLogs answers all of them)
        self.transactions: dict[str, dict] = {}  # by hash
        self.receipts: dict[str, dict] = {}  # by hash
        self.pending = 0  # the wallet's pending count over its mined one (eth_getTransactionCount)
        self._lock = threading.Lock()

    def nonce(self, address: str, block: str = "pending") -> int:
        """The wallet's mined count, as the cap asks it when the watcher's may be old."""
        return self.mined

    def balance(self, address: str) -> int:
        self.balance_calls += 1
        if self.balance_error is not None:
            raise self.balance_error
        return self.wei

    def batch(self, calls: list[tuple[str, list]]) -> list:
        calls = list(calls)
        methods = {method for method, _params in calls}
        if methods <= {"eth_estimateGas", "eth_call"}:
            return self._simulate(calls)
        if methods == {"eth_sendRawTransaction"}:
            with self._lock:  # the publishing thread
                self.sent.extend(raw for _method, (raw,) in calls)
            return ["0x" + keccak(hexstr=raw).hex() for _method, (raw,) in calls]
        if methods == {"eth_getTransactionCount"}:  # what is mined, before a replay
            return [hex(self.pending if params[1] == "pending" else 0) for _method, params in calls]
        self.unexpected.extend(sorted(methods))
        raise AssertionError(f"unexpected node calls: {sorted(methods)}")

    def request(self, method: str, params: list):
        """What a used signature's lookup asks (see wallet.applied)."""
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_getLogs":
            return list(self.logs)
        if method == "eth_getTransactionByHash":
            return self.transactions.get(params[0])
        if method == "eth_getTransactionReceipt":
            return self.receipts.get(params[0])
        self.unexpected.append(method)
        raise AssertionError(f"unexpected node call: {method}")

    def _simulate(self, calls: list[tuple[str, list]]) -> list:
        self.simulations += len(calls)
        if self.on_simulate is not None:
            self.on_simulate()
        if self.failure is not None:
            raise self.failure
        if self.answer is not None:
            return [self.answer for _call in calls]
        return [hex(ESTIMATE) if method == "eth_estimateGas" else "0x" for method, _p in calls]


class Harness:
    """A wallet built whole, its lease taken, and its consumer. `calls` lists what the
    consumer handed to the wallet: (entity id, stream entry id) per application."""

    def __init__(
        self,
        client,
        owner: str | None = None,
        *,
        wallet_index: int = 0,
        claim_idle: float = 0.0,
        **config_changes,
    ) -> None:
        self.redis = client
        self.time = Time()
        self.node = Node()
        self.stop = threading.Event()
        clock = Clock(now=lambda: WALL_TIME, monotonic=self.time.monotonic)
        self.clock = clock
        self.state = SharedState(monotonic=clock.monotonic)
        self.metrics = Metrics(CollectorRegistry())
        # wallet_index > 0: another wallet of the pool, with its own keys and consumer name
        keys = {"prefix": f"w{wallet_index}", "lease_key": f"w{wallet_index}:lease"}
        self.wallet = build_wallet(
            client,
            chain=self.node,
            clock=clock,
            state=self.state,
            metrics=self.metrics,
            owner=owner,
            stop=self.stop,
            claim_idle=claim_idle,
            **({**keys, "consumer": f"c{wallet_index}"} if wallet_index else {}),
        )
        self.queue = self.wallet.queue
        self.records = self.wallet.records
        self.lease = self.wallet.lease
        assert self.lease.acquire()  # what the lease keeper does in the service
        self.consumer = build_consumer(
            self.wallet,
            clock=clock,
            state=self.state,
            metrics=self.metrics,
            stop=self.stop,
            **config_changes,
        )
        self.calls: list[tuple[str, str]] = []
        self.finished = 0
        submit, finish = self.wallet.submit, self.wallet.finish

        def recorded_submit(apps, *, entry_ids):
            self.calls.extend((app.entity_id, entry_id) for app, entry_id in zip(apps, entry_ids))
            return submit(apps, entry_ids=entry_ids)

        def counted_finish() -> None:
            self.finished += 1
            finish()

        self.wallet.submit = recorded_submit
        self.wallet.finish = counted_finish

    def run_once(self) -> int:
        return self.consumer.run_once()

    def enqueue(self, fields: dict | None = None, entity_id: str = ENTITY_ID) -> str:
        if fields is not None:
            self.redis.hset(f"PendingApplication:{entity_id}", mapping=fields)
        return self.redis.xadd(STREAM, {"entityId": entity_id})

    def dead_letters(self) -> list[dict]:
        return [fields for _, fields in self.queue.dead_letters.list()]

    def dead_lettered(self) -> dict[str, float]:
        """The metrics' count of applications set aside, by reason."""
        registry = self.metrics.registry
        return {
            sample.labels["reason"]: sample.value
            for metric in registry.collect()
            if metric.name == "depeg_processor_applications_dead_lettered"
            for sample in metric.samples
            if sample.name.endswith("_total")
        }

    def tx_hash(self, entity_id: str = ENTITY_ID) -> str:
        """The hash of the transaction recorded for the application."""
        record = self.records.get(entity_id)
        assert record is not None, f"no transaction recorded for {entity_id}"
        return record.tx_hash

    def close(self) -> None:
        """The last batch out, the publishing thread ended; the node saw only what it should."""
        self.wallet.close()
        assert self.node.unexpected == []
