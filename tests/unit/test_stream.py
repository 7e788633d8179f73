"""inbound.stream over an in-memory Redis: consumer-group reading, settling and dead letters."""

from __future__ import annotations

import json

import pytest
import redis

from depeg_processor import errors
from depeg_processor.inbound.stream import StreamBacklog, StreamQueue

from .helpers import ENTITY_ID, signed_fields

STREAM, GROUP, CONSUMER, DEAD = "application:signatures", "g", "c", "application:signatures:dead"
KEY = f"PendingApplication:{ENTITY_ID}"


def make_queue(client, consumer: str = CONSUMER) -> StreamQueue:
    queue = StreamQueue(
        client,
        stream=STREAM,
        group=GROUP,
        consumer=consumer,
        dead_letter_key=DEAD,
        clock=lambda: 1795830700.5,
    )
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
    queue = StreamQueue(
        fake_redis, stream=STREAM, group=GROUP, consumer=CONSUMER, dead_letter_key=DEAD
    )
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
    dead_id = queue.dead_letter(
        entity_id=ENTITY_ID,
        reason="field duration: bad",
        application=fields,
        entry_id=entry_id,
        entry_fields={"entityId": ENTITY_ID},
    )
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
    queue.dead_letter(
        entity_id=None,
        reason="stream entry has no entityId",
        application={},
        entry_id=entry_id,
        entry_fields={"foo": "bar"},
    )
    [(_, record)] = queue.dead_letters()
    assert record["entityId"] == ""
    assert json.loads(record["streamEntry"]) == {"foo": "bar"}
    assert queue.pending_count() == 0


def test_set_transaction_hashes_with_ack_writes_the_hash_and_acks(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue)
    tx = "0x" + "ab" * 32
    queue.set_transaction_hashes([(ENTITY_ID, tx)], ack=entry_id)
    assert fake_redis.hget(KEY, "transactionHash") == tx
    assert fake_redis.hget(KEY, "signatureId") == signed_fields()["signatureId"]
    assert queue.pending_count() == 0


def test_set_transaction_hashes_never_creates_a_one_field_hash(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue)
    fake_redis.delete(KEY)  # purged meanwhile
    queue.set_transaction_hashes([(ENTITY_ID, "0x" + "ab" * 32)], ack=entry_id)
    assert not fake_redis.exists(KEY)
    assert queue.pending_count() == 0


def test_a_fenced_ack_is_written_with_the_hash_or_not_at_all(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue)
    tx = "0x" + "ab" * 32
    fake_redis.set("lease", "other")
    with pytest.raises(errors.FenceLost):
        queue.set_transaction_hashes([(ENTITY_ID, tx)], fence=("lease", "me"), ack=entry_id)
    assert fake_redis.hget(KEY, "transactionHash") is None
    assert queue.pending_count() == 1
    fake_redis.set("lease", "me")
    queue.set_transaction_hashes([(ENTITY_ID, tx)], fence=("lease", "me"), ack=entry_id)
    assert fake_redis.hget(KEY, "transactionHash") == tx
    assert queue.pending_count() == 0


def test_requeue_restores_the_application(fake_redis, queue) -> None:
    fields = signed_fields(transactionHash="0x" + "cd" * 32)
    entry_id = deliver(fake_redis, queue, fields)
    dead_id = queue.dead_letter(
        entity_id=ENTITY_ID, reason="reverted", application=fields, entry_id=entry_id
    )
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
    with pytest.raises(redis.ResponseError):
        queue.dead_letter(entity_id=ENTITY_ID, reason="bad", application={}, entry_id=entry_id)
    assert fake_redis.exists(KEY)
    assert queue.pending_count() == 1


def test_a_dead_letter_keeps_bytes_that_are_not_utf8_escaped_and_requeue_restores_them(
    fake_redis, raw_redis, queue
) -> None:
    raw_redis.hset(
        KEY.encode(), mapping={k.encode(): v.encode() for k, v in signed_fields().items()}
    )
    raw_redis.hset(KEY.encode(), b"duration", b"25\xff92000")
    raw_redis.hset(KEY.encode(), b"n\xfe", b"1")
    original = raw_redis.hgetall(KEY.encode())
    raw_redis.xadd(STREAM, {b"entityId": ENTITY_ID.encode()})
    [entry] = queue.read(count=10, block_ms=1)
    dead_id = queue.dead_letter(
        entity_id=ENTITY_ID,
        reason="field 'duration': not UTF-8",
        kind="not_utf8",
        application=queue.load_application(ENTITY_ID),
        entry_id=entry.entry_id,
        entry_fields=entry.fields,
    )
    [(_, record)] = raw_redis.xrange(DEAD)
    assert b"\\udcff" in record[b"application"] and b"\\udcfe" in record[b"application"]
    assert all(value.decode("ascii") for value in record.values())  # nothing raw in the letter
    assert record[b"kind"] == b"not_utf8"
    assert not raw_redis.exists(KEY.encode())

    queue.requeue(dead_id)
    assert raw_redis.hgetall(KEY.encode()) == original


