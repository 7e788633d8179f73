"""What the receipt watcher last learned of its wallet, for the consumer's guards and the
pricing of the next batch.

The watcher thread writes, the consumer loop reads; the lock lives here beside the data and no
I/O happens under it. The monitor has its own store (`state.SharedState`) and only reads that:
these figures are the wallet's, and the guards that hold sending read them from here.
"""

from __future__ import annotations

import dataclasses
import threading


@dataclasses.dataclass(frozen=True)
class LastSeen:
    """The wallet as of one instant: None where nothing was learned yet."""

    balance: int | None = None  # wei, as the node last said
    mined_nonce: int | None = None  # how many of the wallet's transactions are mined
    stuck: str | None = None  # why transactions in flight cannot be mined, while that lasts
    spent_last_hour: int | None = None  # wei, the pool's: mined plus the most in flight costs
    reverted_gas: int | None = None  # gas the pool's transactions that reverted used, last hour
    block_time: float | None = None  # seconds per block, as the watcher learned it


class LastSeenHolder:
    """Thread-safe holder of one wallet's `LastSeen`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen = LastSeen()

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._seen = dataclasses.replace(self._seen, **changes)

    def observed(self, *, balance: int, mined_nonce: int | None = None) -> None:
        """The node's answer about the wallet (the nonce only where it was asked too)."""
        if mined_nonce is None:
            self._update(balance=balance)
        else:
            self._update(balance=balance, mined_nonce=mined_nonce)

    def set_block_time(self, seconds: float | None) -> None:
        self._update(block_time=seconds)

    def observed_mined(self, mined_nonce: int) -> None:
        """The wallet's mined count, as the node said just now."""
        self._update(mined_nonce=mined_nonce)

    def set_stuck(self, reason: str | None) -> None:
        self._update(stuck=reason)

    def set_spent(self, wei: int) -> None:
        self._update(spent_last_hour=wei)

    def set_reverted_gas(self, gas: int) -> None:
        self._update(reverted_gas=gas)

    def add_spent(self, wei: int) -> None:
        """Count a transaction just signed at its worst-case cost, until the watcher next
        publishes the figure from the ledger."""
        with self._lock:
            spent = (self._seen.spent_last_hour or 0) + wei
            self._seen = dataclasses.replace(self._seen, spent_last_hour=spent)

    def get(self) -> LastSeen:
        with self._lock:
            return self._seen
