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
from ..clock import SYSTEM, Clock
from ..errors import LeaseLost
from ..faults import NO_FAULTS, Faults
from ..inbound.stream import Entry
from ..inbound.stream_ids import id_key
from ..metrics import Metrics
from ..state import SharedState
from ..wallet.wallet import Wallet
from .batch import BatchHandler
from .config import ConsumerConfig
from .guards import Guards
from .held import HeldEntries

log = logging.getLogger(__name__)

STOP_CHECK_INTERVAL = 1.0  # the longest a blocking read may delay a stop request (seconds)
FIRST_BACKOFF = 0.5  # seconds; doubled per consecutive failure up to ERROR_TIMEOUT


class Consumer:
    """Reads the stream as the consumer of one wallet and hands its applications to it. It
    tells the monitor's store (`state`) and the metrics what it does."""

    def __init__(
        self,
        wallet: Wallet,
        *,
        config: ConsumerConfig,
        stop: threading.Event,
        state: SharedState,
        metrics: Metrics,
        clock: Clock = SYSTEM,
        faults: Faults = NO_FAULTS,
        on_beat: Callable[[], None] = lambda: None,
    ) -> None:
        self._wallet = wallet
        self._config = config
        self._stop = stop
        self._on_beat = on_beat
        self._state, self._metrics, self._faults = state, metrics, faults
        self._monotonic = clock.monotonic
        self.held = HeldEntries()
        self.guards = Guards(
            wallet, config=config, state=state, monotonic=clock.monotonic, pause=self._pause
        )
        self._batch = BatchHandler(
            wallet, config=config, held=self.held, metrics=metrics, now=clock.now
        )
        claim = config.claim_interval
        self._claim_interval = wallet.lease.ttl if claim is None else claim
        self._claimed_at: float | None = None  # when abandoned entries were last claimed
        self._failures = 0

    @property
    def wallet(self) -> Wallet:
        return self._wallet

    @property
    def idle(self) -> bool:
        """Between batches with no entry held (none waiting for a retry)."""
        return self.held.idle

    def run_once(self) -> int:
        """One iteration over a batch of entries; returns how many were settled."""
        self._beat()
        against_entries = False  # True: an unforeseen error now counts against the entries held
        guards = self.guards
        try:
            if not (
                guards.hold_lease()
                and guards.within_spending_limit()
                and guards.within_revert_budget()
            ):
                return 0
            if not guards.nothing_stuck():
                return 0
            if not self.held.idle:
                self._keep_claimed()
            if self.held.idle or self.held.only_waiting:
                if not guards.balance_sufficient(working=False):
                    return 0
                room = guards.room()
                if not room:
                    return 0
                self._claim_if_due()
                against_entries = True
                self.held.add(self._read(room))
                against_entries = False
            self._state.redis_ok("processor")
            entries = self.held.entries
            if not entries or self._stop.is_set() or not guards.balance_sufficient(working=True):
                return 0
            if not guards.nonces_explained():
                return 0
            against_entries = True
            result = self._batch.handle(entries)
            self.held.keep(result.retry, result.waiting)
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
        except errors.WaitingForRoom as error:  # back-pressure, not trouble
            self._wait_for_room(str(error))
        except errors.TransientError as error:
            self._retry_later(str(error))
        except redis.RedisError as error:
            self._metrics.redis_error(error)
            self._state.redis_failed(f"{type(error).__name__}: {error}", "processor")
            self._retry_later(f"redis: {type(error).__name__}: {error}")
        except Exception as error:  # a bug must not kill the loop nor hold its entries forever
            log.exception("unexpected error; retrying in %.0fs", self._config.error_timeout)
            if against_entries:
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
            if self.held.idle:
                self._wallet.queue.rewind()
            for entry in list(self.held.entries):
                self._batch.unforeseen(entry, error)
        except Exception:
            log.exception("could not count the failed attempt; retrying")

    def _keep_claimed(self) -> None:
        """Entries kept for a retry stay this consumer's: their idle time is reset before each
        try, so no replica claims them as abandoned; one claimed already is the claimer's."""
        ours = self._wallet.queue.keep_claimed([e.entry_id for e in self.held.entries])
        for entry in list(self.held.entries):
            if entry.entry_id not in ours:
                log.info("stream entry %s was claimed by another consumer", entry.entry_id)
                self.held.settled(entry)

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
            wallet = self._wallet
            wallet.claim_entries_left()
            wallet.queue.claim_abandoned()

    def _read(self, room: int) -> list[Entry]:
        """At most a batch, and no more than the wallet's room under its in-flight cap."""
        queue = self._wallet.queue
        count = min(self._config.read_count, room)
        held = [entry.entry_id for entry in self.held.entries]  # waiting: read after them
        after = max(held, key=id_key) if held else "0"
        entries = queue.read(count=count, block_ms=self._block_ms(), after=after)
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
                self._wallet.set_aside(
                    entry,
                    entity_id=entry.entity_id,
                    kind="too_many_deliveries",
                    reason=f"delivered {delivered} times without being settled "
                    f"(more than REDIS_QUEUE_MAX_DELIVERIES {limit})",
                    application=queue.load_application(entry.entity_id),
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

    def _wait_for_room(self, reason: str) -> None:
        """A batch that waits for room (what is in flight, the node's simulation cap) is
        normal back-pressure in a burst: said at INFO, looked at again after the first
        backoff step, without the backoff growing."""
        log.info("transient failure, retrying in %.1fs: %s", FIRST_BACKOFF, reason)
        self._pause(FIRST_BACKOFF)

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
