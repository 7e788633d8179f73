"""queue.StreamQueue over an in-memory Redis: consumer-group reading, settling and dead letters."""
from __future__ import annotations

import json

import pytest

from depeg_processor.queue import StreamQueue

from .helpers import ENTITY_ID, signed_fields

STREAM, GROUP, CONSUMER, DEAD = "application:signatures", "g", "c", "application:signatures:dead"
KEY = f"PendingApplication:{ENTITY_ID}"


def make_queue(client, consumer: str = CONSUMER) -> StreamQueue:
    queue = StreamQueue(client, stream=STREAM, group=GROUP, consumer=consumer,
                        dead_letter_key=DEAD, clock=lambda: 1795830700.5)
    queue.ensure_group()
    return queue


@pytest.fixture
def queue(fake_redis) -> StreamQueue:
    return make_queue(fake_redis)


def ids(entries) -> list[str]:
    return [entry.entity_id for entry in entries]


def test_ensure_group_is_idempotent_and_keeps_existing_entries(fake_redis) -> None:
    fake_redis.xadd(STREAM, {"entityId": "A"})
    queue = make_queue(fake_redis)
    queue.ensure_group()
    assert [g["name"] for g in fake_redis.xinfo_groups(STREAM)] == [GROUP]
    assert ids(queue.read(count=10, block_ms=1)) == ["A"]


def test_unacknowledged_entries_come_back_to_the_same_consumer_first(fake_redis, queue) -> None:
    for entity in ("A", "B"):
        fake_redis.xadd(STREAM, {"entityId": entity})
    assert ids(queue.read(count=10, block_ms=1)) == ["A", "B"]
    fake_redis.xadd(STREAM, {"entityId": "C"})

    restarted = make_queue(fake_redis)
    assert ids(restarted.read(count=10, block_ms=1)) == ["A", "B"]  # own backlog, via id 0
    for entry in restarted.read(count=10, block_ms=1):  # not acked yet: same again
        restarted.ack(entry.entry_id)
    assert ids(restarted.read(count=10, block_ms=1)) == ["C"]  # then new ones
    assert restarted.read(count=10, block_ms=1) == []


def test_another_consumer_does_not_get_my_backlog(fake_redis, queue) -> None:
    fake_redis.xadd(STREAM, {"entityId": "A"})
    queue.read(count=10, block_ms=1)
    assert make_queue(fake_redis, consumer="other").read(count=10, block_ms=1) == []


def test_rewind_delivers_the_entry_in_hand_again(fake_redis, queue) -> None:
    queue.read(count=10, block_ms=1)  # empty backlog: now reading new entries
    fake_redis.xadd(STREAM, {"entityId": "A"})
    assert ids(queue.read(count=10, block_ms=1)) == ["A"]
    assert queue.read(count=10, block_ms=1) == []
    queue.rewind()
    assert ids(queue.read(count=10, block_ms=1)) == ["A"]


def test_an_entry_deleted_while_pending_comes_back_without_fields(fake_redis, queue) -> None:
    entry_id = fake_redis.xadd(STREAM, {"entityId": "A"})
    queue.read(count=10, block_ms=1)
    fake_redis.xdel(STREAM, entry_id)
    queue.rewind()
    [entry] = queue.read(count=10, block_ms=1)
    assert (entry.entry_id, entry.fields, entry.entity_id) == (entry_id, {}, None)


def test_pending_count(fake_redis, queue) -> None:
    assert queue.pending_count() == 0
    for entity in ("A", "B", "C"):
        fake_redis.xadd(STREAM, {"entityId": entity})
    entries = queue.read(count=10, block_ms=1)
    assert queue.pending_count() == 3
    queue.ack(entries[0].entry_id)
    assert queue.pending_count() == 2


def test_pending_count_without_group_is_zero(fake_redis) -> None:
    queue = StreamQueue(fake_redis, stream=STREAM, group=GROUP, consumer=CONSUMER,
                        dead_letter_key=DEAD)
    assert queue.pending_count() == 0


def test_vanished_group_is_recreated(fake_redis, queue) -> None:
    fake_redis.xgroup_destroy(STREAM, GROUP)
    assert queue.read(count=10, block_ms=1) == []
    assert [g["name"] for g in fake_redis.xinfo_groups(STREAM)] == [GROUP]


def deliver(fake_redis, queue, fields=None) -> str:
    fake_redis.hset(KEY, mapping=fields or signed_fields())
    fake_redis.xadd(STREAM, {"entityId": ENTITY_ID})
    [entry] = queue.read(count=10, block_ms=1)
    return entry.entry_id


