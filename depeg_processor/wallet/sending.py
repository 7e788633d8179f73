"""Which wallet of the pool this process sends from.

Every wallet of the pool is a `Wallet` of this process; the process sends from at most one of
them at a time, the one whose lease it holds. The lease-keeper thread renews that lease, or,
holding none, takes the first free one (`keep_leases_once`). Between two batches the
consumer loop may move to a wallet that no process holds but whose last holder left
transactions in flight (`take_a_left_wallet`), so that nothing of a wallet stays unwatched
while a replica can take it. Both threads change the wallet held under one lock.

Between two rounds the keeper listens for release notices (`handover.Releases`): a wallet
given up by a process stopping cleanly is taken within milliseconds, not at the next round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from .handover import Releases
from .wallet import Wallet

log = logging.getLogger(__name__)


class SendingWallet:
    """The wallet this process sends from (the one whose lease it holds), among its parts of
    the pool (thread-safe)."""

    def __init__(
        self,
        wallets: list[Wallet],
        *,
        redis_client: redis.Redis,
        monotonic: Callable[[], float],
        idle: Callable[[Wallet], bool],
        releases: Releases | None = None,
    ) -> None:
        self.wallets = wallets
        self._releases = releases
        self._idle = idle  # the wallet's consumer has nothing in hand
        self._redis = redis_client
        self._monotonic = monotonic
        self._current: Wallet | None = None
        self._lock = threading.Lock()  # the lease keeper and the loop both change _current
        self._gained = threading.Condition(self._lock)  # notified when a wallet is taken
        self._left_checked_at: float | None = None  # when left wallets were last looked for
        self.interval = wallets[0].keeper.interval

    @property
    def current(self) -> Wallet | None:
        """The wallet whose lease is held, if any."""
        return self._current

    def working(self) -> Wallet:
        """The wallet held, else the first (which stands by and watches health)."""
        return self._current or self.wallets[0]

    def keep_leases_once(self) -> Wallet | None:
        """Renew the lease of the wallet held; holding none (or having lost it), take the first
        free one of the pool. Returns the wallet held now, if any."""
        with self._lock:
            current = self._current
            if current is not None and current.keeper.run_once():
                return current
            for wallet in self.wallets:
                if wallet is not current and wallet.keeper.run_once():
                    log.info(
                        "sending from wallet %s (consumer %s)",
                        wallet.address,
                        wallet.queue.consumer,
                    )
                    self._current = wallet
                    self._gained.notify_all()
                    return wallet
            if current is not None:
                log.warning(
                    "lost the lease of wallet %s; every wallet of the pool is taken: standing by",
                    current.address,
                )
            self._current = None
            return None

    def wait_for_wallet(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for a wallet to be held (a standby's loop)."""
        with self._gained:
            return self._gained.wait_for(lambda: self._current is not None, timeout)

    def run(self, stop: threading.Event) -> None:
        """The lease keeper thread: `keep_leases_once` every `interval` until stopped, on a
        schedule of its own, so a slow node cannot let the lease lapse; at once when a lease
        of the pool is released."""
        log.info(
            "lease keeper started (%s wallet(s), renewed every %.1fs)",
            len(self.wallets),
            self.interval,
        )
        while not stop.is_set():
            try:
                self.keep_leases_once()
            except Exception:  # a bug must not stop the renewals for good: log it, go on
                log.exception("lease keeper round failed")
            self._wait(stop)
        if self._releases is not None:
            self._releases.close()
        log.info("lease keeper stopped")

    def _wait(self, stop: threading.Event) -> None:
        """Until the next round: the interval, or less when a lease of the pool is released
        (its wallet then knows who released it, `Lease.note_released`)."""
        if self._releases is None:
            stop.wait(self.interval)
            return
        by_key = {wallet.lease.key: wallet for wallet in self.wallets}
        for key, owner in self._releases.wait(self.interval):
            if key in by_key:
                by_key[key].lease.note_released(owner)

    def take_a_left_wallet(self) -> Wallet | None:
        """Between two batches, at most once per lease renewal interval: when the wallet held
        has nothing in flight and its processor nothing in hand, move to a wallet of the pool
        that no process holds but whose last holder left transactions in flight (it stopped,
        in a scale-down, or died with no spare to take over), so they are confirmed, purged,
        resent or replaced. The wallet given up has nothing left to watch, and may be taken
        again later, by any process. Returns the wallet moved to, if any."""
        if len(self.wallets) == 1:  # no other wallet to look at
            return None
        now = self._monotonic()
        if self._left_checked_at is not None and now - self._left_checked_at < self.interval:
            return None
        self._left_checked_at = now
        current = self._current
        if current is None or not self._idle(current) or current.records.count():
            return None
        # The last batch out first (its records may all have been settled by the time its
        # broadcast returns), outside the lock: a wait on the node under it would keep the
        # lease keeper from renewing.
        current.finish()
        with self._lock:
            if self._current is not current or current.records.count():
                return None
            others = [wallet for wallet in self.wallets if wallet is not current]
            pipe = self._redis.pipeline(transaction=False)
            for wallet in others:
                pipe.exists(wallet.lease.key)
                pipe.zcard(wallet.records.inflight_key)
            replies = pipe.execute()
            for wallet, held, in_flight in zip(others, replies[::2], replies[1::2]):
                if held or not in_flight or not wallet.keeper.run_once():
                    continue
                current.lease.release(for_good=False)
                self._current = wallet
                log.warning(
                    "moved from wallet %s (nothing in flight) to wallet %s, which no process "
                    "held with %s transaction(s) in flight (consumer %s)",
                    current.address,
                    wallet.address,
                    in_flight,
                    wallet.queue.consumer,
                )
                return wallet
        return None
