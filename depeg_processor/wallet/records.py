"""Write-ahead records of the transactions this processor signed.

A record is stored before its transaction is broadcast, so after a crash the very same signed
bytes can be sent again instead of a second, different transaction. The sorted set of in-flight
entity ids (scored by nonce) is the receipt watcher's work list: no key scans.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import redis

from .. import keys
from ..errors import (
    FenceLost,  # noqa: F401 (raised by fenced writes; imported from here too)
    OwnedElsewhere,
    PoolChanged,
)
from .lease import Fence, check_fence

DONE_TTL = 7 * 24 * 3600  # seconds a completed application is remembered
OWNER_TTL = DONE_TTL  # an owner mark outlives any transaction; cleared with its record


@dataclasses.dataclass(frozen=True)
class TxRecord:
    """One application's transaction as signed (and perhaps broadcast)."""

    entity_id: str
    tx_hash: str
    nonce: int
    raw: str = dataclasses.field(repr=False)
    gas: int = 0
    max_fee_per_gas: int = 0
    max_priority_fee_per_gas: int = 0
    stream_entry_id: str = ""
    signed_at: float = 0.0
    enqueued_at: float | None = None
    data: str = dataclasses.field(default="", repr=False)
    previous_hashes: tuple[str, ...] = ()

    @property
    def hashes(self) -> tuple[str, ...]:
        """Every hash signed for this nonce, the current one last: any of them may be mined."""
        return (*self.previous_hashes, self.tx_hash)

    def to_fields(self) -> dict[str, str]:
        fields = {
            "entityId": self.entity_id,
            "txHash": self.tx_hash,
            "nonce": str(self.nonce),
            "raw": self.raw,
            "gas": str(self.gas),
            "maxFeePerGas": str(self.max_fee_per_gas),
            "maxPriorityFeePerGas": str(self.max_priority_fee_per_gas),
            "streamEntryId": self.stream_entry_id,
            "signedAt": f"{self.signed_at:.3f}",
            "data": self.data,
            "previousHashes": ",".join(self.previous_hashes),
        }
        if self.enqueued_at is not None:
            fields["enqueuedAt"] = f"{self.enqueued_at:.3f}"
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> TxRecord:
        return cls(
            entity_id=fields["entityId"],
            tx_hash=fields["txHash"],
            nonce=int(fields["nonce"]),
            raw=fields.get("raw", ""),
            gas=int(fields.get("gas", 0)),
            max_fee_per_gas=int(fields.get("maxFeePerGas", 0)),
            max_priority_fee_per_gas=int(fields.get("maxPriorityFeePerGas", 0)),
            stream_entry_id=fields.get("streamEntryId", ""),
            signed_at=float(fields.get("signedAt", 0)),
            enqueued_at=float(fields["enqueuedAt"]) if fields.get("enqueuedAt") else None,
            data=fields.get("data", ""),
            previous_hashes=tuple(h for h in fields.get("previousHashes", "").split(",") if h),
        )


