"""EIP-1559 fees: the market's ask, never above the operator's cap.

Fee data is kept for `ttl` seconds (about a block) instead of being asked per application.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, Optional


@dataclasses.dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    base_fee: int

    @property
    def below_base_fee(self) -> bool:
        """The cap does not even cover the current base fee: the transaction cannot be mined now."""
        return self.max_fee_per_gas < self.base_fee


REPLACEMENT_BUMP = (9, 8)  # 12.5%: above the 10% nodes require for a same-nonce replacement


def raised(fee: int) -> int:
    """`fee` raised by 12.5%, rounded up (so a 1-wei fee still rises)."""
    numerator, denominator = REPLACEMENT_BUMP
    return max(fee + 1, -(-fee * numerator // denominator))


class FeePolicy:
    def __init__(self, *, base_fee: Callable[[], int], suggested_tip: Callable[[], int],
                 cap: int, tip: Optional[int] = None, ttl: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._base_fee = base_fee
        self._suggested_tip = suggested_tip
        self.cap = cap
        self._tip = tip
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: Optional[tuple[float, Fees]] = None

    def current(self, *, fresh: bool = False) -> Fees:
        """The fees to offer now; `fresh` asks the node instead of using the cached data."""
        with self._lock:
            cached = self._cached
        if not fresh and cached is not None and self._monotonic() - cached[0] < self._ttl:
            return cached[1]
        fees = self.compute(self._base_fee(), self._tip if self._tip is not None
                            else self._suggested_tip())
        with self._lock:
            self._cached = (self._monotonic(), fees)
        return fees

    def bump(self, old: Fees, market: Fees) -> Optional[Fees]:
        """Fees for a replacement: both fields at least 12.5% above the old ones and at least
        what the market asks now, never above the cap. None when the cap leaves no room."""
        min_max, min_tip = raised(old.max_fee_per_gas), raised(old.max_priority_fee_per_gas)
        tip = max(min_tip, market.max_priority_fee_per_gas)
        max_fee = min(self.cap, max(min_max, 2 * market.base_fee + tip))
        tip = min(tip, max_fee)
        if max_fee < min_max or tip < min_tip:
            return None
        return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip,
                    base_fee=market.base_fee)

    def compute(self, base_fee: int, tip: int) -> Fees:
        """Offer twice the base fee plus the tip (room for six full blocks of rising base fee),
        capped; the tip never exceeds the max fee."""
        max_fee = min(self.cap, 2 * base_fee + tip)
        return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=min(tip, max_fee),
                    base_fee=base_fee)
