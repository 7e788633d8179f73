"""The write-ahead's refusals: one WATCH, then every read they need in one round trip.

`TxRecords.put_many` writes a batch only while what it checked still holds at EXEC: the lease
is this sender's (FenceLost), the pool's version is the one the batch was simulated on
(PoolChanged), no other wallet owns one of its applications (OwnedElsewhere), no other
application sent a first record's signature (SignatureTaken), and no first record's policy
holder is held or has another record in flight (HolderBusy). When several apply, the first of
that order is raised. Nothing is written on a refusal.

Read one by one on the WATCHing connection, as redis-py's `transaction()` does, these took
about nine round trips a batch. Here one WATCH covers every key whose change must abort the
write (`watched`), and the reads then go in one pipeline, which may use another connection of
the pool: a change after the WATCH fails the EXEC whatever was read (WatchError, and
`transaction()` WATCHes and reads again), so a batch is written only on values that still hold
at EXEC. One more round trip only when a holder's busy mark names another record: whether that
record still exists (a mark whose record is gone is stale; that record is not WATCHed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import redis

from ..errors import HolderBusy, OwnedElsewhere, PoolChanged, SignatureTaken
from .holders import Holders
from .lease import Fence, refuse_unless_held
from .signatures import SignatureMark, SignatureMarks
from .txrecord import TxRecord


@dataclasses.dataclass(frozen=True)
class HolderCheck:
    """A first record with a policy holder: who applies, the record's key, the holder's marks."""

    entity_id: str
    record_key: str
    holder: str
    held_key: str
    busy_key: str


@dataclasses.dataclass(frozen=True)
class WriteAheadChecks:
    """The keys one write-ahead reads and what it must find there; an empty part checks
    nothing. `signed_keys` (every signed record's mark, a replacement's too) are WATCHed since
    the write moves them; only a first record's mark can refuse it (`signatures`)."""

    fence: Fence | None = None
    version: tuple[str, str] | None = None  # (the pool version's key, the version simulated on)
    owner: str | None = None
    owners: Sequence[tuple[str, str]] = ()  # (entity id, its owner mark's key)
    signatures: Sequence[tuple[str, str, str]] = ()  # first writes: (entity id, signature, key)
    signed_keys: Sequence[str] = ()
    holders: Sequence[HolderCheck] = ()

    @classmethod
    def of(
        cls,
        records: Sequence[tuple[TxRecord, str]],
        *,
        owners: Sequence[str],
        owner: str | None,
        marks: SignatureMarks,
        holders: Holders,
        fence: Fence | None,
        version: tuple[str, str] | None,
    ) -> WriteAheadChecks:
        """The checks of writing these (record, its key), with their owner marks' keys (none
        without an owner)."""
        signed = [record for record, _key in records if record.signature]
        first = [(record, key) for record, key in records if not record.previous_hashes]
        return cls(
            fence=fence,
            version=version,
            owner=owner,
            owners=[(record.entity_id, key) for (record, _), key in zip(records, owners)],
            signatures=[
                (record.entity_id, record.signature, marks.key(record.signature))
                for record, _key in first
                if record.signature
            ],
            signed_keys=[marks.key(record.signature) for record in signed],
            holders=[
                HolderCheck(
                    record.entity_id,
                    key,
                    record.holder,
                    holders.held_key(record.holder),
                    holders.busy_key(record.holder),
                )
                for record, key in first
                if record.holder
            ],
        )

    def watched(self) -> list[str]:
        """Every key whose change must abort the write, for one WATCH."""
        return [
            *([self.fence[0]] if self.fence else []),
            *([self.version[0]] if self.version else []),
            *(key for _entity_id, key in self.owners),
            *self.signed_keys,
            *(check.held_key for check in self.holders),
            *(check.busy_key for check in self.holders),
        ]

    def check(self, client: redis.Redis) -> None:
        """After the WATCH of `watched()`, before MULTI: raise the first refusal that applies
        (one round trip; two when a busy mark names another record)."""
        reads = client.pipeline(transaction=False)
        if self.fence:
            reads.get(self.fence[0])
        if self.version:
            reads.get(self.version[0])
        if self.owners:
            reads.mget([key for _entity_id, key in self.owners])
        if self.signatures:
            reads.mget([key for _entity_id, _signature, key in self.signatures])
        if self.holders:
            reads.mget([check.busy_key for check in self.holders])
            for check in self.holders:
                reads.exists(check.held_key)
        replies = iter(reads.execute())  # nothing queued: no round trip
        if self.fence:
            refuse_unless_held(self.fence, next(replies))
        if self.version and (next(replies) or "0") != self.version[1]:
            raise PoolChanged("another wallet of the pool recorded transactions meanwhile")
        if self.owners:
            self._refuse_owned(next(replies))
        if self.signatures:
            self._refuse_taken(next(replies))
        if self.holders:
            marks = next(replies)
            self._refuse_busy(client, marks, [bool(next(replies)) for _ in self.holders])

    def _refuse_owned(self, found: Sequence[str | None]) -> None:
        taken = [
            (entity_id, owner)
            for (entity_id, _key), owner in zip(self.owners, found)
            if owner is not None and owner != self.owner
        ]
        if taken:
            raise OwnedElsewhere(taken)

    def _refuse_taken(self, found: Sequence[str | None]) -> None:
        """A signature marked by another entity id, or twice among the first writes."""
        taken, claimed = [], {}
        for (entity_id, signature, _key), value in zip(self.signatures, found):
            mark = SignatureMark.from_value(value)
            if mark is not None and mark.entity_id != entity_id:
                taken.append((entity_id, mark.describe()))
            elif claimed.setdefault(signature, entity_id) != entity_id:
                taken.append((entity_id, f"application {claimed[signature]} (this batch)"))
        if taken:
            raise SignatureTaken(taken)

    def _refuse_busy(
        self, client: redis.Redis, marks: Sequence[str | None], held: Sequence[bool]
    ) -> None:
        """A holder held, with another record in flight (its busy mark names a record that
        exists), or twice among the first writes."""
        named = [
            mark for check, mark in zip(self.holders, marks) if mark and mark != check.record_key
        ]
        live = set()
        if named:
            pipe = client.pipeline(transaction=False)
            for record_key in named:
                pipe.exists(record_key)
            live = {key for key, found in zip(named, pipe.execute()) if found}
        busy, seen = [], set()
        for check, mark in zip(self.holders, marks):
            if (mark in live and mark != check.record_key) or check.holder in seen:
                busy.append(check.entity_id)
            seen.add(check.holder)
        busy += [check.entity_id for check, is_held in zip(self.holders, held) if is_held]
        if busy:
            raise HolderBusy(sorted(set(busy)))
