"""Write-ahead records of the transactions this processor signed.

A record is stored before its transaction is broadcast, so after a crash the very same signed
bytes can be sent again instead of a second, different transaction. The sorted set of in-flight
entity ids (scored by nonce) is the receipt watcher's work list: no key scans. Every write of a
record also marks its signature (see signatures): one signature, one application.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import redis

from .. import keys
from ..errors import FenceLost  # noqa: F401 (raised by fenced writes; imported from here too)
from .holders import DEFAULT_HOLD_SECONDS, Hold, Holders
from .lease import Fence, check_fence
from .signatures import DONE_TTL, SignatureMark, SignatureMarks
from .txrecord import TxRecord, holder_of, signature_of
from .write_ahead import WriteAheadChecks

OWNER_TTL = DONE_TTL  # an owner mark outlives any transaction; cleared with its record


class TxRecords:
    """One wallet's records, under `<prefix>:tx:<entityId>`, and its in-flight set
    `<prefix>:inflight`. With `owner` (the wallet's address) every write-ahead also marks the
    application as this wallet's (`<stream>:owner:<entityId>`) and fails, for the whole batch,
    if another wallet owns one of them: one application, one wallet, one transaction chain.
    Whatever the owner, a record's first write fails as a whole if another application sent
    its signature (`marks`, kept `mark_ttl` seconds: see signatures), or if its policy holder
    is held or has another application in flight (`holders`: see holders)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        stream: str | None = None,
        owner: str | None = None,
        mark_ttl: int | None = DONE_TTL,
        hold_seconds: int = DEFAULT_HOLD_SECONDS,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._stream = stream or prefix
        self.owner = owner
        self.inflight_key = keys.inflight_key(prefix)
        self.version_key = keys.pool_version_key(self._stream)
        self.marks = SignatureMarks(client, stream=self._stream, ttl=mark_ttl)
        self.holders = Holders(client, stream=self._stream, hold_seconds=hold_seconds)

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
        another wallet owns one of the applications. The signature marks are WATCHed and
        written alike: SignatureTaken (nothing written) when a record's first write (nothing
        broadcast yet) finds its signature sent for another application. A replacement
        (already broadcast) is never refused; its mark follows the current hash. With
        `version` (the pool's version read before the batch was simulated) it commits only if
        no wallet of the pool recorded new transactions since (PoolChanged, nothing written),
        and counts this write as one. Three round trips (see write_ahead): the WATCH, the
        checks' reads, MULTI/EXEC; four when a holder's busy mark names another record."""
        owner_keys = (
            [self.owner_key(r.entity_id) for r in records] if self.owner is not None else []
        )
        signed = [r for r in records if r.signature]
        first_records = [(r, self.key(r.entity_id)) for r in records if not r.previous_hashes]
        checks = WriteAheadChecks.of(
            [(r, self.key(r.entity_id)) for r in records],
            owners=owner_keys,
            owner=self.owner,
            marks=self.marks,
            holders=self.holders,
            fence=fence,
            version=(self.version_key, version) if version is not None else None,
        )

        def write(pipe: redis.client.Pipeline) -> None:
            checks.check(self._redis)
            pipe.multi()
            for record in records:
                pipe.delete(self.key(record.entity_id))
                pipe.hset(self.key(record.entity_id), mapping=record.to_fields())
                pipe.zadd(self.inflight_key, {record.entity_id: record.nonce})
            for key in owner_keys:
                pipe.set(key, self.owner, ex=OWNER_TTL)
            for r in signed:
                self.marks.stage(pipe, SignatureMark(r.entity_id, r.tx_hash), r.signature)
            self.holders.stage(pipe, first_records)
            if also is not None:
                also(pipe)
            if version is not None:
                pipe.incr(self.version_key)

        self._redis.transaction(write, *checks.watched())

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

    def mark_signatures(self) -> int:
        """Mark the signature of every record in flight where no mark exists yet (records
        written before signatures were marked); how many were marked."""
        records = self.get_many(list(self.inflight_nonces()))
        return self.marks.mark_missing(
            [
                (SignatureMark(r.entity_id, r.tx_hash), r.signature)
                for r in records.values()
                if r.signature
            ]
        )

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

    def forget(
        self, entity_id: str, also: Callable[[redis.client.Pipeline], None] | None = None
    ) -> None:
        """Drop a record whose transaction can never be mined (reverted on chain, or never
        broadcast), with its owner mark; its signature was not used, so its mark goes too
        (a corrected resubmission is not refused). `also` stages more in the same MULTI."""

        def write(pipe: redis.client.Pipeline) -> None:
            marks = self._releasable_marks(pipe, entity_id)
            pipe.multi()
            pipe.delete(self.key(entity_id), self.owner_key(entity_id), *marks)
            pipe.zrem(self.inflight_key, entity_id)
            if also is not None:
                also(pipe)

        self._redis.transaction(write, self.key(entity_id))

    def forget_holding(self, entity_id: str, hold: Hold | None) -> Callable:
        """A dead letter's commit: the record forgotten, and its holder held, in one MULTI."""

        def commit(remove: Callable[[redis.client.Pipeline], None]) -> None:
            def also(pipe: redis.client.Pipeline) -> None:
                remove(pipe)
                if hold is not None:
                    self.holders.stage_hold(pipe, hold)

            self.forget(entity_id, also=also)

        return commit

    def send_back(self, entity_id: str, *, fence: Fence | None = None) -> str:
        """Enqueue an application again whose transaction can never be mined: drop its record,
        its `transactionHash`, its owner mark (any wallet may take it now) and its signature
        mark (the signature was not used), and add its id to the stream as the web app does.
        With `fence`, only while that owner holds the lease (else FenceLost, nothing written).
        Returns the new stream entry's id."""

        def write(pipe: redis.client.Pipeline) -> None:
            check_fence(pipe, fence)
            marks = self._releasable_marks(pipe, entity_id)
            pipe.multi()
            pipe.delete(self.key(entity_id), self.owner_key(entity_id), *marks)
            pipe.zrem(self.inflight_key, entity_id)
            pipe.hdel(keys.application_key(entity_id), "transactionHash")
            pipe.xadd(self._stream, {"entityId": entity_id})

        watched = [*([fence[0]] if fence else []), self.key(entity_id)]
        return self._redis.transaction(write, *watched)[-1]

    def _releasable_marks(self, pipe: redis.client.Pipeline, entity_id: str) -> list[str]:
        """Before MULTI, the record WATCHed: the keys of its signature's mark and its holder's
        busy mark, those that name this application (another's is never released for it)."""
        signature, data = pipe.hmget(self.key(entity_id), ["signature", "data"])
        found = (
            self.marks.releasable(pipe, entity_id, signature or signature_of(data)),
            self.holders.releasable(pipe, holder_of(data), self.key(entity_id)),
        )
        return [key for key in found if key is not None]

    def done_key(self, entity_id: str) -> str:
        return keys.done_key(self._stream, entity_id)

    def complete_many(
        self, confirmed: list[tuple[str, str]], signatures: Mapping[str, str] | None = None
    ) -> None:
        """These (entity id, mined hash) are confirmed: remove each application and its record
        together, and leave a marker (kept for DONE_TTL) so a late redelivery of its entry is
        recognised. The signature (`signatures` by entity id) is used on chain now: its mark
        names the mined transaction, kept for the marks' lifetime from now."""
        signatures = signatures or {}
        pipe = self._redis.pipeline(transaction=True)
        for entity_id, tx_hash in confirmed:
            pipe.delete(keys.application_key(entity_id))
            pipe.delete(self.key(entity_id))
            pipe.zrem(self.inflight_key, entity_id)
            pipe.delete(self.owner_key(entity_id))
            pipe.set(self.done_key(entity_id), tx_hash, ex=DONE_TTL)
            if signatures.get(entity_id):
                mark = SignatureMark(entity_id, tx_hash, confirmed=True)
                self.marks.stage(pipe, mark, signatures[entity_id])
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
