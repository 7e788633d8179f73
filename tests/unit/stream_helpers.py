"""A StreamQueue over the unit tests' in-memory Redis, and entries delivered to it."""

from __future__ import annotations

from depeg_processor.inbound.stream import Entry, StreamQueue

from .helpers import ENTITY_ID, signed_fields

STREAM, GROUP, CONSUMER, DEAD = "application:signatures", "g", "c", "application:signatures:dead"
KEY = f"PendingApplication:{ENTITY_ID}"


def make_queue(client, consumer: str = CONSUMER, max_letters: int | None = None) -> StreamQueue:
    queue = StreamQueue(
        client,
        stream=STREAM,
        group=GROUP,
        consumer=consumer,
        dead_letter_key=DEAD,
        clock=lambda: 1795830700.5,
        max_letters=max_letters,
    )
    queue.ensure_group()
    return queue


def ids(entries: list[Entry]) -> list[str | None]:
    return [entry.entity_id for entry in entries]


def deliver(fake_redis, queue: StreamQueue, fields: dict | None = None) -> str:
    """The application stored and its entry delivered to `queue`: the entry's id."""
    fake_redis.hset(KEY, mapping=fields or signed_fields())
    fake_redis.xadd(STREAM, {"entityId": ENTITY_ID})
    [entry] = queue.read(count=10, block_ms=1)
    return entry.entry_id


def deliver_only(fake_redis, queue: StreamQueue) -> str:
    """An entry for ENTITY_ID delivered to `queue`, whatever its hash holds: the entry's id."""
    fake_redis.xadd(STREAM, {"entityId": ENTITY_ID})
    [entry] = queue.read(count=10, block_ms=1)
    return entry.entry_id
