"""Which of the pool's transactions the block a batch is simulated at already holds.

The preflight replays what is in flight before a batch so that the batch sees its effects. A
transaction in the simulated block or one of its ancestors has its effects in that state
already: replaying it only costs gas of the node's simulation cap (on mainnet, with 6
confirmations, about a hundred transactions a batch). So the blocks read for the simulation
(the latest block's answer lists the hashes of its transactions, from the same answer as its
hash) are kept, linked by their parent hashes, and a transaction found in one of them is not
replayed. Only blocks linked to the simulated one count: a block left behind by a
reorganisation is dropped at once, and its transactions are replayed again. A gap between two
reads (a block the preflight did not see) is filled by asking for the blocks in between, one
batch, up to MAX_GAP; a longer gap starts over (everything in flight is replayed once, and what
the node reports as done there is the old path: its signature is used).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ..fees import Block

MAX_GAP = 16  # blocks asked for at most to link a new head to the blocks known
DEPTH = 64  # blocks kept: more than any confirmation depth the processor waits


class Hashed(Protocol):
    """A record, or what a replay reads of one (`pool_flight.Signed`)."""

    @property
    def hashes(self) -> tuple[str, ...]: ...


class MinedBlocks:
    """The latest blocks, linked from the newest down, and the transactions they hold."""

    def __init__(self, *, fetch: Callable[[Sequence[int]], list[Block | None]]) -> None:
        self._fetch = fetch  # block numbers -> those blocks (None where unknown)
        self._blocks: dict[int, Block] = {}
        self._hashes: set[str] = set()

    def follow(self, head: Block | None) -> None:
        """`head` is the block simulated at now: keep what links to it, forget the rest."""
        if head is None or head.number is None or not head.block_hash:
            self._blocks, self._hashes = {}, set()
            return
        known = {n: b for n, b in self._blocks.items() if n < head.number}
        top = max(known) if known else None
        if top is not None and 1 < head.number - top <= MAX_GAP:
            for block in self._fetch(range(top + 1, head.number)):
                if block is not None and block.number is not None:
                    known[block.number] = block
        linked, current = {head.number: head}, head
        while len(linked) < DEPTH:
            parent = known.get(current.number - 1)  # type: ignore[operator]
            if parent is None or parent.block_hash != current.parent_hash:
                break
            linked[parent.number] = current = parent  # type: ignore[index]
        self._blocks = linked
        self._hashes = {h.lower() for block in linked.values() for h in block.transactions}

    def holds(self, record: Hashed) -> bool:
        """Whether one of the record's transactions is in the simulated block or below it."""
        return any(tx_hash.lower() in self._hashes for tx_hash in record.hashes)

    def __len__(self) -> int:
        return len(self._blocks)
