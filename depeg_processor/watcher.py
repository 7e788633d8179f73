"""The receipt watcher: a background thread that settles the transactions in flight.

Each round reads the in-flight records (the work list the sender keeps; no key scans). When the
head is due (see `head.py`: about once a block while transactions are in flight, every
CHAIN_IDLE_POLL_INTERVAL otherwise) it first asks the node for the latest block (with the
wallet's balance and nonce while busy or when their refresh is due) and then, when blocks
arrived, for the receipts of the unmined transactions: every receipt of each new block in one
`eth_getBlockReceipts` call where the node serves it and that takes fewer calls, else the
receipts of every hash a record's replacement chain produced. The head is asked before the
records are read, so a record not yet seen was broadcast after that head: the blocks up to it
never need looking at again (`_scanned`). Then it:
- purges an application whose transaction has the required confirmations, after checking that
  the receipt's block is still the canonical one at its height (a reorganised block puts the
  application back to waiting);
- settles a reverted transaction (re-simulated for its reason: dead letter, or back to the
  queue if the product was paused);
- resends the stored signed bytes of the transactions the node no longer knows;
- replaces the transactions stuck for `stuck_blocks` blocks or `stuck_seconds` seconds with the
  same nonces and higher fees, up to the cap, and says so in the shared state when the cap is
  reached.
Resends and replacements go out as batches, so a round stays short with hundreds in flight; the
heartbeat is renewed between a round's phases. Only the holder of the wallet's lease sends or
replaces, and its writes are fenced by the lease.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import redis

from . import errors
from .chain import Chain, NodeUnavailable
from .clock import SYSTEM, Clock
from .config import Settings
from .errors import FenceLost
from .fees import raised
from .head import Head, HeadSchedule
from .inbound.stream import StreamQueue
from .lease import Fence
from .metrics import Metrics, null_metrics
from .records import SpendLedger, TxRecord, TxRecords
from .sender import LeaseLost, Sender
from .state import SharedState

log = logging.getLogger(__name__)

MAX_REISSUES = 3  # an application whose transactions revert on chain but simulate fine


@dataclasses.dataclass(frozen=True)
class Mined:
    """Where a transaction of a record was mined, as its receipt said."""

    tx_hash: str
    block: int
    block_hash: str
    status: int
    gas_used: int
    seen_at_head: int
    gas_price: int = 0

    @property
    def cost(self) -> int:
        return self.gas_used * self.gas_price


@dataclasses.dataclass
class Waiting:
    """When a record was first seen unmined (or last looked up at the node)."""

    head: int
    since: float
    checked: bool = False


@dataclasses.dataclass(frozen=True)
class WatcherConfig:
    """The watcher's numbers, from the settings."""

    min_confirmations: int
    poll_interval: float  # the shortest time between two looks at the head
    stuck_blocks: int
    stuck_seconds: float
    idle_interval: float | None = None  # the head's pace with nothing in flight (poll_interval)

    @classmethod
    def from_settings(cls, settings: Settings) -> WatcherConfig:
        return cls(
            min_confirmations=settings.min_confirmations,
            poll_interval=settings.receipt_poll_interval,
            stuck_blocks=settings.stuck_blocks,
            stuck_seconds=settings.stuck_timeout,
            idle_interval=settings.idle_poll_interval,
        )


@dataclasses.dataclass
class Tracked:
    """Everything this watcher knows about one transaction in flight: its stored record, where
    it was mined, since when it waits unmined, and why it is stuck. Forgetting a transaction
    is dropping this one value."""

    record: TxRecord
    mined: Mined | None = None
    waiting: Waiting | None = None
    stuck: str | None = None  # the reason it cannot be mined (the fee cap), while it lasts
    stale: bool = False  # the stored record may have changed: read it again


