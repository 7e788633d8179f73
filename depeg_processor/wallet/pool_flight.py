"""What the pool has in flight, as the wallets' write-ahead records have it: the replay the
preflight simulates a batch after (`preflight.py`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import redis

from .records import TxRecord, TxRecords


@dataclasses.dataclass(frozen=True)
class InFlightTx:
    """One transaction of the pool in flight, as its record has it."""

    sender: str
    record: TxRecord


def pool_in_flight(pool: Sequence[TxRecords], client: redis.Redis) -> list[InFlightTx]:
    """Every record in flight of every wallet of the pool, in nonce order per wallet (two
    Redis round trips)."""
    pipe = client.pipeline(transaction=False)
    for records in pool:
        pipe.zrange(records.inflight_key, 0, -1)
    ids = pipe.execute()
    pipe = client.pipeline(transaction=False)
    wanted = [(records, entity_id) for records, found in zip(pool, ids) for entity_id in found]
    for records, entity_id in wanted:
        pipe.hgetall(records.key(entity_id))
    found = []
    for (records, _entity_id), fields in zip(wanted, pipe.execute()):
        if fields and records.owner is not None:
            found.append(InFlightTx(records.owner, TxRecord.from_fields(fields)))
    return sorted(found, key=lambda tx: (tx.sender, tx.record.nonce))
