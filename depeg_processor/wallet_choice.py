"""Which wallet of the pool this process sends from.

Every wallet of the pool has its own parts (`WalletParts`: lease, records, nonces, sender,
processor, watcher, consumer name); the process sends from at most one of them at a time, the
one whose lease it holds. The lease-keeper thread renews that lease, or, holding none, takes
the first free one (`keep_leases_once`). Between two batches the processor loop may move to a
wallet that no process holds but whose last holder left transactions in flight
(`take_a_left_wallet`), so that nothing of a wallet stays unwatched while a replica can take it.
Both threads change the wallet held under one lock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import redis
from eth_account.signers.local import LocalAccount

from .inbound.stream import StreamQueue
from .lease import Lease, LeaseKeeper
from .nonce import NonceManager
from .processor import Processor
from .records import TxRecords
from .sender import Sender
from .wallets import Wallet
from .watcher import ReceiptWatcher

log = logging.getLogger(__name__)


@dataclasses.dataclass
class WalletParts:
    """Everything this process needs to send from one wallet of the pool."""

    wallet: Wallet
    account: LocalAccount
    lease: Lease
    keeper: LeaseKeeper
    queue: StreamQueue
    records: TxRecords
    nonces: NonceManager
    processor: Processor | None = None
    watcher: ReceiptWatcher | None = None
    sender: Sender | None = None


class WalletChoice:
    """The wallet held, among this process's parts of the pool (thread-safe)."""

    def __init__(
        self,
        parts: list[WalletParts],
        *,
        redis_client: redis.Redis,
        monotonic: Callable[[], float],
    ) -> None:
        self.parts = parts
        self._redis = redis_client
        self._monotonic = monotonic
        self._current: WalletParts | None = None
        self._lock = threading.Lock()  # the lease keeper and the loop both change _current
        self._left_checked_at: float | None = None  # when left wallets were last looked for
        self.interval = parts[0].keeper.interval

    @property
    def current(self) -> WalletParts | None:
        """The wallet whose lease is held, if any."""
        return self._current

    def working(self) -> WalletParts:
        """The wallet held, else the first (whose parts stand by and watch health)."""
        return self._current or self.parts[0]

    def keep_leases_once(self) -> WalletParts | None:
        """Renew the lease of the wallet held; holding none (or having lost it), take the first
        free one of the pool. Returns the wallet held now, if any."""
        with self._lock:
            current = self._current
            if current is not None and current.keeper.run_once():
                return current
            for parts in self.parts:
                if parts is not current and parts.keeper.run_once():
                    log.info(
                        "sending from wallet %s (consumer %s)",
                        parts.wallet.address,
                        parts.wallet.consumer,
                    )
                    self._current = parts
                    return parts
            if current is not None:
                log.warning(
                    "lost the lease of wallet %s; every wallet of the pool is taken: standing by",
                    current.wallet.address,
                )
            self._current = None
            return None

    def take_a_left_wallet(self) -> WalletParts | None:
        """Between two batches, at most once per lease renewal interval: when the wallet held
        has nothing in flight and its processor nothing in hand, move to a wallet of the pool
        that no process holds but whose last holder left transactions in flight (it stopped,
        in a scale-down, or died with no spare to take over), so they are confirmed, purged,
        resent or replaced. The wallet given up has nothing left to watch, and may be taken
        again later, by any process. Returns the wallet moved to, if any."""
        if len(self.parts) == 1:  # no other wallet to look at
            return None
        now = self._monotonic()
        if self._left_checked_at is not None and now - self._left_checked_at < self.interval:
            return None
        self._left_checked_at = now
        current = self._current
        if current is None or not current.processor.idle or current.records.count():
            return None
        # The last batch out first (its records may all have been settled by the time its
        # broadcast returns), outside the lock: a wait on the node under it would keep the
        # lease keeper from renewing.
        current.sender.finish_broadcast()
        with self._lock:
            if self._current is not current or current.records.count():
                return None
            others = [parts for parts in self.parts if parts is not current]
            pipe = self._redis.pipeline(transaction=False)
            for parts in others:
                pipe.exists(parts.lease.key)
                pipe.zcard(parts.records.inflight_key)
            replies = pipe.execute()
            for parts, held, in_flight in zip(others, replies[::2], replies[1::2]):
                if held or not in_flight or not parts.keeper.run_once():
                    continue
                current.lease.release(for_good=False)
                self._current = parts
                log.warning(
                    "moved from wallet %s (nothing in flight) to wallet %s, which no process "
                    "held with %s transaction(s) in flight (consumer %s)",
                    current.wallet.address,
                    parts.wallet.address,
                    in_flight,
                    parts.wallet.consumer,
                )
                return parts
        return None
