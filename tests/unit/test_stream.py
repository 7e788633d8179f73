"""inbound.stream over an in-memory Redis: consumer-group reading, settling, the backlog."""

from __future__ import annotations

import pytest

from depeg_processor import errors
from depeg_processor.inbound.stream import StreamBacklog, StreamQueue
from depeg_processor.wallet.records import TxRecords

from .helpers import ENTITY_ID, signed_fields
from .stream_helpers import CONSUMER, DEAD, GROUP, KEY, STREAM, deliver, ids, make_queue


@pytest.fixture
def queue(fake_redis) -> StreamQueue:
    return make_queue(fake_redis)


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


def test_group_pending(fake_redis, queue) -> None:
    assert queue.backlog().group_pending == 0
    for entity in ("A", "B", "C"):
        fake_redis.xadd(STREAM, {"entityId": entity})
    entries = queue.read(count=10, block_ms=1)
    assert queue.backlog().group_pending == 3
    queue.ack(entries[0].entry_id)
    assert queue.backlog().group_pending == 2


def test_group_pending_without_group_is_zero(fake_redis) -> None:
    queue = StreamQueue(
        fake_redis, stream=STREAM, group=GROUP, consumer=CONSUMER, dead_letter_key=DEAD
    )
    assert queue.backlog().group_pending == 0


def test_vanished_group_is_recreated(fake_redis, queue) -> None:
    fake_redis.xgroup_destroy(STREAM, GROUP)
    assert queue.read(count=10, block_ms=1) == []
    assert [g["name"] for g in fake_redis.xinfo_groups(STREAM)] == [GROUP]


def test_set_transaction_hashes_with_ack_writes_the_hash_and_acks(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue)
    tx = "0x" + "ab" * 32
    queue.set_transaction_hashes([(ENTITY_ID, tx)], ack=entry_id)
    assert fake_redis.hget(KEY, "transactionHash") == tx
    assert fake_redis.hget(KEY, "signatureId") == signed_fields()["signatureId"]
    assert queue.backlog().group_pending == 0


def test_set_transaction_hashes_never_creates_a_one_field_hash(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue)
    fake_redis.delete(KEY)  # purged meanwhile
    queue.set_transaction_hashes([(ENTITY_ID, "0x" + "ab" * 32)], ack=entry_id)
    assert not fake_redis.exists(KEY)
    assert queue.backlog().group_pending == 0


def test_a_fenced_ack_is_written_with_the_hash_or_not_at_all(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue)
    tx = "0x" + "ab" * 32
    fake_redis.set("lease", "other")
    with pytest.raises(errors.FenceLost):
        queue.set_transaction_hashes([(ENTITY_ID, tx)], fence=("lease", "me"), ack=entry_id)
    assert fake_redis.hget(KEY, "transactionHash") is None
    assert queue.backlog().group_pending == 1
    fake_redis.set("lease", "me")
    queue.set_transaction_hashes([(ENTITY_ID, tx)], fence=("lease", "me"), ack=entry_id)
    assert fake_redis.hget(KEY, "transactionHash") == tx
    assert queue.backlog().group_pending == 0


def test_send_back_drops_record_and_hash_and_enqueues_again(fake_redis, queue) -> None:
    entry_id = deliver(fake_redis, queue, signed_fields(transactionHash="0x" + "ab" * 32))
    queue.ack(entry_id)
    fake_redis.hset("rec:tx:" + ENTITY_ID, mapping={"txHash": "0x" + "ab" * 32})
    fake_redis.zadd("rec:inflight", {ENTITY_ID: 4})
    new_entry = TxRecords(fake_redis, prefix="rec", stream=STREAM).send_back(ENTITY_ID)
    assert not fake_redis.exists("rec:tx:" + ENTITY_ID)
    assert fake_redis.zcard("rec:inflight") == 0
    assert fake_redis.hgetall(KEY) == signed_fields()
    [entry] = queue.read(count=10, block_ms=1)
    assert (entry.entry_id, entry.entity_id) == (new_entry, ENTITY_ID)


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


def test_send_back_and_dead_letter_free_the_application_for_any_wallet(fake_redis, queue) -> None:
    owner = f"{STREAM}:owner:{ENTITY_ID}"
    fake_redis.set(owner, "0x" + "11" * 20)
    TxRecords(fake_redis, prefix="rec", stream=STREAM).send_back(ENTITY_ID)
    assert not fake_redis.exists(owner)
    fake_redis.set(owner, "0x" + "11" * 20)
    queue.dead_letters.set_aside(entity_id=ENTITY_ID, reason="r", application={})
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


def test_an_entry_kept_for_a_retry_stays_ours_and_one_claimed_by_another_is_not_taken_back(
    fake_redis,
) -> None:
    mine, other = make_queue(fake_redis, "mine"), make_queue(fake_redis, "other")
    fake_redis.xadd(STREAM, {"entityId": "E1"})
    [entry] = mine.read(count=1, block_ms=1)
    assert mine.keep_claimed([entry.entry_id]) == {entry.entry_id}
    assert mine.delivery_counts([entry.entry_id]) == {entry.entry_id: 1}, "no delivery counted"
    other.claim_idle = 0.0  # as if it had been idle for longer than the lease
    assert other.claim_abandoned() == 1
    assert mine.keep_claimed([entry.entry_id]) == set(), "the claimer's now"
    assert other.own_pending() == 1 and mine.own_pending() == 0
