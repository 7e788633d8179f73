"""When the receipt watcher asks the node for the head, and how fast the chain makes blocks.

Every question to the node is a call a hosted provider bills. With nothing in flight the head
(and, for the monitor, the wallet's balance and nonce) is asked every CHAIN_IDLE_POLL_INTERVAL.
With transactions in flight it is asked about once per block: the block time is learned from
the chain's own timestamps, never polled faster than RECEIPT_POLL_INTERVAL nor slower than the
idle interval. Only blocks seen while transactions are in flight teach the block time, so the
quiet hours of a chain that mines on demand (a devnet) do not pass for slow blocks.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Iterable

SAMPLES = 8  # recent block intervals the block time is the median of


@dataclasses.dataclass(frozen=True)
class Head:
    """The latest block as the node described it."""

    number: int
    timestamp: int
    block_hash: str

    @classmethod
    def from_block(cls, block: dict) -> Head:
        return cls(
            number=int(block["number"], 16),
            timestamp=int(block["timestamp"], 16),
            block_hash=block.get("hash") or "",
        )


class HeadSchedule:
    """Decides when the head is due, and learns the block time from what it was shown."""

    def __init__(
        self,
        *,
        min_interval: float,
        idle_interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._min = min_interval
        self._idle = max(idle_interval, min_interval)
        self._monotonic = monotonic
        self._asked_at: float | None = None
        self._refreshed_at: float | None = None
        self._last: Head | None = None
        self._intervals: collections.deque[float] = collections.deque(maxlen=SAMPLES)

    @property
    def block_time(self) -> float | None:
        """Seconds per block, as recently seen (None until two busy heads were seen)."""
        return _median(self._intervals) if self._intervals else None

    def interval(self, *, busy: bool) -> float:
        if not busy:
            return self._idle
        return min(self._idle, max(self._min, self.block_time or 0.0))

    def due(self, *, busy: bool) -> bool:
        if self._asked_at is None:
            return True
        return self._monotonic() - self._asked_at >= self.interval(busy=busy)

    def refresh_due(self) -> bool:
        """Whether the balance and the nonce should be asked along with the head."""
        return self._refreshed_at is None or self._monotonic() - self._refreshed_at >= self._idle

    def refresh_soon(self) -> None:
        """The balance and the nonce changed (transactions were mined): ask with the next head."""
        self._refreshed_at = None

    def asked(self, head: Head, *, busy: bool, refreshed: bool) -> None:
        self._asked_at = self._monotonic()
        if refreshed:
            self._refreshed_at = self._asked_at
        if busy and self._last is not None and head.number > self._last.number:
            self._intervals.append(
                max(0, head.timestamp - self._last.timestamp) / (head.number - self._last.number)
            )
        self._last = head if busy else None


def _median(values: Iterable[float]) -> float:
    """statistics.median, as it computes it (that module, with fractions, is a millisecond of
    every start, for this one line)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
