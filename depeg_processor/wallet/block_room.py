"""How many transactions a wallet keeps in flight: what the next block can take, by gas.

A wallet that keeps fewer transactions in the node's pool than a block takes leaves the block
part empty (16 of the real product's 1.5 M-gas applications fill 79 % of a 30 M block). So the
limit follows the chain's own block gas limit (read with the head) over the gas an application
uses (the simulation's gasUsed, averaged): BLOCKS_AHEAD blocks' worth, so that one wallet fills
the next block while the one after is being prepared. PROCESSOR_MAX_IN_FLIGHT is its upper
bound.

A node keeps ACCOUNT_SLOTS executable transactions of each account (geth's txpool.accountslots)
whatever happens; beyond them an account's transactions are evicted first, but only when the
pool is full. So above ACCOUNT_SLOTS the limit holds only while the pool keeps them: a sign that
it does not (the node forgot a transaction of ours while later nonces of ours are known, or
refused a first send as "txpool is full" or underpriced against the pool) brings every wallet
of the process back to ACCOUNT_SLOTS for FULL_POOL_SECONDS. One per process, as the node's pool
is.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

ACCOUNT_SLOTS = 16  # geth's txpool.accountslots: kept of each account even in a full pool
BLOCKS_AHEAD = 1.5  # the next block full, and half the one after ready
FULL_POOL_SECONDS = 300.0  # how long a sign of a full pool holds the limit at ACCOUNT_SLOTS
SMOOTHING = 0.2  # weight of the newest application in the average gas used


class BlockRoom:
    """The in-flight limit of the process's wallets; shared, so it owns its lock."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._gas: float | None = None  # the average gas an application uses
        self._full_until: float | None = None

    def measured(self, gas_used: int) -> None:
        """One application's gas used, as the simulation said."""
        with self._lock:
            self._gas = (
                gas_used
                if self._gas is None
                else SMOOTHING * gas_used + (1 - SMOOTHING) * self._gas
            )

    def pool_full(self, why: str) -> None:
        """The node's pool evicts (see the module docstring): ACCOUNT_SLOTS for a while."""
        with self._lock:
            was_full = self.full_locked()
            self._full_until = self._monotonic() + FULL_POOL_SECONDS
        if not was_full:
            log.warning(
                "the node's transaction pool is full (%s); keeping at most %s transactions of "
                "each wallet in flight for %.0fs",
                why,
                ACCOUNT_SLOTS,
                FULL_POOL_SECONDS,
            )

    def full_locked(self) -> bool:
        return self._full_until is not None and self._monotonic() < self._full_until

    def limit(self, *, upper: int, block_gas_limit: int) -> int:
        """Transactions a wallet may keep signed and not yet mined, at most `upper`."""
        with self._lock:
            gas, full = self._gas, self.full_locked()
        if full or not gas or block_gas_limit <= 0:
            return min(upper, ACCOUNT_SLOTS)
        return min(upper, max(ACCOUNT_SLOTS, math.ceil(BLOCKS_AHEAD * block_gas_limit / gas)))