class TxRecords:
    """One wallet's records, under `<prefix>:tx:<entityId>`, and its in-flight set
    `<prefix>:inflight`. With `owner` (the wallet's address) every write-ahead also marks the
    application as this wallet's (`<stream>:owner:<entityId>`) and fails, for the whole batch,
    if another wallet owns one of them: one application, one wallet, one transaction chain."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        stream: str | None = None,
        owner: str | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._stream = stream or prefix
        self.owner = owner
        self.inflight_key = keys.inflight_key(prefix)
        self.version_key = keys.pool_version_key(self._stream)

    def owner_key(self, entity_id: str) -> str:
        return keys.owner_key(self._stream, entity_id)

    def key(self, entity_id: str) -> str:
        return keys.record_key(self._prefix, entity_id)

    def put(self, record: TxRecord) -> None:
        self.put_many([record])

    def put_many(
        self,
        records: list[TxRecord],
        also: Callable[[redis.client.Pipeline], None] | None = None,
        fence: Fence | None = None,
        version: str | None = None,
    ) -> None:
        """Store records in one transaction, with `also`'s commands in the same MULTI. With
        `fence` (lease key, owner) the transaction commits only while that owner holds the
        lease (WATCH): a sender that lost it cannot overwrite the next holder's records. With
        an owner, the owner marks are WATCHed too: OwnedElsewhere (nothing written) when
        another wallet owns one of the applications. With `version` (the pool's version read
        before the batch was simulated) it commits only if no wallet of the pool recorded new
        transactions since (PoolChanged, nothing written), and counts this write as one."""
        owner_keys = (
            [self.owner_key(r.entity_id) for r in records] if self.owner is not None else []
        )

        def write(pipe: redis.client.Pipeline) -> None:
            check_fence(pipe, fence)
            if version is not None and (pipe.get(self.version_key) or "0") != version:
                raise PoolChanged("another wallet of the pool recorded transactions meanwhile")
            if owner_keys:
                taken = [
                    (r.entity_id, owner)
                    for r, owner in zip(records, pipe.mget(owner_keys))
                    if owner is not None and owner != self.owner
                ]
                if taken:
                    raise OwnedElsewhere(taken)
            pipe.multi()
            for record in records:
                pipe.delete(self.key(record.entity_id))
                pipe.hset(self.key(record.entity_id), mapping=record.to_fields())
                pipe.zadd(self.inflight_key, {record.entity_id: record.nonce})
            for key in owner_keys:
                pipe.set(key, self.owner, ex=OWNER_TTL)
            if also is not None:
                also(pipe)
            if version is not None:
                pipe.incr(self.version_key)

        watched = [*([fence[0]] if fence else []), *([self.version_key] if version else [])]
        self._redis.transaction(write, *watched, *owner_keys)

    def pool_version(self) -> str:
        """How many batches the pool's wallets recorded so far: a simulation that read it
        holds only while it is unchanged (see `put_many`)."""
        return self._redis.get(self.version_key) or "0"

    def owner_of(self, entity_id: str) -> str | None:
        return self._redis.get(self.owner_key(entity_id))

    def owned_elsewhere(self, entity_id: str) -> str | None:
        """The address of the other wallet that owns this application, if any."""
        owner = self.owner_of(entity_id) if self.owner is not None else None
        return owner if owner is not None and owner != self.owner else None

    def claim_owners(self) -> int:
        """Mark every application in flight as this wallet's where no mark exists yet (records
        written before applications had owners); how many were marked."""
        if self.owner is None:
            return 0
        entity_ids = list(self.inflight_nonces())
        if not entity_ids:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for entity_id in entity_ids:
            pipe.set(self.owner_key(entity_id), self.owner, ex=OWNER_TTL, nx=True)
        return sum(1 for marked in pipe.execute() if marked)

    def get(self, entity_id: str) -> TxRecord | None:
        fields = self._redis.hgetall(self.key(entity_id))
        return TxRecord.from_fields(fields) if fields else None

    def inflight_nonces(self) -> dict[str, int]:
        """Entity id -> nonce of every record in flight (one round trip)."""
        return {
            entity_id: int(score)
            for entity_id, score in self._redis.zrange(self.inflight_key, 0, -1, withscores=True)
        }

    def get_many(self, entity_ids: list[str]) -> dict[str, TxRecord]:
        """The records of these entities that exist (one round trip)."""
        if not entity_ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for entity_id in entity_ids:
            pipe.hgetall(self.key(entity_id))
        return {
            entity_id: TxRecord.from_fields(fields)
            for entity_id, fields in zip(entity_ids, pipe.execute())
            if fields
        }

    def count(self) -> int:
        return int(self._redis.zcard(self.inflight_key))

    def highest_nonce(self) -> int | None:
        top = self._redis.zrange(self.inflight_key, -1, -1, withscores=True)
        return int(top[0][1]) if top else None

    def forget(self, entity_id: str) -> None:
        """Drop a record whose transaction the node refused (never broadcast)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self.key(entity_id))
        pipe.zrem(self.inflight_key, entity_id)
        pipe.delete(self.owner_key(entity_id))
        pipe.execute()

    def send_back(self, entity_id: str, *, fence: Fence | None = None) -> str:
        """Enqueue an application again whose transaction can never be mined: drop its record,
        its `transactionHash` and its owner mark (any wallet may take it now), and add its id
        to the stream as the web app does. With `fence`, only while that owner holds the lease
        (else FenceLost, nothing written). Returns the new stream entry's id."""

        def write(pipe: redis.client.Pipeline) -> None:
            check_fence(pipe, fence)
            pipe.multi()
            pipe.delete(self.key(entity_id))
            pipe.zrem(self.inflight_key, entity_id)
            pipe.hdel(keys.application_key(entity_id), "transactionHash")
            pipe.delete(self.owner_key(entity_id))
            pipe.xadd(self._stream, {"entityId": entity_id})

        return self._redis.transaction(write, *([fence[0]] if fence else []))[-1]

    def done_key(self, entity_id: str) -> str:
        return keys.done_key(self._stream, entity_id)

    def complete_many(self, confirmed: list[tuple[str, str]]) -> None:
        """These transactions are confirmed: remove each application and its record together,
        and leave a marker (kept for DONE_TTL) so a late redelivery of its entry is recognised."""
        pipe = self._redis.pipeline(transaction=True)
        for entity_id, tx_hash in confirmed:
            pipe.delete(keys.application_key(entity_id))
            pipe.delete(self.key(entity_id))
            pipe.zrem(self.inflight_key, entity_id)
            pipe.delete(self.owner_key(entity_id))
            pipe.set(self.done_key(entity_id), tx_hash, ex=DONE_TTL)
        pipe.execute()

    def completed_as(self, entity_id: str) -> str | None:
        """The confirmed transaction's hash, if this application was completed recently."""
        return self._redis.get(self.done_key(entity_id))


class SpendLedger:
    """Wei paid by confirmed transactions, by time, for the hourly spending guard
    (`<prefix>:spent`, a sorted set of "<tx hash>:<wei>" scored by confirmation time)."""

    WINDOW = 3600.0

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._redis = client
        self.key = keys.spent_key(prefix)

    def add_many(self, spends: list[tuple[str, int]], now: float) -> None:
        if spends:
            self._redis.zadd(self.key, {f"{tx_hash}:{wei}": now for tx_hash, wei in spends})

    def last_hour(self, now: float) -> int:
        pipe = self._redis.pipeline(transaction=True)
        pipe.zremrangebyscore(self.key, "-inf", now - self.WINDOW)
        pipe.zrangebyscore(self.key, now - self.WINDOW, "+inf")
        members = pipe.execute()[1]
        return sum(int(member.rsplit(":", 1)[1]) for member in members)
