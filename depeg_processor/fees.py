"""EIP-1559 fees: the market's ask, never above the operator's cap.

Fee data is kept for `ttl` seconds (about a block) instead of being asked per application.

Priced for the wait: a transaction behind others of the same wallet (consecutive nonces) is
mined only after them. In a burst the blocks are full and the base fee rises by up to 12.5% a
block, so a deep backlog signed at today's base fee would fall under it before its turn and be
replaced. Each transaction's max fee therefore gets headroom for the blocks it is expected to
wait: the gas of the transactions ahead of it over the gas a block takes (the recent blocks'
gas used, at least half the block gas limit - the target above which the base fee rises) gives
`k` blocks, and the max fee is base fee x 1.125^(k+1) x HEADROOM_MARGIN + tip, never less than
twice the base fee plus the tip, never above the cap. EIP-1559 charges only the base fee of the
block plus the tip, so headroom costs nothing - except that the max fee is what the node and
the processor reserve from the balance: the headroom is limited so that everything in flight
fits the balance above PROCESSOR_MIN_BALANCE. Replacement stays the fallback for the rest.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    base_fee: int

    @property
    def below_base_fee(self) -> bool:
        """The cap does not even cover the current base fee: the transaction cannot be mined now."""
        return self.max_fee_per_gas < self.base_fee


@dataclasses.dataclass(frozen=True)
class Block:
    """What the fees are read from: the latest block's base fee and how full it was."""

    number: int | None
    base_fee: int
    gas_used: int = 0
    gas_limit: int = 0
    block_hash: str = ""
    parent_hash: str = ""
    transactions: tuple[str, ...] = ()  # the hashes of the transactions it holds


@dataclasses.dataclass(frozen=True)
class Backlog:
    """Where a wallet's transactions stand: `ahead` of the first one to be priced (in flight,
    not yet mined), and the wei all of them may reserve (None when the balance is unknown)."""

    ahead: int
    spendable: int | None = None


BASE_FEE_RISE = 1.125  # the most the base fee rises from one block to the next
HEADROOM_MARGIN = 1.25  # the base fee read may be a block old; blocks do not drain exactly
MAX_BLOCKS_PRICED = 400  # 1.125^400 is far above any cap: no need to count further
GAS_USED_SMOOTHING = 0.5  # weight of the newest block in the average of gas used

REPLACEMENT_BUMP = (9, 8)  # 12.5%: above the 10% nodes require for a same-nonce replacement


