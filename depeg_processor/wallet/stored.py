"""What Redis holds of a batch's applications for one wallet, read in one round trip, and the
applications that need no sending because their fate is known already.

For each application of the batch one pipeline reads this wallet's record, the application
hash (size-guarded: see inbound.untrusted), its done marker and its owner mark. Only this
module knows how those replies are laid out. An application with a record is resumed, one
another wallet owns or one confirmed already is acknowledged: the rest are still to be read
and sent.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import redis

from ..inbound.stream import Entry, StreamQueue
from ..inbound.untrusted import HashContent
from ..keys import application_key
from .records import TxRecords
from .txrecord import TxRecord

log = logging.getLogger(__name__)

REPLIES_PER_APPLICATION = 4  # record, hash, done marker, owner mark


@dataclasses.dataclass(frozen=True)
class Stored:
    """What Redis holds of one application, as this wallet sees it."""

    entity_id: str
    record: TxRecord | None
    content: HashContent
    done: str | None  # the confirmed transaction's hash, while its marker lasts
    owner: str | None  # the wallet that recorded a transaction for it


class StoredApplications:
    """Reads a batch's applications (`load`) and settles those already known (`unsent`)."""

    def __init__(
        self, client: redis.Redis, *, records: TxRecords, queue: StreamQueue, address: str
    ) -> None:
        self._redis = client
        self._records = records
        self._queue = queue
        self._address = address

    def load(self, entity_ids: Sequence[str]) -> list[Stored]:
        """Each application's record, hash, done marker and owner, in order: one round trip."""
        if not entity_ids:
            return []
        hashes, records = self._queue.hashes, self._records

        def read() -> list:
            pipe = self._redis.pipeline(transaction=False)
            for entity_id in entity_ids:
                pipe.hgetall(records.key(entity_id))
                hashes.stage(pipe, application_key(entity_id))
                pipe.get(records.done_key(entity_id))
                pipe.get(records.owner_key(entity_id))
            return pipe.execute()

        replies = hashes.run(read)
        stored = []
        for n, entity_id in enumerate(entity_ids):
            record, content, done, owner = replies[
                REPLIES_PER_APPLICATION * n : REPLIES_PER_APPLICATION * (n + 1)
            ]
            stored.append(
                Stored(
                    entity_id=entity_id,
                    record=TxRecord.from_fields(record) if record else None,
                    content=hashes.parse(content),
                    done=done,
                    owner=owner,
                )
            )
        return stored

    def unsent(self, candidates: Sequence[tuple[Entry, str]]) -> list[HashContent | None]:
        """For each (stream entry, entity id): the application hash when it is still to be
        sent, or None when its entry is settled here as it is (resumed, another wallet's, or
        confirmed already)."""
        stored = self.load([entity_id for _entry, entity_id in candidates])
        return [
            None if self._settle_known(entry, item) else item.content
            for (entry, _entity_id), item in zip(candidates, stored)
        ]

    def _settle_known(self, entry: Entry, item: Stored) -> bool:
        """Resumed, another wallet's, or confirmed already: the entry is settled as it is."""
        queue, entity_id = self._queue, item.entity_id
        if item.record is None and item.owner is not None and item.owner != self._address:
            # Another wallet recorded a transaction for it (a requeue or a claim brought the
            # application here as well): its watcher completes it.
            log.info(
                "application %s belongs to wallet %s; entry %s acknowledged",
                entity_id,
                item.owner,
                entry.entry_id,
            )
            queue.ack(entry.entry_id)
        elif item.record is not None:  # already signed: resume it instead of signing again
            log.info(
                "application %s already has tx %s (nonce %s); resuming",
                entity_id,
                item.record.tx_hash,
                item.record.nonce,
            )
            queue.set_transaction_hashes([(entity_id, item.record.tx_hash)], ack=entry.entry_id)
        elif not item.content.fields and item.content.sizes is None and item.done:
            log.info(
                "application %s was already confirmed as tx %s; entry %s acknowledged",
                entity_id,
                item.done,
                entry.entry_id,
            )
            queue.ack(entry.entry_id)
        else:
            return False
        return True
