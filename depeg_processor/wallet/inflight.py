"""The wallet's transactions in flight, as the receipt watcher knows them.

The in-flight set in Redis (the records' sorted set, scored by nonce) is the work list; this
keeps one `Tracked` value per transaction beside it: the stored record, its one status (see
`lifecycle.py` for the statuses and the moves allowed between them) and since when it waits
unmined. Records are cached: only ids that are new, or whose nonce changed (recorded afresh),
or that a step asked to read again (`read_again`), are read again. After a take-over
(`invalidate`, from `Wallet.take_over`) every record is read again, since another sender may
have replaced some. A first send the node refused below the base fee is told here too
(`refused_below_base_fee`, from the publishing thread): the watcher's next round moves it to
REFUSED and looks at it at once instead of after TX_STUCK_BLOCKS, so a spike above
MAX_FEE_PER_GAS is reported within a round. Forgetting a transaction is dropping its one
value.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator

from .. import errors
from . import lifecycle
from .lifecycle import Status
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
    """When a record was first seen unmined (or last looked up at the node): a clock, not a
    status. It runs under SENT, REFUSED and STUCK alike (a stuck transaction is looked up
    again every TX_STUCK_BLOCKS), starts afresh after a take-over whatever the status, and
    also times a nonce gap, which is no transaction at all."""

    head: int
    since: float
    checked: bool = False


@dataclasses.dataclass
class Tracked:
    """Everything the watcher knows about one transaction in flight. `status` changes only
    through `move`, which keeps what goes with a status: `mined` (where) while MINED, `stuck`
    (why it cannot be mined) while STUCK, and no waiting clock while MINED."""

    record: TxRecord
    status: Status = Status.SENT
    mined: Mined | None = None
    stuck: str | None = None
    waiting: Waiting | None = None

    def move(self, to: Status, *, mined: Mined | None = None, stuck: str | None = None) -> None:
        """To status `to`, if the table allows it (else `errors.IllegalMove`); MINED comes
        with its receipt (`mined`), STUCK with its reason (`stuck`)."""
        if (to is Status.MINED) != (mined is not None) or (to is Status.STUCK) != bool(stuck):
            raise errors.IllegalMove(
                f"a move to {to.value} comes with the receipt if mined, the reason if stuck"
            )
        self.status = lifecycle.move(self.status, to)
        self.mined, self.stuck = mined, stuck
        if to is Status.MINED:
            self.waiting = None


class InFlight:
    """The cache of one wallet's transactions in flight. `read` is the watcher's alone;
    `invalidate` and `refused_below_base_fee` may come from another thread (they only set
    flags, under the lock, without I/O). Whether a cached record must be read again is the
    cache's own fact, not a status: a take-over reads a mined transaction's record again and
    it stays mined; a failed replacement reads a stuck one again and it stays stuck."""

    def __init__(self, records: TxRecords, *, now: Callable[[], float]) -> None:
        self._records = records
        self._now = now
        self._tracked: dict[str, Tracked] = {}
        self._lock = threading.Lock()
        self._invalid = False
        self._refused: dict[str, str] = {}  # entity id -> the hash refused below the base fee
        self._read_again: set[str] = set()  # cached records that may have changed
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

    def read_again(self, entity_ids: list[str]) -> None:
        """These stored records may have changed (a replacement failed half-way): the next
        `read` reads them again, and forgets those no longer stored."""
        self._read_again.update(entity_ids)

    def read(self) -> tuple[list[TxRecord], bool]:
        """The records in flight, lowest nonce first, and whether the cache started over."""
        with self._lock:
            started_over, self._invalid = self._invalid, False
            refused, self._refused = self._refused, {}
        if started_over:
            for tracked in self._tracked.values():
                tracked.waiting = None
            self._read_again.update(self._tracked)
            self.sending_since = self._now()
        again = self._read_again  # kept until read: a failed read leaves it for the next
        nonces = self._records.inflight_nonces()
        stale = [
            e
            for e, nonce in nonces.items()
            if (t := self._tracked.get(e)) is None or e in again or t.record.nonce != nonce
        ]
        fresh = self._records.get_many(stale)
        tracked: dict[str, Tracked] = {}
        for entity_id in nonces:
            current, record = self._tracked.get(entity_id), fresh.get(entity_id)
            if record is not None:
                if current is None:
                    current = Tracked(record)
                current.record = record
            elif entity_id in again:
                continue  # one to read again, no longer stored: gone
            if current is not None:
                tracked[entity_id] = current
        self._tracked = tracked  # what is no longer in flight is forgotten with it
        self._read_again = set()
        for entity_id, tx_hash in refused.items():  # one replaced or mined since: no matter
            current = tracked.get(entity_id)
            if (
                current is not None
                and current.record.tx_hash == tx_hash
                and lifecycle.allowed(current.status, Status.REFUSED)
            ):
                current.move(Status.REFUSED)
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
        return {t.stuck for t in self._tracked.values() if t.status is Status.STUCK and t.stuck}