def test_dead_letter_records_acks_and_deletes(fake_redis, queue) -> None:
    fields = signed_fields()
    entry_id = deliver(fake_redis, queue, fields)
    dead_id = queue.dead_letter(entity_id=ENTITY_ID, reason="field duration: bad",
                                application=fields, entry_id=entry_id,
                                entry_fields={"entityId": ENTITY_ID})
    [(found_id, record)] = queue.dead_letters()
    assert found_id == dead_id
    assert record["entityId"] == ENTITY_ID
    assert record["reason"] == "field duration: bad"
    assert record["streamEntryId"] == entry_id
    assert json.loads(record["application"]) == fields
    assert record["failedAt"] == "1795830700.500"
    assert "streamEntry" not in record  # only kept when it says more than the entityId
    assert queue.pending_count() == 0
    assert not fake_redis.exists(KEY)


def test_dead_letter_keeps_an_odd_stream_entry(fake_redis, queue) -> None:
    entry_id = fake_redis.xadd(STREAM, {"foo": "bar"})
    queue.read(count=10, block_ms=1)
    queue.dead_letter(entity_id=None, reason="stream entry has no entityId", application={},
                      entry_id=entry_id, entry_fields={"foo": "bar"})
    [(_, record)] = queue.dead_letters()
    assert record["entityId"] == ""
    assert json.loads(record["streamEntry"]) == {"foo": "bar"}
    assert queue.pending_count() == 0


def test_mark_submitted_writes_the_hash_and_acks(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue)
    tx = "0x" + "ab" * 32
    queue.mark_submitted(entry_id, ENTITY_ID, tx)
    assert fake_redis.hget(KEY, "transactionHash") == tx
    assert fake_redis.hget(KEY, "signatureId") == signed_fields()["signatureId"]
    assert queue.pending_count() == 0


def test_mark_submitted_never_creates_a_one_field_hash(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue)
    fake_redis.delete(KEY)  # purged meanwhile
    queue.mark_submitted(entry_id, ENTITY_ID, "0x" + "ab" * 32)
    assert not fake_redis.exists(KEY)
    assert queue.pending_count() == 0


def test_requeue_restores_the_application(fake_redis, queue) -> None:
    fields = signed_fields(transactionHash="0x" + "cd" * 32)
    entry_id = deliver(fake_redis, queue, fields)
    dead_id = queue.dead_letter(entity_id=ENTITY_ID, reason="reverted", application=fields,
                                entry_id=entry_id)
    new_entry = queue.requeue(dead_id)
    restored = fake_redis.hgetall(KEY)
    assert "transactionHash" not in restored
    assert restored == signed_fields()
    assert queue.dead_letters() == []
    [entry] = queue.read(count=10, block_ms=1)
    assert (entry.entry_id, entry.entity_id) == (new_entry, ENTITY_ID)


def test_requeue_of_unknown_or_empty_dead_letter_is_refused(fake_redis, queue) -> None:
    with pytest.raises(KeyError):
        queue.requeue("1-1")
    dead_id = queue.dead_letter(entity_id=ENTITY_ID, reason="not found", application={})
    with pytest.raises(ValueError):
        queue.requeue(dead_id)
    assert len(queue.dead_letters()) == 1


def test_reissue_drops_record_and_hash_and_enqueues_again(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue, signed_fields(transactionHash="0x" + "ab" * 32))
    queue.ack(entry_id)
    fake_redis.hset("rec:tx:" + ENTITY_ID, mapping={"txHash": "0x" + "ab" * 32})
    fake_redis.zadd("rec:inflight", {ENTITY_ID: 4})
    new_entry = queue.reissue(ENTITY_ID, forget="rec:tx:" + ENTITY_ID, inflight_key="rec:inflight")
    assert not fake_redis.exists("rec:tx:" + ENTITY_ID)
    assert fake_redis.zcard("rec:inflight") == 0
    assert fake_redis.hgetall(KEY) == signed_fields()
    [entry] = queue.read(count=10, block_ms=1)
    assert (entry.entry_id, entry.entity_id) == (new_entry, ENTITY_ID)


def test_failed_dead_letter_write_loses_nothing(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue)
    fake_redis.set(DEAD, "not a stream")  # e.g. REDIS_QUEUE_DEAD_LETTER_KEY set to a used key
    with pytest.raises(Exception):
        queue.dead_letter(entity_id=ENTITY_ID, reason="bad", application={}, entry_id=entry_id)
    assert fake_redis.exists(KEY)
    assert queue.pending_count() == 1
