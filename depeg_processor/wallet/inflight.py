"""The wallet's transactions in flight, as the receipt watcher knows them.

The in-flight set in Redis (the records' sorted set, scored by nonce) is the work list; this
keeps one `Tracked` value per transaction beside it: the stored record, where it was mined,
since when it waits unmined, and why it is stuck. Records are cached: only ids that are new,
or whose nonce changed (recorded afresh), are read again. After a take-over (`invalidate`,
from `Wallet.ready`) every record is read again, since another sender may have replaced some.
A first send the node refused below the base fee is told here too (`refused_below_base_fee`,
from the publishing thread): the watcher's next round looks at it at once instead of after
TX_STUCK_BLOCKS, so a spike above MAX_FEE_PER_GAS is reported within a round. Forgetting a
transaction is dropping its one value.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator

from .records import TxRecord, TxRecords


@dataclasses.dataclass(frozen=True)
class Mined:
    """Where a transaction of a record was mined, as its receipt said."""

    tx_hash: str
    block: int
    block_hash: str
    status: int
    gas_used: int
    seen_at_head: int
    gas_price: int = 0

    @property
    def cost(self) -> int:
        return self.gas_used * self.gas_price

    @classmethod
    def from_receipt(cls, receipt: dict, *, head: int) -> Mined:
        return cls(
            tx_hash=receipt["transactionHash"],
            block=int(receipt["blockNumber"], 16),
            block_hash=receipt["blockHash"],
            status=int(receipt.get("status", "0x1"), 16),
            gas_used=int(receipt.get("gasUsed", "0x0"), 16),
            seen_at_head=head,
            gas_price=int(receipt.get("effectiveGasPrice") or "0x0", 16),
        )


@dataclasses.dataclass
class Waiting:
    """When a record was first seen unmined (or last looked up at the node)."""

    head: int
    since: float
    checked: bool = False


@dataclasses.dataclass
class Tracked:
    """Everything the watcher knows about one transaction in flight."""

    record: TxRecord
    mined: Mined | None = None
    waiting: Waiting | None = None
    stuck: str | None = None  # the reason it cannot be mined (the fee cap), while it lasts
    stale: bool = False  # the stored record may have changed: read it again
    refused: bool = False  # the node refused it below the base fee: look after it now


class InFlight:
    """The cache of one wallet's transactions in flight. `read` is the watcher's alone;
    `invalidate` and `refused_below_base_fee` may come from another thread (they only set
    flags, under the lock, without I/O)."""

    def __init__(self, records: TxRecords, *, now: Callable[[], float]) -> None:
        self._records = records
        self._now = now
        self._tracked: dict[str, Tracked] = {}
        self._lock = threading.Lock()
        self._invalid = False
        self._refused: dict[str, str] = {}  # entity id -> the hash refused below the base fee
        self.sending_since = now()  # a record signed before it was left by another holder

    def invalidate(self) -> None:
        """Another sender may have written records: read each of them again next time."""
        with self._lock:
            self._invalid = True

    def refused_below_base_fee(self, records: list[TxRecord]) -> None:
        """The node refused these transactions' first sends: their max fee is under the base
        fee. The next round looks after them at once (resent, or replaced up to the cap)."""
        with self._lock:
            self._refused.update((record.entity_id, record.tx_hash) for record in records)

    @property
    def refusals_waiting(self) -> bool:
        """Refusals told since the last `read`: the next round should ask the node."""
        with self._lock:
            return bool(self._refused)

    def read(self) -> tuple[list[TxRecord], bool]:
        """The records in flight, lowest nonce first, and whether the cache started over."""
        with self._lock:
            started_over, self._invalid = self._invalid, False
            refused, self._refused = self._refused, {}
        if started_over:
            for tracked in self._tracked.values():
                tracked.stale, tracked.waiting = True, None
            self.sending_since = self._now()
        nonces = self._records.inflight_nonces()
        stale = [
            e
            for e, nonce in nonces.items()
            if (t := self._tracked.get(e)) is None or t.stale or t.record.nonce != nonce
        ]
        fresh = self._records.get_many(stale)
        tracked: dict[str, Tracked] = {}
        for entity_id in nonces:
            current, record = self._tracked.get(entity_id), fresh.get(entity_id)
            if record is not None:
                if current is None:
                    current = Tracked(record)
                current.record, current.stale = record, False
            if current is not None and not current.stale:  # a stale one no longer stored: gone
                tracked[entity_id] = current
        self._tracked = tracked  # what is no longer in flight is forgotten with it
        for entity_id, tx_hash in refused.items():
            if (
                current := tracked.get(entity_id)
            ) is not None and current.record.tx_hash == tx_hash:
                current.refused = True
        records = sorted((t.record for t in tracked.values()), key=lambda record: record.nonce)
        return records, started_over

    def get(self, entity_id: str) -> Tracked | None:
        return self._tracked.get(entity_id)

    def __getitem__(self, entity_id: str) -> Tracked:
        return self._tracked[entity_id]

    def __len__(self) -> int:
        return len(self._tracked)

    def __iter__(self) -> Iterator[Tracked]:
        return iter(list(self._tracked.values()))

    def forget(self, entity_id: str) -> None:
        self._tracked.pop(entity_id, None)

    def stuck_reasons(self) -> set[str]:
        return {t.stuck for t in self._tracked.values() if t.stuck}