class ReceiptWatcher:
    def __init__(
        self,
        *,
        config: WatcherConfig,
        clock: Clock = SYSTEM,
        chain: Chain,
        records: TxRecords,
        queue: StreamQueue,
        sender: Sender,
        redis_client: redis.Redis,
        state: SharedState,
        stop: threading.Event,
        address: str,
        may_send: Callable[[], bool] = lambda: True,
        fence: Fence | None = None,
        lease_generation: Callable[[], int] = lambda: 0,
        metrics: Metrics | None = None,
        spend: SpendLedger | None = None,
    ) -> None:
        self._chain = chain
        self._records = records
        self._queue = queue
        self._sender = sender
        self._redis = redis_client
        self._state = state
        self._stop = stop
        self._address = address
        self._min_confirmations = config.min_confirmations
        self._poll_interval = config.poll_interval
        self._stuck_blocks = config.stuck_blocks
        self._stuck_seconds = config.stuck_seconds
        self._may_send = may_send
        self._fence = fence
        self._lease_generation = lease_generation
        self._generation: int | None = None  # the lease generation the cache belongs to
        self._metrics = metrics or null_metrics()
        self._spend = spend
        self._clock = clock.now
        self._monotonic = clock.monotonic
        self._sending_since = clock.now()
        self._tracked: dict[str, Tracked] = {}  # by entity id, the transactions in flight
        self._schedule = HeadSchedule(
            min_interval=config.poll_interval,
            idle_interval=(
                config.poll_interval if config.idle_interval is None else config.idle_interval
            ),
            monotonic=clock.monotonic,
        )
        self._busy = False  # transactions of ours in flight at the last read
        self._scanned: int | None = None  # receipts of every block up to it looked at
        self._block_receipts = True  # the node serves eth_getBlockReceipts (until it says not)
        self._gap: tuple[int, Waiting] | None = None  # the chain nonce nothing in flight uses
        self._gap_reason: str | None = None  # the nonce problem, once reported as stuck
        self._was_sending = False
        self._mined_nonce: int | None = None  # the wallet's mined count, as last asked
        self._line_moved: tuple[int, float] | None = None  # (head, monotonic) it last moved

    def step(self) -> int:
        """A round at the schedule's pace: the node is asked only when the head is due."""
        return self.run_once(ask_node=self._schedule.due(busy=self._busy))

    def run_once(self, *, ask_node: bool = True) -> int:
        """One round; returns how many applications it settled (purged or set aside). Without
        `ask_node` (the loop's choice when the head is not due) it only reads Redis."""
        self._state.watcher_beat()
        head = None
        if ask_node:
            try:
                head = self._ask_head()  # before the records are read: see the docstring
            except (NodeUnavailable, errors.TransientError) as error:
                self._node_failed(error)
        try:
            records = self._in_flight()
            backlog = self._queue.backlog()
            self._state.set_non_ack_pending(backlog.own_pending)
            self._metrics.unacknowledged.set(backlog.group_pending)
            self._metrics.own_unacknowledged.set(backlog.own_pending)
            if backlog.lag is not None:
                self._metrics.stream_lag.set(backlog.lag)
            self._state.redis_ok("watcher")
        except redis.RedisError as error:
            self._metrics.redis_error(error)
            self._state.redis_failed(f"{type(error).__name__}: {error}", "watcher")
            log.error("receipt watcher cannot read redis: %s", error)
            return 0
        self._busy = bool(records) and self._may_send()  # a standby settles nothing
        gauges = self._metrics.wallet(self._address)
        gauges.in_flight.set(len(records))
        gauges.oldest_in_flight.set(
            max(0.0, self._clock() - min(r.signed_at for r in records)) if records else 0
        )
        if head is None:
            return 0
        try:
            settled = self._check(records, head)
            self._state.node_ok("watcher")
            return settled
        except (LeaseLost, FenceLost) as error:
            log.warning("receipt watcher: %s; the next holder settles what is in flight", error)
        except (NodeUnavailable, errors.TransientError) as error:
            self._node_failed(error)
        except redis.RedisError as error:
            self._metrics.redis_error(error)
            self._state.redis_failed(f"{type(error).__name__}: {error}", "watcher")
            log.error("receipt watcher cannot write redis: %s", error)
        return 0

    def _node_failed(self, error: Exception) -> None:
        if isinstance(error, NodeUnavailable):
            self._state.node_failed(str(error), "watcher")
            log.error("receipt watcher cannot reach the node: %s", error)
        else:
            log.error("receipt watcher: %s", error)

    def _in_flight(self) -> list[TxRecord]:
        """The records in flight, lowest nonce first. Records are cached: only ids that are new
        (or whose nonce changed, i.e. recorded afresh) are read again; after this process
        (re)gains the lease the cache starts over, since another sender may have replaced -
        also when it lapsed and was gained again between two rounds (a new generation)."""
        sending, generation = self._may_send(), self._lease_generation()
        if sending and (not self._was_sending or generation != self._generation):
            for tracked in self._tracked.values():
                tracked.stale, tracked.waiting = True, None
            self._sending_since = self._clock()
            self._generation = generation
            self._scanned = None  # another sender may have sent since: look at each record
        self._was_sending = sending
        nonces = self._records.inflight_nonces()
        stale = [
            e
            for e, nonce in nonces.items()
            if (t := self._tracked.get(e)) is None or t.stale or t.record.nonce != nonce
        ]
        fresh = self._records.get_many(stale)
        tracked: dict[str, Tracked] = {}
        for entity_id in nonces:
            current, record = self._tracked.get(entity_id), fresh.get(entity_id)
            if record is not None:
                if current is None:
                    current = Tracked(record)
                current.record, current.stale = record, False
            if current is not None and not current.stale:  # a stale one no longer stored: gone
                tracked[entity_id] = current
        self._tracked = tracked  # what is no longer in flight is forgotten with it
        return sorted((t.record for t in tracked.values()), key=lambda record: record.nonce)

    # -- one round -----------------------------------------------------------------------------
    def _check(self, records: list[TxRecord], head: int) -> int:
        self._state.set_in_flight(len(records), head)
        self._gap_reason = None  # said again below while the gap lasts
        if records:
            log.debug("head %s, %s transaction(s) in flight", head, len(records))
        if not self._may_send():  # a standby watches health only: the lease holder settles
            return 0
        self._find_receipts(records, head)
        self._state.watcher_beat()  # a long round shows it is alive between its phases
        self._verify_canonical(records, head)

        unmined, confirmed, reverted = [], [], []
        for record in records:
            mined = self._tracked[record.entity_id].mined
            if mined is None:
                unmined.append(record)
            elif head - mined.block + 1 >= self._min_confirmations:
                (confirmed if mined.status == 1 else reverted).append((record, mined))
        if confirmed:
            self._records.complete_many([(r.entity_id, m.tx_hash) for r, m in confirmed])
            now = self._clock()
            for record, mined in confirmed:
                log.info(
                    "application %s tx %s confirmed (%s confirmations, block %s); purged",
                    record.entity_id,
                    mined.tx_hash,
                    head - mined.block + 1,
                    mined.block,
                )
                self._metrics.confirmed.inc()
                self._metrics.gas_spent.inc(mined.cost)
                if record.enqueued_at is not None:
                    self._metrics.confirm_latency.observe(max(0.0, now - record.enqueued_at))
        self._count_spend(confirmed + reverted, records)
        for record, mined in reverted:
            self._settle_reverted(record, mined)
            self._state.watcher_beat()
        for record, _mined in confirmed + reverted:
            del self._tracked[record.entity_id]
        settled = len(confirmed) + len(reverted)
        if settled:
            self._schedule.refresh_soon()
        self._state.watcher_beat()
        self._look_after_unmined(unmined, head)
        if self._mined_nonce is not None:
            self._check_nonce_gap(unmined, self._mined_nonce, head)
        reasons = {t.stuck for t in self._tracked.values() if t.stuck} | {self._gap_reason}
        self._state.set_stuck("; ".join(sorted(reasons - {None})) or None)
        return settled

    def _check_nonce_gap(self, unmined: list[TxRecord], chain_nonce: int, head: int) -> None:
        """A nonce problem: the wallet's next nonce on chain is used by no transaction in
        flight, so none of those after it can be mined. Once that has lasted `stuck_blocks`
        blocks or `stuck_seconds`, it is reported as stuck (which holds the wallet's reading)
        until the gap is gone."""
        lowest = min((record.nonce for record in unmined), default=None)
        if lowest is None or lowest <= chain_nonce:
            self._gap = None
            return
        now = self._monotonic()
        self._schedule.refresh_soon()  # a gap is judged on a nonce asked with the next head
        if self._gap is None or self._gap[0] != chain_nonce:
            self._gap = (chain_nonce, Waiting(head, now))
        since = self._gap[1]
        if head - since.head >= self._stuck_blocks or now - since.since >= self._stuck_seconds:
            self._gap_reason = (
                f"nonce problem: nonce {chain_nonce} of wallet {self._address} is used by no "
                f"transaction in flight; the {len(unmined)} after it cannot be mined"
            )
            if not since.checked:  # said once per gap
                since.checked = True
                log.error("%s", self._gap_reason)

    def _ask_head(self) -> int:
        """The latest block, with the wallet's balance and nonce when their refresh is due, in
        one batch; the schedule learns the block time from it."""
        refresh = self._busy or self._schedule.refresh_due()  # busy: the line's place prices
        calls = [("eth_getBlockByNumber", ["latest", False])]
        if refresh:
            calls += [
                ("eth_getBalance", [self._address, "latest"]),
                ("eth_getTransactionCount", [self._address, "latest"]),
            ]
        results = self._chain.batch(calls)
        for result in results:
            if isinstance(result, Exception):
                raise result
        head = Head.from_block(results[0])
        self._schedule.asked(head, busy=self._busy, refreshed=refresh)
        if refresh:
            balance, nonce = int(results[1], 16), int(results[2], 16)
            self._state.set_balance(balance)
            gauges = self._metrics.wallet(self._address)
            gauges.balance.set(balance)
            gauges.chain_nonce.set(nonce)
            self._sender.observe_wallet(mined_nonce=nonce, balance=balance)
            if nonce != self._mined_nonce:  # the wallet's line moved (the first look: unknown)
                if self._mined_nonce is not None:
                    self._line_moved = (head.number, self._monotonic())
                self._mined_nonce = nonce
        self._state.node_ok("watcher")
        return head.number

    def _find_receipts(self, records: list[TxRecord], head: int) -> None:
        """Look for the unmined records' transactions in the blocks after `_scanned` up to
        `head`: per block (`eth_getBlockReceipts`) when that takes fewer calls than per hash,
        else per hash. A record not seen before gets its hashes asked one by one."""
        unmined = [r for r in records if self._tracked[r.entity_id].mined is None]
        if self._scanned is not None and self._scanned > head:
            self._scanned = None  # the node went back (a reorg, another node behind it)
        if not unmined:
            self._scanned = head  # records not seen yet are sent after this head
            return
        if self._scanned == head:
            return  # no block since the last look
        first = None if self._scanned is None else self._scanned + 1
        by_hash = {tx_hash: record for record in unmined for tx_hash in record.hashes}
        receipts = None
        if first is not None and self._block_receipts and head - first + 1 < len(by_hash):
            receipts = self._receipts_of_blocks(range(first, head + 1))
        complete = True
        if receipts is None:
            wanted = list(by_hash)
            results = self._chain.batch([("eth_getTransactionReceipt", [h]) for h in wanted])
            receipts = []
            for tx_hash, receipt in zip(wanted, results):
                if isinstance(receipt, Exception):
                    complete = False
                    log.warning(
                        "application %r tx %s: receipt lookup failed: %s",
                        by_hash[tx_hash].entity_id,
                        tx_hash,
                        receipt,
                    )
                elif receipt:
                    receipts.append(receipt)
        for receipt in receipts:
            record = by_hash.get(receipt.get("transactionHash", ""))
            if record is not None and receipt.get("blockNumber") and receipt.get("blockHash"):
                tracked = self._tracked[record.entity_id]
                tracked.mined = Mined(
                    tx_hash=receipt["transactionHash"],
                    block=int(receipt["blockNumber"], 16),
                    block_hash=receipt["blockHash"],
                    status=int(receipt.get("status", "0x1"), 16),
                    gas_used=int(receipt.get("gasUsed", "0x0"), 16),
                    seen_at_head=head,
                    gas_price=int(receipt.get("effectiveGasPrice") or "0x0", 16),
                )
                tracked.waiting = tracked.stuck = None
        self._scanned = head if complete else None

    def _receipts_of_blocks(self, numbers: range) -> list[dict] | None:
        """Every receipt of these blocks, or None when the node could not say (then the caller
        asks per hash; a node without the method is not asked again)."""
        results = self._chain.batch([("eth_getBlockReceipts", [hex(n)]) for n in numbers])
        receipts: list[dict] = []
        for result in results:
            if isinstance(result, Exception) or not isinstance(result, list):
                if (
                    isinstance(result, Exception)
                    and not isinstance(result, NodeUnavailable)
                    and "method" in str(result).lower()
                ):
                    log.info(
                        "the node does not serve eth_getBlockReceipts (%s); asking for "
                        "receipts one by one",
                        result,
                    )
                    self._block_receipts = False
                return None
            receipts.extend(result)
        return receipts

    def _count_spend(self, mined: list[tuple[TxRecord, Mined]], records: list[TxRecord]) -> None:
        """For the spending guard: log what was paid, and publish the last hour's spend plus
        the most the transactions still in flight can cost."""
        if self._spend is None:
            return
        now = self._clock()
        self._spend.add_many([(m.tx_hash, m.cost) for _r, m in mined], now)
        settled = {r.entity_id for r, _m in mined}
        in_flight = sum(r.gas * r.max_fee_per_gas for r in records if r.entity_id not in settled)
        self._state.set_spent_last_hour(self._spend.last_hour(now) + in_flight)

    def _verify_canonical(self, records: list[TxRecord], head: int) -> None:
        """Before a purge, check that each receipt's block is still the chain's block at that
        height; one lookup per block, shared by the transactions in it. A receipt fetched at
        the current head needs none: it came from the canonical chain just now."""
        due = {
            mined.block
            for r in records
            if (mined := self._tracked[r.entity_id].mined)
            and mined.seen_at_head != head
            and head - mined.block + 1 >= self._min_confirmations
        }
        if not due:
            return
        blocks = sorted(due)
        results = self._chain.batch([("eth_getBlockByNumber", [hex(b), False]) for b in blocks])
        canonical = {}
        for number, block in zip(blocks, results):
            if isinstance(block, Exception):
                raise block
            canonical[number] = block.get("hash") if block else None
        for record in records:
            tracked = self._tracked[record.entity_id]
            mined = tracked.mined
            if (
                mined is not None
                and mined.block in canonical
                and canonical[mined.block] != mined.block_hash
            ):
                log.warning(
                    "application %s tx %s: block %s (%s) was reorganised away; waiting again",
                    record.entity_id,
                    mined.tx_hash,
                    mined.block,
                    mined.block_hash,
                )
                tracked.mined = None
                self._scanned = None  # it may be mined again in a block already looked at

    # -- settling ------------------------------------------------------------------------------
    def _settle_reverted(self, record: TxRecord, mined: Mined) -> None:
        """A mined transaction that reverted: the receipt has no reason, so simulate the same
        call now to learn it. A paused product (DP-010) sends the application back to the queue,
        where it waits for reactivation; anything else sets it aside with the reason."""
        try:
            self._chain.call(
                {"from": self._address, "to": self._sender.product, "data": record.data}
            )
            if self._queue.count_reissue(record.entity_id) <= MAX_REISSUES:
                log.warning(
                    "application %s tx %s reverted in block %s but would succeed now "
                    "(state changed since); enqueued again",
                    record.entity_id,
                    mined.tx_hash,
                    mined.block,
                )
                self._sender.requeue(record)
                return
            now = f"it would succeed now, but it reverted on chain {MAX_REISSUES + 1} times"
        except errors.ProductInactive as error:
            log.warning(
                "application %s tx %s reverted in block %s because the product is not "
                "active (%s); enqueued again",
                record.entity_id,
                mined.tx_hash,
                mined.block,
                error,
            )
            self._sender.requeue(record)
            return
        except errors.PermanentError as error:
            now = error.reason
        self._queue.dead_letters.set_aside(
            entity_id=record.entity_id,
            kind="reverted_on_chain",
            application=self._queue.load_application(record.entity_id),
            reason=(
                f"transaction {mined.tx_hash} reverted on chain in block {mined.block} "
                f"(gas used {mined.gas_used}); simulated again: {now}"
            ),
            entry_id=record.stream_entry_id or None,
            entry_fields={"entityId": record.entity_id},
        )
        self._records.forget(record.entity_id)

    # -- unmined: dropped or stuck -------------------------------------------------------------
    def _look_after_unmined(self, unmined: list[TxRecord], head: int) -> None:
        """Resend what the node no longer knows and replace what is stuck, each as a batch:
        however many transactions are due, a round costs a few requests, not one each."""
        now = self._monotonic()
        due = []
        for record in unmined:
            tracked = self._tracked[record.entity_id]
            waiting = tracked.waiting
            if waiting is None:
                waiting = tracked.waiting = Waiting(head, now)
                if record.signed_at < self._sending_since:  # from before this process held
                    due.append(record)  # the lease: look at the node now
                    continue
            if (
                head - waiting.head >= self._stuck_blocks
                or now - waiting.since >= self._stuck_seconds
            ):
                due.append(record)
        if not due:
            return
        known = self._chain.batch([("eth_getTransactionByHash", [r.tx_hash]) for r in due])
        self._state.watcher_beat()
        dropped, stuck = [], []
        waiting_turn = self._waiting_turn(head, now)
        for record, tx in zip(due, known):
            if isinstance(tx, Exception):
                continue
            waiting = self._tracked[record.entity_id].waiting
            if tx is None:
                dropped.append(record)
            elif (
                tx.get("blockNumber") is None
                and (
                    waiting.checked
                    or head - waiting.head >= self._stuck_blocks
                    or now - waiting.since >= self._stuck_seconds
                )
                and not waiting_turn(record)
            ):
                stuck.append(record)  # still pending: re-price it (a mined one needs nothing)
            waiting.head, waiting.since, waiting.checked = head, now, True
        stuck += self._resend(dropped)
        self._state.watcher_beat()
        self._replace(stuck)

    def _waiting_turn(self, head: int, now: float) -> Callable[[TxRecord], bool]:
        """While the wallet's line moves (a nonce was mined within `stuck_blocks` blocks and
        `stuck_seconds`), a pending transaction whose max fee still covers the next block's
        base fee is waiting its turn, not stuck: re-pricing it would gain nothing. One
        priced under that is replaced before its turn comes; when the line stops, everything
        due is re-priced, as a low tip would hold the whole line."""
        moved = self._line_moved
        if (
            moved is None
            or head - moved[0] >= self._stuck_blocks
            or now - moved[1] >= self._stuck_seconds
        ):
            return lambda record: False
        floor = raised(self._sender.fees.current().base_fee)
        return lambda record: record.max_fee_per_gas >= floor

    def _resend(self, records: list[TxRecord]) -> list[TxRecord]:
        """Send again, in one batch, the stored bytes of transactions the node no longer knows;
        returns those it refuses below the base fee, to be replaced at a higher fee."""
        if not records:
            return []
        if not self._may_send():
            raise LeaseLost("the wallet's lease is not held; not resending")
        results = self._chain.batch([("eth_sendRawTransaction", [r.raw]) for r in records])
        to_replace = []
        for record, result in zip(records, results):
            if not isinstance(result, Exception):
                log.warning(
                    "application %s tx %s was unknown to the node; resent (nonce %s)",
                    record.entity_id,
                    record.tx_hash,
                    record.nonce,
                )
            elif isinstance(result, (errors.AlreadyKnown, errors.NonceTooHigh)):
                pass  # a lower nonce is being resent too: it fills the gap
            elif isinstance(result, errors.FeeTooLow):
                log.warning(
                    "application %s tx %s: the node refuses it below the base fee; "
                    "replacing it at a higher fee",
                    record.entity_id,
                    record.tx_hash,
                )
                to_replace.append(record)
            elif isinstance(result, errors.NonceConflict):
                self._nonce_taken(record, result)
            else:
                log.error(
                    "application %s tx %s: resend refused: %s",
                    record.entity_id,
                    record.tx_hash,
                    result,
                )
        return to_replace

    def _nonce_taken(self, record: TxRecord, error: Exception) -> None:
        """The node says the nonce is used. If none of the record's own hashes was mined, the
        nonce went to another transaction and the application goes back on the queue."""
        receipts = self._chain.batch(
            [("eth_getTransactionReceipt", [h]) for h in record.hashes]
            + [("eth_getTransactionCount", [self._address, "latest"])]
        )
        *receipts, mined_count = receipts
        if (
            any(r is not None for r in receipts)
            or isinstance(mined_count, Exception)
            or int(mined_count, 16) <= record.nonce
        ):
            return  # one of ours was mined, a lookup failed, or the nonce is not used: wait
        log.warning(
            "application %s tx %s: nonce %s was taken by another transaction (%s); enqueued again",
            record.entity_id,
            record.tx_hash,
            record.nonce,
            error,
        )
        self._sender.requeue(record)

    def _replace(self, records: list[TxRecord]) -> None:
        """Re-price stuck transactions together (see Sender.replace_many) and point their
        applications at the new hashes."""
        if not records:
            return
        try:
            outcomes = self._sender.replace_many(records)
        except Exception:
            for record in records:  # read the stored records again next round
                self._tracked[record.entity_id].stale = True
            raise
        moved = []
        for record, outcome in zip(records, outcomes):
            tracked = self._tracked[record.entity_id]
            if isinstance(outcome, errors.FeeCapReached):
                current = outcome.current
                tracked.stuck = (
                    f"transactions cannot be mined: max fee per gas is at the MAX_FEE_PER_GAS "
                    f"cap {self._sender.fees.cap} wei"
                )
                log.error(
                    "application %s tx %s is stuck: %s", record.entity_id, current.tx_hash, outcome
                )
            elif isinstance(outcome, TxRecord):
                current = outcome
                tracked.stuck = None
            else:  # InsufficientFunds: the older transaction stands
                log.error(
                    "application %s tx %s: replacement refused: %s",
                    record.entity_id,
                    record.tx_hash,
                    outcome,
                )
                continue
            tracked.record = current
            if current.tx_hash != record.tx_hash:
                moved.append((record.entity_id, current.tx_hash))
        self._queue.set_transaction_hashes(moved, fence=self._fence)
