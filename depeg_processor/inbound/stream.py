"""The web app's stream, read through a consumer group, with the dead letters beside it.

Reading follows the consumer-group recipe: this consumer's own delivered-but-unacknowledged
entries first (id `0`), then new ones (id `>`). After a transient failure the reader rewinds, so
the entry in hand is delivered again rather than skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

import redis

from ..keys import application_key
from ..wallet.lease import Fence, check_fence
from .dead_letters import DeadLetters
from .stream_ids import id_after, id_key
from .untrusted import HashContent, HashGuard

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One stream entry: its id and its fields (empty if the entry was deleted meanwhile)."""

    entry_id: str
    fields: Mapping[str, str]

    @property
    def entity_id(self) -> str | None:
        return self.fields.get("entityId")


@dataclasses.dataclass(frozen=True)
class StreamBacklog:
    """Entries delivered to the group and not acknowledged, entries not yet delivered to it
    (None when Redis does not say: before 7.0), and this consumer's unacknowledged entries."""

    group_pending: int
    lag: int | None
    own_pending: int


class StreamQueue:
    """The applications stream as this consumer sees it."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        dead_letter_key: str,
        clock: Callable[[], float] = time.time,
        on_dead_letter: Callable[[str], None] = lambda kind: None,
        claim_idle: float = 0.0,
        max_letters: int | None = None,
    ) -> None:
        self._redis = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.claim_idle = claim_idle
        self.dead_letters = DeadLetters(
            client,
            stream=stream,
            group=group,
            key=dead_letter_key,
            clock=clock,
            on_dead_letter=on_dead_letter,
            max_letters=max_letters,
        )
        self._own_backlog = True
        self.hashes = HashGuard(client)

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing; entries already in the stream
        are delivered, none skipped."""
        try:
            self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", self.group, self.stream)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def read(self, *, count: int, block_ms: int, after: str = "0") -> list[Entry]:
        """Own unacknowledged entries first (those after `after`: the ones before it are in
        hand); once none are left, block for new ones."""
        if self._own_backlog:
            entries = self._xread(after, count=count, block_ms=None)
            if entries:
                return entries
            self._own_backlog = False
        return self._xread(">", count=count, block_ms=block_ms)

    def rewind(self) -> None:
        """Deliver this consumer's unacknowledged entries again on the next read."""
        self._own_backlog = True

    @property
    def reading_backlog(self) -> bool:
        """Whether the next read returns entries delivered before (to this consumer)."""
        return self._own_backlog

    def claim_abandoned(self) -> int:
        """Take over the group's entries that were delivered and have been idle for at least
        `claim_idle` seconds (the lease TTL: their consumer's process is gone, or it would
        have settled them); they are then read as this consumer's own backlog. Entries a live
        replica is working on are younger than that. One that a live replica keeps in memory
        for longer (retrying through an outage) may be claimed too: the owner mark of its
        application lets only one wallet record a transaction for it."""
        idle_ms = max(0, int(self.claim_idle * 1000))
        claimed, start = 0, "0-0"
        while True:
            ids = self._redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=idle_ms,
                start_id=start,
                count=100,
                justid=True,
            )
            ids = [i for i in ids if i]
            if not ids:
                break
            claimed += len(ids)
            start = id_after(max(ids, key=id_key))
        if claimed:
            log.warning(
                "claimed %s unacknowledged entries idle for %.1fs or more", claimed, self.claim_idle
            )
            self.rewind()
        return claimed

    def delivery_counts(self, entry_ids: list[str]) -> dict[str, int]:
        """How many times each (pending) entry has been delivered."""
        if not entry_ids:
            return {}
        rows = self._redis.xpending_range(
            self.stream,
            self.group,
            min=min(entry_ids, key=id_key),
            max=max(entry_ids, key=id_key),
            count=len(entry_ids) * 2 + 10,
            consumername=self.consumer,
        )
        wanted = set(entry_ids)
        return {
            row["message_id"]: int(row["times_delivered"])
            for row in rows
            if row["message_id"] in wanted
        }

    def keep_claimed(self, entry_ids: list[str]) -> set[str]:
        """Of these entries, those still delivered to this consumer, their idle time reset
        (XCLAIM JUSTID, which counts no delivery): an entry kept in hand for a retry is not
        taken as abandoned by another replica meanwhile. One another consumer claimed already
        is not taken back."""
        ours = [i for i in entry_ids if i in self.delivery_counts(entry_ids)]
        if ours:
            self._redis.xclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=0,
                message_ids=ours,
                justid=True,
            )
        return set(ours)

    def set_transaction_hashes(
        self,
        pairs: list[tuple[str, str]],
        *,
        fence: Fence | None = None,
        ack: str | None = None,
    ) -> None:
        """Point each application of the (entity id, hash) pairs at its transaction (after a
        replacement, or when resuming a recorded one), in one transaction and only where the
        hash still exists, so a purge never leaves a hash of one field behind. With `fence`,
        only while that owner holds the lease (else FenceLost, nothing written); with `ack`,
        acknowledge that one stream entry in the same transaction."""
        keys = [application_key(entity_id) for entity_id, _hash in pairs]
        if not keys and ack is None:
            return

        def write(pipe: redis.client.Pipeline) -> None:
            check_fence(pipe, fence)
            exists = [pipe.exists(key) for key in keys]
            pipe.multi()
            for key, (_entity_id, tx_hash), present in zip(keys, pairs, exists):
                if present:
                    pipe.hset(key, "transactionHash", tx_hash)
            if ack is not None:
                pipe.xack(self.stream, self.group, ack)

        self._redis.transaction(write, *keys, *([fence[0]] if fence else []))

    def _xread(self, start: str, *, count: int, block_ms: int | None) -> list[Entry]:
        try:
            reply = self._redis.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
            )
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            log.warning("consumer group %s vanished; creating it again", self.group)
            self.ensure_group()
            return []
        entries: list[Entry] = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                entries.append(Entry(entry_id, dict(fields or {})))
        return entries

    def ack(self, entry_id: str) -> None:
        self._redis.xack(self.stream, self.group, entry_id)

    def stage_submitted(
        self, pipe: redis.client.Pipeline, submitted: list[tuple[str, str, str]]
    ) -> None:
        """Add to `pipe` (inside the write-ahead MULTI): `transactionHash` for each
        (entity id, entry id, hash) and the entry's acknowledgement. The application exists:
        it was just read, and only this processor removes it once a record is confirmed."""
        for entity_id, entry_id, tx_hash in submitted:
            pipe.hset(application_key(entity_id), "transactionHash", tx_hash)
            pipe.xack(self.stream, self.group, entry_id)

    def load_application(self, entity_id: str) -> HashContent:
        """The application hash, guarded by size (see untrusted.HashGuard)."""
        return self.hashes.load(application_key(entity_id))

    def backlog(self) -> StreamBacklog:
        """The group's figures and this consumer's share, in one round trip: replicas share
        the group, so each judges only the entries delivered to itself."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.xinfo_groups(self.stream)
        pipe.xpending(self.stream, self.group)
        groups, summary = pipe.execute(raise_on_error=False)
        for reply in (groups, summary):
            if isinstance(reply, Exception) and not (
                isinstance(reply, redis.ResponseError) and _missing(reply)
            ):
                raise reply
        group = (
            next((g for g in groups if g["name"] == self.group), None)
            if isinstance(groups, list)
            else None
        )
        if group is None or isinstance(summary, Exception):
            return StreamBacklog(group_pending=0, lag=None, own_pending=0)
        lag = group.get("lag")
        own = next(
            (
                int(c["pending"])
                for c in summary.get("consumers") or []
                if c["name"] == self.consumer
            ),
            0,
        )
        return StreamBacklog(
            group_pending=int(group["pending"]),
            lag=int(lag) if lag is not None else None,
            own_pending=own,
        )

    def own_pending(self) -> int:
        """Entries delivered to this consumer and not yet acknowledged."""
        return self.pending_by_consumer().get(self.consumer, 0)

    def pending_by_consumer(self) -> dict[str, int]:
        """Entries delivered and not yet acknowledged, by consumer (those with any)."""
        try:
            summary = self._redis.xpending(self.stream, self.group)
        except redis.ResponseError as error:
            if _missing(error):
                return {}
            raise
        return {c["name"]: int(c["pending"]) for c in summary.get("consumers") or []}


def _missing(error: redis.ResponseError) -> bool:
    """The stream or the group does not exist (yet): nothing is pending."""
    text = str(error)
    return "NOGROUP" in text or "no such key" in text.lower()
