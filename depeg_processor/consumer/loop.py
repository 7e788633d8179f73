"""The main loop of one wallet's consumer: read the stream, settle a batch, repeat.

`run_once()` is one iteration (tests drive it directly); the service repeats it until stopped.
Every wait is `stop.wait(...)`, so a stop request is honoured within a second. Reading follows
the consumer-group recipe: this consumer's own unacknowledged entries first, then new ones.
An error nobody foresaw counts as an attempt of the entries in hand: after `max_deliveries`
in a row they are set aside too, so no entry is held forever.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from .. import errors
from ..errors import LeaseLost
from ..inbound.stream import Entry
from ..wallet.wallet import Wallet
from .batch import BatchHandler
from .config import ConsumerConfig
from .guards import Guards
from .in_hand import InHand

log = logging.getLogger(__name__)

STOP_CHECK_INTERVAL = 1.0  # the longest a blocking read may delay a stop request (seconds)
FIRST_BACKOFF = 0.5  # seconds; doubled per consecutive failure up to ERROR_TIMEOUT


class Consumer:
    """Reads the stream as the consumer of one wallet and hands its applications to it."""

    def __init__(
        self,
        wallet: Wallet,
        *,
        config: ConsumerConfig,
        stop: threading.Event,
        on_beat: Callable[[], None] = lambda: None,
    ) -> None:
        self._wallet = wallet
        self._config = config
        self._stop = stop
        self._on_beat = on_beat
        shared = wallet.ctx.shared
        self._state, self._metrics, self._faults = shared.state, shared.metrics, shared.faults
        self._monotonic = shared.clock.monotonic
        self.in_hand = InHand()
        self.guards = Guards(wallet, config=config, pause=self._pause)
        self._batch = BatchHandler(wallet, config=config, in_hand=self.in_hand)
        claim = config.claim_interval
        self._claim_interval = wallet.lease.ttl if claim is None else claim
        self._claimed_at: float | None = None  # when abandoned entries were last claimed
        self._failures = 0

    @property
    def wallet(self) -> Wallet:
        return self._wallet

    @property
    def idle(self) -> bool:
        """Between batches with nothing in hand (no entry waiting for a retry)."""
        return self.in_hand.idle

    def run_once(self) -> int:
        """One iteration over a batch of entries; returns how many were settled."""
        self._beat()
        reading = False  # from here on an unforeseen error is the entries' (or the read's)
        guards = self.guards
        try:
            if not (guards.hold_lease() and guards.within_spending_limit()):
                return 0
            if not guards.nothing_stuck():
                return 0
            if self.in_hand.idle:
                if not guards.balance_sufficient(working=False):
                    return 0
                room = guards.room()
                if not room:
                    return 0
                self._claim_if_due()
                reading = True
                self.in_hand.keep(self._read(room))
                reading = False
            else:
                self._keep_claimed()
            self._state.redis_ok("processor")
            entries = self.in_hand.entries
            if not entries or self._stop.is_set() or not guards.balance_sufficient(working=True):
                return 0
            reading = True
            result = self._batch.handle(entries)
            self.in_hand.keep(result.retry)
            guards.sent(result.sent)
            if result.problem is None:
                self._state.node_ok("processor")
            self._faults.hit("after-ack")
            if result.problem is not None:
                raise result.problem
            self._state.set_holding(None)
            self._failures = 0
            return len(entries) - len(result.retry)
        except errors.ProductInactive as error:
            guards.hold(
                f"product not active ({error}); retrying in {self._config.error_timeout:.0f}s"
            )
        except LeaseLost as error:
            guards.lease_lost()
            log.warning("%s", error)
        except errors.NodeUnavailable as error:
            self._state.node_failed(str(error), "processor")
            self._retry_later(str(error))
        except errors.TransientError as error:
            self._retry_later(str(error))
        except redis.RedisError as error:
            self._metrics.redis_error(error)
            self._state.redis_failed(f"{type(error).__name__}: {error}", "processor")
            self._retry_later(f"redis: {type(error).__name__}: {error}")
        except Exception as error:  # a bug must not kill the loop nor hold its entries forever
            log.exception("unexpected error; retrying in %.0fs", self._config.error_timeout)
            if reading:
                self._count_unexpected(error)
            self._pause(self._config.error_timeout)
        return 0

    def _beat(self) -> None:
        self._state.processor_beat()
        self._on_beat()

    def _count_unexpected(self, error: Exception) -> None:
        """An unclassified error is an attempt of every entry in hand (each is set aside after
        REDIS_QUEUE_MAX_DELIVERIES in a row). With none in hand the read itself failed: the
        entries it delivered are read again from this consumer's backlog, which raises their
        delivery counts (see _drop_poisonous)."""
        try:
            if self.in_hand.idle:
                self._wallet.queue.rewind()
            for entry in list(self.in_hand.entries):
                self._batch.unforeseen(entry, error)
        except Exception:
            log.exception("could not count the failed attempt; retrying")

    def _keep_claimed(self) -> None:
        """Entries kept for a retry stay this consumer's: their idle time is reset before each
        try, so no replica claims them as abandoned; one claimed already is the claimer's."""
        ours = self._wallet.queue.keep_claimed([e.entry_id for e in self.in_hand.entries])
        for entry in list(self.in_hand.entries):
            if entry.entry_id not in ours:
                log.info("stream entry %s was claimed by another consumer", entry.entry_id)
                self.in_hand.settled(entry)

    def _claim_if_due(self) -> None:
        """On taking the wallet and then every lease TTL, while this wallet can send: claim
        the entries that consumers gone meanwhile left unacknowledged (a wallet on hold claims
        nothing, so it does not keep entries from the others)."""
        now = self._monotonic()
        if (
            self.guards.claim_due
            or self._claimed_at is None
            or now - self._claimed_at >= self._claim_interval
        ):
            self.guards.claim_due = False
            self._claimed_at = now
            self._wallet.queue.claim_abandoned()

    def _read(self, room: int) -> list[Entry]:
        """At most a batch, and no more than the wallet's room under its in-flight cap."""
        queue = self._wallet.queue
        count = min(self._config.read_count, room)
        entries = queue.read(count=count, block_ms=self._block_ms())
        if not queue.reading_backlog:  # new entries (the backlog, if any, was found empty)
            self._metrics.read.inc(len(entries))
        elif entries:
            entries = self._drop_poisonous(entries)
        return entries

    def _drop_poisonous(self, entries: list[Entry]) -> list[Entry]:
        """Entries delivered too often (each delivery a process that died or gave up while
        handling them) are set aside rather than tried forever."""
        queue, limit = self._wallet.queue, self._config.max_deliveries
        counts = queue.delivery_counts([e.entry_id for e in entries])
        keep = []
        for entry in entries:
            delivered = counts.get(entry.entry_id, 0)
            if (
                delivered > limit
                and entry.entity_id
                and self._wallet.records.get(entry.entity_id) is None
            ):
                self._wallet.ctx.dead_letters.set_aside(
                    entity_id=entry.entity_id,
                    kind="too_many_deliveries",
                    reason=f"delivered {delivered} times without being settled "
                    f"(more than REDIS_QUEUE_MAX_DELIVERIES {limit})",
                    application=queue.load_application(entry.entity_id),
                    entry_id=entry.entry_id,
                    entry_fields=entry.fields,
                )
            else:
                keep.append(entry)
        return keep

    def _retry_later(self, reason: str) -> None:
        """Capped exponential backoff over consecutive failures, at most ERROR_TIMEOUT."""
        self._failures += 1
        delay = min(self._config.error_timeout, FIRST_BACKOFF * 2 ** (self._failures - 1))
        log.error("transient failure, retrying in %.1fs: %s", delay, reason)
        self._pause(delay)

    def _pause(self, seconds: float) -> None:
        """Wait without going silent: the heartbeat shows the loop is alive while it holds."""
        deadline = self._monotonic() + seconds
        while not self._stop.is_set():
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return
            self._beat()
            self._stop.wait(min(remaining, STOP_CHECK_INTERVAL))

    def _block_ms(self) -> int:
        return max(1, int(min(self._config.read_block, STOP_CHECK_INTERVAL) * 1000))