def raised(fee: int) -> int:
    """`fee` raised by 12.5%, rounded up (so a 1-wei fee still rises)."""
    numerator, denominator = REPLACEMENT_BUMP
    return max(fee + 1, -(-fee * numerator // denominator))


class FeePolicy:
    def __init__(
        self,
        *,
        base_fee: Callable[[], int | Block],
        suggested_tip: Callable[[], int],
        market: Callable[[], tuple[Block, Callable[[], int]]] | None = None,
        cap: int,
        tip: int | None = None,
        ttl: float = 2.0,
        keep: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`base_fee` gives the base fee, or the latest Block (then the gas its blocks use is
        followed too); `market`, where given, asks for the latest block and the node's tip in
        one round trip and is used instead of the two while no tip is configured (it gives
        the block and what `suggested_tip` would: the tip, or the error its call raises);
        `keep` is the balance never to be reserved (PROCESSOR_MIN_BALANCE)."""
        self._base_fee = base_fee
        self._suggested_tip = suggested_tip
        self._market = market
        self.cap = cap
        self._tip = tip
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, Fees] | None = None
        self.keep = keep
        self._gas_used: float | None = None  # average over the blocks seen
        self._gas_limit = 0
        self._last_block: int | None = None
        self._last_hash = ""
        self._latest: Block | None = None

    def current(self, *, fresh: bool = False) -> Fees:
        """The fees to offer now; `fresh` asks the node instead of using the cached data."""
        with self._lock:
            cached = self._cached
        if not fresh and cached is not None and self._monotonic() - cached[0] < self._ttl:
            return cached[1]
        if self._tip is None and self._market is not None:
            block, suggested_tip = self._market()
        else:
            latest, suggested_tip = self._base_fee(), self._suggested_tip
            block = latest if isinstance(latest, Block) else Block(None, latest)
        self.observe(block)
        fees = self.compute(block.base_fee, self._tip if self._tip is not None else suggested_tip())
        with self._lock:
            self._cached = (self._monotonic(), fees)
        return fees

    def bump(self, old: Fees, market: Fees) -> Fees | None:
        """Fees for a replacement: both fields at least 12.5% above the old ones and at least
        what the market asks now, never above the cap. None when the cap leaves no room."""
        min_max, min_tip = raised(old.max_fee_per_gas), raised(old.max_priority_fee_per_gas)
        tip = max(min_tip, market.max_priority_fee_per_gas)
        max_fee = min(self.cap, max(min_max, 2 * market.base_fee + tip))
        tip = min(tip, max_fee)
        if max_fee < min_max or tip < min_tip:
            return None
        return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip, base_fee=market.base_fee)

    def compute(self, base_fee: int, tip: int) -> Fees:
        """Offer twice the base fee plus the tip (room for six full blocks of rising base fee),
        capped; the tip never exceeds the max fee."""
        max_fee = min(self.cap, 2 * base_fee + tip)
        return Fees(
            max_fee_per_gas=max_fee, max_priority_fee_per_gas=min(tip, max_fee), base_fee=base_fee
        )

    def observe(self, block: Block) -> None:
        """Follow how much gas the blocks use: an average over the blocks seen (each once)."""
        if block.number is None or block.gas_limit <= 0:
            return
        with self._lock:
            self._latest = block
            if block.number == self._last_block:
                return
            self._last_block, self._gas_limit = block.number, block.gas_limit
            self._last_hash = block.block_hash
            self._gas_used = (
                block.gas_used
                if self._gas_used is None
                else (
                    GAS_USED_SMOOTHING * block.gas_used + (1 - GAS_USED_SMOOTHING) * self._gas_used
                )
            )

    @property
    def last_block(self) -> int | None:
        """The number of the latest block the fees were read from (None before one was)."""
        with self._lock:
            return self._last_block

    @property
    def latest(self) -> Block | None:
        """The latest block read, whole (its number, hash and transactions from one answer)."""
        with self._lock:
            return self._latest

    @property
    def last_block_hash(self) -> str:
        """That block's hash ("" where the node did not say)."""
        with self._lock:
            return self._last_hash

    @property
    def block_gas_limit(self) -> int:
        """The gas limit of that block (0 before one was seen)."""
        with self._lock:
            return self._gas_limit

    def gas_per_block(self) -> int | None:
        """The gas a block is expected to take: the recent blocks' gas used, at least the
        target (half the limit: below it the base fee does not rise), at most the limit. None
        before a block was seen."""
        with self._lock:
            if self._gas_used is None:
                return None
            return int(min(self._gas_limit, max(self._gas_limit / 2, self._gas_used)))

    def blocks_to_wait(self, ahead: int, gas: int) -> int:
        """Blocks before a transaction with `ahead` transactions of `gas` before it is mined
        (0: the next block)."""
        per_block = self.gas_per_block()
        if not per_block or ahead <= 0:
            return 0
        return ahead * gas // per_block

    def for_wait(self, market: Fees, *, gas: int, backlog: Backlog, count: int) -> list[Fees]:
        """Fees for `count` consecutive transactions of `gas` each, the first with
        `backlog.ahead` transactions in flight before it: each with headroom for the base fee's
        rise until its turn (see the module docstring), never less than `market`'s, never
        above the cap. With the balance known, the headroom stops where everything in flight
        (`ahead` + `count`, each at most the highest max fee) would no longer fit it."""
        tip = market.max_priority_fee_per_gas
        ceiling = self.cap
        if backlog.spendable is not None:
            in_flight = max(1, backlog.ahead + count)
            ceiling = min(ceiling, max(0, backlog.spendable) // max(1, gas * in_flight))
        fees = []
        for i in range(count):
            blocks = self.blocks_to_wait(backlog.ahead + i, gas)
            rise = BASE_FEE_RISE ** min(blocks + 1, MAX_BLOCKS_PRICED)
            wanted = int(min(self.cap, market.base_fee * rise * HEADROOM_MARGIN)) + tip
            max_fee = max(market.max_fee_per_gas, min(ceiling, wanted))
            fees.append(
                dataclasses.replace(market, max_fee_per_gas=max_fee)
                if max_fee != market.max_fee_per_gas
                else market
            )
        return fees
