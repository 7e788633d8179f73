"""The receipt watcher: a background thread that settles the transactions in flight.

Each round reads the in-flight records (the work list kept by the sender, no key scans), asks
the node in one batch for the head, the wallet balance and every receipt, then:
- purges an application whose transaction has the required confirmations,
- dead-letters one whose transaction reverted,
- resends the stored signed bytes of a transaction the node no longer knows.
Receipts are fetched afresh each round, so a reorganised block simply puts the application back
to waiting. It also records the health facts the monitor serves.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

import redis

from . import errors
from .application import application_key
from .chain import Chain, NodeUnavailable
from .queue import StreamQueue
from .records import TxRecord, TxRecords
from .state import SharedState

log = logging.getLogger(__name__)

RESEND_AFTER_BLOCKS = 2  # an unmined transaction is looked up at the node after this many blocks
RESEND_AFTER_SECONDS = 15.0  # ... or after this long, for chains that mine no blocks meanwhile


class ReceiptWatcher:
    def __init__(self, *, chain: Chain, records: TxRecords, queue: StreamQueue,
                 redis_client: redis.Redis, state: SharedState, stop: threading.Event,
                 address: str, min_confirmations: int, poll_interval: float,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._chain = chain
        self._records = records
        self._queue = queue
        self._redis = redis_client
        self._state = state
        self._stop = stop
        self._address = address
        self._min_confirmations = min_confirmations
        self._poll_interval = poll_interval
        self._clock = clock
        self._monotonic = monotonic
        self._started_at = clock()
        self._first_seen_unmined: dict[str, tuple[int, float]] = {}

    def run(self) -> None:
        log.info("receipt watcher started (%s confirmations)", self._min_confirmations)
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a bug must not stop the purging for good: log it, go on
                log.exception("receipt watcher round failed")
            self._stop.wait(self._poll_interval)
        log.info("receipt watcher stopped")

    def run_once(self) -> int:
        """One round; returns how many applications it settled (purged or dead-lettered)."""
        self._state.watcher_beat()
        try:
            records = self._records.all()
            self._state.set_non_ack_pending(self._queue.pending_count())
            self._state.redis_ok()
        except redis.RedisError as error:
            self._state.redis_failed(f"{type(error).__name__}: {error}")
            log.error("receipt watcher cannot read redis: %s", error)
            return 0
        try:
            settled = self._check(records)
            self._state.node_ok()
            return settled
        except NodeUnavailable as error:
            self._state.node_failed(str(error))
            log.error("receipt watcher cannot reach the node: %s", error)
        except errors.TransientError as error:
            log.error("receipt watcher: %s", error)
        except redis.RedisError as error:
            self._state.redis_failed(f"{type(error).__name__}: {error}")
            log.error("receipt watcher cannot write redis: %s", error)
        return 0

    def _check(self, records: list[TxRecord]) -> int:
        calls = [("eth_blockNumber", []), ("eth_getBalance", [self._address, "latest"])]
        calls += [("eth_getTransactionReceipt", [record.tx_hash]) for record in records]
        results = self._chain.batch(calls)
        for result in results[:2]:
            if isinstance(result, Exception):
                raise result
        head, balance = int(results[0], 16), int(results[1], 16)
        self._state.set_balance(balance)
        self._state.set_in_flight(len(records), head)
        if records:
            log.debug("head %s, balance %s wei, %s transaction(s) in flight", head, balance,
                      len(records))

        settled = 0
        unmined: list[TxRecord] = []
        for record, receipt in zip(records, results[2:]):
            if isinstance(receipt, Exception):
                log.warning("application %s tx %s: receipt lookup failed: %s",
                            record.entity_id, record.tx_hash, receipt)
                continue
            if receipt is None or receipt.get("blockNumber") is None:
                unmined.append(record)
                continue
            confirmations = head - int(receipt["blockNumber"], 16) + 1
            if confirmations < self._min_confirmations:
                continue
            if int(receipt.get("status", "0x1"), 16) == 1:
                self._records.complete(record.entity_id)
                log.info("application %s tx %s confirmed (%s confirmations, block %s); purged",
                         record.entity_id, record.tx_hash, confirmations,
                         int(receipt["blockNumber"], 16))
            else:
                self._settle_reverted(record, receipt)
            settled += 1
        self._resend_dropped(unmined, head)
        return settled

    def _settle_reverted(self, record: TxRecord, receipt: dict) -> None:
        """A mined transaction that reverted: the receipt has no reason, so simulate the same
        call now to learn it. A paused product (DP-010) sends the application back to the queue,
        where it waits for reactivation; anything else sets it aside with the reason."""
        block = int(receipt["blockNumber"], 16)
        try:
            tx = self._chain.transaction(record.tx_hash) or {}
            self._chain.call({"from": tx.get("from"), "to": tx.get("to"), "data": tx.get("input")})
            now = "it would succeed now"
        except errors.ProductInactive as error:
            log.warning("application %s tx %s reverted in block %s because the product is not "
                        "active (%s); enqueued again", record.entity_id, record.tx_hash, block,
                        error)
            self._queue.reissue(record.entity_id, forget=self._records.key(record.entity_id),
                                inflight_key=self._records.inflight_key)
            return
        except errors.PermanentError as error:
            now = error.reason
        fields = self._redis.hgetall(application_key(record.entity_id))
        self._queue.dead_letter(
            entity_id=record.entity_id, application=fields,
            reason=(f"transaction {record.tx_hash} reverted on chain in block {block} "
                    f"(gas used {int(receipt['gasUsed'], 16)}); simulated again: {now}"),
            entry_id=record.stream_entry_id or None, entry_fields={"entityId": record.entity_id})
        self._records.forget(record.entity_id)

    def _resend_dropped(self, unmined: list[TxRecord], head: int) -> None:
        """Resend, from the stored signed bytes, what the node no longer knows."""
        now = self._monotonic()
        seen = {record.tx_hash: self._first_seen_unmined.get(record.tx_hash) for record in unmined}
        self._first_seen_unmined = {tx: first or (head, now) for tx, first in seen.items()}
        due = []
        for record in unmined:
            first_block, first_time = self._first_seen_unmined[record.tx_hash]
            from_before_start = seen[record.tx_hash] is None and record.signed_at < self._started_at
            if (from_before_start or head - first_block >= RESEND_AFTER_BLOCKS
                    or now - first_time >= RESEND_AFTER_SECONDS):
                due.append(record)
        if not due:
            return
        known = self._chain.batch([("eth_getTransactionByHash", [r.tx_hash]) for r in due])
        for record, tx in zip(due, known):
            self._first_seen_unmined[record.tx_hash] = (head, now)  # look again later
            if tx is None:
                self._resend(record)

    def _resend(self, record: TxRecord) -> None:
        try:
            self._chain.send_raw(bytes.fromhex(record.raw[2:]))
            log.warning("application %s tx %s was unknown to the node; resent (nonce %s)",
                        record.entity_id, record.tx_hash, record.nonce)
        except errors.AlreadyKnown:
            pass
        except errors.NonceConflict as error:
            # Its nonce went to another transaction and this one was never mined: the
            # application goes back on the queue to be sent afresh.
            log.warning("application %s tx %s: nonce %s was taken by another transaction (%s); "
                        "enqueued again", record.entity_id, record.tx_hash, record.nonce, error)
            self._queue.reissue(record.entity_id, forget=self._records.key(record.entity_id),
                                inflight_key=self._records.inflight_key)
        except errors.ProcessorError as error:
            log.error("application %s tx %s: resend refused: %s",
                      record.entity_id, record.tx_hash, error)