@pytest.mark.parametrize("entity_id", ["a:b", "A B", ENTITY_ID + "\n", "x" * 10_000, "ab\udcffcd"])
def test_a_dead_letter_under_an_invalid_id_keeps_its_hash_and_the_id_escaped(
    fake_redis, queue, entity_id
) -> None:
    fields = signed_fields()
    fake_redis.hset(f"PendingApplication:{entity_id}", mapping=fields)
    entry_id = fake_redis.xadd(STREAM, {"entityId": entity_id})
    queue.read(count=10, block_ms=1)
    dead_id = queue.dead_letter(
        entity_id=entity_id,
        reason="entityId is not a valid id",
        kind="invalid_entry",
        entry_id=entry_id,
        application=queue.load_application(entity_id),
        entry_fields={"entityId": entity_id},
    )
    [(_, record)] = queue.dead_letters()
    assert json.loads(record["application"]) == fields
    assert "\n" not in record["entityId"] and len(record["entityId"]) < 1100
    assert "\n" not in record["streamEntry"] and len(record["streamEntry"]) < 1200
    if len(entity_id) > 1024:
        assert record["entityId"].endswith("…[10000 bytes]")
    assert not fake_redis.exists(f"PendingApplication:{entity_id}")
    assert queue.pending_count() == 0
    with pytest.raises(ValueError, match="no application to requeue"):
        queue.requeue(dead_id)


def test_a_dead_letter_never_copies_megabytes_of_a_stream_entry(fake_redis, queue) -> None:
    huge = {"entityId": "E" * 2_000_000, "note": "n" * 3_000_000}
    entry_id = fake_redis.xadd(STREAM, huge)
    queue.read(count=10, block_ms=1)
    queue.dead_letter(
        entity_id=huge["entityId"],
        reason="entityId 'EEE'… is not a valid id",
        kind="invalid_entry",
        application={},
        entry_id=entry_id,
        entry_fields=huge,
    )
    [(_, record)] = queue.dead_letters()
    assert sum(len(value) for value in record.values()) < 5000
    assert json.loads(record["streamEntry"])["note"].endswith("…[3000000 bytes]")
    assert record["entityId"].endswith("…[2000000 bytes]")


def test_a_hash_too_large_to_load_is_dead_lettered_with_its_sizes(fake_redis, queue) -> None:
    fake_redis.hset(KEY, mapping=signed_fields(signature="0x" + "ab" * 100_000))
    entry_id = deliver_only(fake_redis, queue)
    content = queue.load_application(ENTITY_ID)
    dead_id = queue.dead_letter(
        entity_id=ENTITY_ID,
        reason="too large",
        kind="too_large",
        application=content,
        entry_id=entry_id,
    )
    [(_, record)] = queue.dead_letters()
    assert json.loads(record["application"]) == {}
    assert json.loads(record["sizes"])["oversized"] == [
        {"name": "signature", "nameBytes": 9, "valueBytes": 200_002}
    ]
    assert not fake_redis.exists(KEY)
    with pytest.raises(ValueError):
        queue.requeue(dead_id)


def deliver_only(fake_redis, queue) -> str:
    fake_redis.xadd(STREAM, {"entityId": ENTITY_ID})
    [entry] = queue.read(count=10, block_ms=1)
    return entry.entry_id


# -- the pool's consumers ----------------------------------------------------------------------


def test_only_entries_idle_past_the_lease_ttl_are_claimed(fake_redis) -> None:
    dead, live = make_queue(fake_redis, "dead"), make_queue(fake_redis, "live")
    for n in range(3):
        fake_redis.xadd(STREAM, {"entityId": f"E{n}"})
    assert len(dead.read(count=3, block_ms=1)) == 3
    patient = StreamQueue(
        fake_redis,
        stream=STREAM,
        group=GROUP,
        consumer="live",
        dead_letter_key=DEAD,
        claim_idle=3600.0,
    )
    assert patient.claim_abandoned() == 0, "delivered just now: its consumer may be alive"
    live.claim_idle = 0.0  # as if an hour had passed
    assert live.claim_abandoned() == 3
    assert ids(live.read(count=10, block_ms=1)) == ["E0", "E1", "E2"]
    assert ids(dead.read(count=10, block_ms=1)) == []


def test_reissue_and_dead_letter_free_the_application_for_any_wallet(fake_redis, queue) -> None:
    owner = f"{STREAM}:owner:{ENTITY_ID}"
    fake_redis.set(owner, "0x" + "11" * 20)
    queue.reissue(ENTITY_ID, forget="rec:tx:" + ENTITY_ID, inflight_key="rec:inflight")
    assert not fake_redis.exists(owner)
    fake_redis.set(owner, "0x" + "11" * 20)
    queue.dead_letter(entity_id=ENTITY_ID, reason="r", application={})
    assert not fake_redis.exists(owner)


def test_backlog_counts_this_consumers_entries_apart_from_the_groups(fake_redis, queue) -> None:
    other = make_queue(fake_redis, consumer="other")
    assert queue.backlog() == StreamBacklog(group_pending=0, lag=0, own_pending=0)
    for entity in ("A", "B", "C", "D", "E"):
        fake_redis.xadd(STREAM, {"entityId": entity})
    mine = queue.read(count=2, block_ms=1)
    other.read(count=1, block_ms=1)
    assert queue.backlog() == StreamBacklog(group_pending=3, lag=2, own_pending=2)
    assert other.backlog() == StreamBacklog(group_pending=3, lag=2, own_pending=1)
    assert (queue.own_pending(), other.own_pending()) == (2, 1)
    queue.ack(mine[0].entry_id)
    assert queue.backlog().own_pending == 1 and other.backlog().own_pending == 1


def test_backlog_without_stream_or_group_is_empty(fake_redis) -> None:
    queue = StreamQueue(
        fake_redis, stream=STREAM, group=GROUP, consumer=CONSUMER, dead_letter_key=DEAD
    )
    assert queue.backlog() == StreamBacklog(group_pending=0, lag=None, own_pending=0)
    assert queue.own_pending() == 0
    fake_redis.xadd(STREAM, {"entityId": "A"})  # the stream exists, the group does not
    assert queue.backlog() == StreamBacklog(group_pending=0, lag=None, own_pending=0)
    assert queue.own_pending() == 0
