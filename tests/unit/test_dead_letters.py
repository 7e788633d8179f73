"""inbound.dead_letters over an in-memory Redis: letters set aside, escaped and restored."""

from __future__ import annotations

import json

import pytest
import redis

from depeg_processor.inbound.dead_letters import LETTER_MAX_BYTES, DeadLetters
from depeg_processor.inbound.stream import StreamQueue

from .helpers import ENTITY_ID, signed_fields
from .stream_helpers import DEAD, KEY, STREAM, deliver, deliver_only, make_queue


@pytest.fixture
def queue(fake_redis) -> StreamQueue:
    return make_queue(fake_redis)


@pytest.fixture
def letters(queue) -> DeadLetters:
    return queue.dead_letters


def test_dead_letter_records_acks_and_deletes(fake_redis, queue, letters) -> None:
    fields = signed_fields()
    entry_id = deliver(fake_redis, queue, fields)
    dead_id = letters.set_aside(
        entity_id=ENTITY_ID,
        reason="field duration: bad",
        application=fields,
        entry_id=entry_id,
        entry_fields={"entityId": ENTITY_ID},
    )
    [(found_id, record)] = letters.list()
    assert found_id == dead_id
    assert record["entityId"] == ENTITY_ID
    assert record["reason"] == "field duration: bad"
    assert record["streamEntryId"] == entry_id
    assert json.loads(record["application"]) == fields
    assert record["failedAt"] == "1795830700.500"
    assert "streamEntry" not in record  # only kept when it says more than the entityId
    assert queue.backlog().group_pending == 0
    assert not fake_redis.exists(KEY)


def test_dead_letter_keeps_an_odd_stream_entry(fake_redis, queue, letters) -> None:
    entry_id = fake_redis.xadd(STREAM, {"foo": "bar"})
    queue.read(count=10, block_ms=1)
    letters.set_aside(
        entity_id=None,
        reason="stream entry has no entityId",
        application={},
        entry_id=entry_id,
        entry_fields={"foo": "bar"},
    )
    [(_, record)] = letters.list()
    assert record["entityId"] == ""
    assert json.loads(record["streamEntry"]) == {"foo": "bar"}
    assert queue.backlog().group_pending == 0


def test_restore_puts_the_application_back_on_the_stream(fake_redis, queue, letters) -> None:
    fields = signed_fields(transactionHash="0x" + "cd" * 32)
    entry_id = deliver(fake_redis, queue, fields)
    dead_id = letters.set_aside(
        entity_id=ENTITY_ID, reason="reverted", application=fields, entry_id=entry_id
    )
    new_entry = letters.restore(dead_id)
    restored = fake_redis.hgetall(KEY)
    assert "transactionHash" not in restored
    assert restored == signed_fields()
    assert letters.list() == []
    [entry] = queue.read(count=10, block_ms=1)
    assert (entry.entry_id, entry.entity_id) == (new_entry, ENTITY_ID)


def test_restore_of_unknown_or_empty_dead_letter_is_refused(fake_redis, queue, letters) -> None:
    with pytest.raises(KeyError):
        letters.restore("1-1")
    dead_id = letters.set_aside(entity_id=ENTITY_ID, reason="not found", application={})
    with pytest.raises(ValueError):
        letters.restore(dead_id)
    assert len(letters.list()) == 1


def test_failed_dead_letter_write_loses_nothing(fake_redis, queue, letters) -> None:
    entry_id = deliver(fake_redis, queue)
    fake_redis.set(DEAD, "not a stream")  # e.g. REDIS_QUEUE_DEAD_LETTER_KEY set to a used key
    with pytest.raises(redis.ResponseError):
        letters.set_aside(entity_id=ENTITY_ID, reason="bad", application={}, entry_id=entry_id)
    assert fake_redis.exists(KEY)
    assert queue.backlog().group_pending == 1


def test_a_dead_letter_keeps_bytes_that_are_not_utf8_escaped_and_restore_writes_them_back(
    fake_redis, raw_redis, queue, letters
) -> None:
    raw_redis.hset(
        KEY.encode(), mapping={k.encode(): v.encode() for k, v in signed_fields().items()}
    )
    raw_redis.hset(KEY.encode(), b"duration", b"25\xff92000")
    raw_redis.hset(KEY.encode(), b"n\xfe", b"1")
    original = raw_redis.hgetall(KEY.encode())
    raw_redis.xadd(STREAM, {b"entityId": ENTITY_ID.encode()})
    [entry] = queue.read(count=10, block_ms=1)
    dead_id = letters.set_aside(
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

    letters.restore(dead_id)
    assert raw_redis.hgetall(KEY.encode()) == original


@pytest.mark.parametrize("entity_id", ["a:b", "A B", ENTITY_ID + "\n", "x" * 10_000, "ab\udcffcd"])
def test_a_dead_letter_under_an_invalid_id_keeps_its_hash_and_the_id_escaped(
    fake_redis, queue, entity_id, letters
) -> None:
    fields = signed_fields()
    fake_redis.hset(f"PendingApplication:{entity_id}", mapping=fields)
    entry_id = fake_redis.xadd(STREAM, {"entityId": entity_id})
    queue.read(count=10, block_ms=1)
    dead_id = letters.set_aside(
        entity_id=entity_id,
        reason="entityId is not a valid id",
        kind="invalid_entry",
        entry_id=entry_id,
        application=queue.load_application(entity_id),
        entry_fields={"entityId": entity_id},
    )
    [(_, record)] = letters.list()
    assert json.loads(record["application"]) == fields
    assert "\n" not in record["entityId"] and len(record["entityId"]) < 1100
    assert "\n" not in record["streamEntry"] and len(record["streamEntry"]) < 1200
    if len(entity_id) > 1024:
        assert record["entityId"].endswith("…[10000 bytes]")
    assert not fake_redis.exists(f"PendingApplication:{entity_id}")
    assert queue.backlog().group_pending == 0
    with pytest.raises(ValueError, match="no application to requeue"):
        letters.restore(dead_id)


def test_a_dead_letter_never_copies_megabytes_of_a_stream_entry(fake_redis, queue, letters) -> None:
    huge = {"entityId": "E" * 2_000_000, "note": "n" * 3_000_000}
    entry_id = fake_redis.xadd(STREAM, huge)
    queue.read(count=10, block_ms=1)
    letters.set_aside(
        entity_id=huge["entityId"],
        reason="entityId 'EEE'… is not a valid id",
        kind="invalid_entry",
        application={},
        entry_id=entry_id,
        entry_fields=huge,
    )
    [(_, record)] = letters.list()
    assert sum(len(value) for value in record.values()) < 5000
    assert json.loads(record["streamEntry"])["note"].endswith("…[3000000 bytes]")
    assert record["entityId"].endswith("…[2000000 bytes]")


def test_a_hash_too_large_to_load_is_dead_lettered_with_its_sizes(
    fake_redis, queue, letters
) -> None:
    fake_redis.hset(KEY, mapping=signed_fields(signature="0x" + "ab" * 100_000))
    entry_id = deliver_only(fake_redis, queue)
    content = queue.load_application(ENTITY_ID)
    dead_id = letters.set_aside(
        entity_id=ENTITY_ID,
        reason="too large",
        kind="too_large",
        application=content,
        entry_id=entry_id,
    )
    [(_, record)] = letters.list()
    assert json.loads(record["application"]) == {}
    assert json.loads(record["sizes"])["oversized"] == [
        {"name": "signature", "nameBytes": 9, "valueBytes": 200_002}
    ]
    assert not fake_redis.exists(KEY)
    with pytest.raises(ValueError):
        letters.restore(dead_id)


def test_dead_letters_of_their_own_see_and_restore_what_the_queue_set_aside(
    fake_redis, queue, letters, caplog
) -> None:
    fields = signed_fields()
    entry_id = deliver(fake_redis, queue, fields)
    with caplog.at_level("WARNING"):
        dead_id = letters.set_aside(
            entity_id=ENTITY_ID,
            reason="bad",
            kind="invalid_field",
            application=fields,
            entry_id=entry_id,
        )
    assert caplog.messages == [
        f"dead-lettered application '{ENTITY_ID}' (entry {entry_id}) as {dead_id}"
        " (invalid_field): 'bad'"
    ]
    alone = DeadLetters(fake_redis, stream=STREAM, group="g", key=DEAD)
    assert [i for i, _ in alone.list()] == [dead_id]
    new_entry = alone.restore(dead_id)
    assert fake_redis.hgetall(KEY) == fields and letters.list() == []
    [entry] = queue.read(count=10, block_ms=1)
    assert entry.entry_id == new_entry


def test_a_wallets_record_goes_in_the_same_transaction_as_the_application(
    fake_redis, queue, letters
) -> None:
    """A transaction that reverted on chain: its record, the application and the entry go
    together, once the letter is stored; a crash before that commit loses nothing."""
    from depeg_processor.wallet.records import TxRecord, TxRecords

    records = TxRecords(fake_redis, prefix=STREAM)
    fields = signed_fields()
    entry_id = deliver(fake_redis, queue, fields)
    records.put(TxRecord(entity_id=ENTITY_ID, tx_hash="0x" + "ab" * 32, nonce=4, raw="0x02"))

    def crash(remove) -> None:
        raise ConnectionError("the process died here")

    with pytest.raises(ConnectionError):
        letters.set_aside(
            entity_id=ENTITY_ID,
            reason="reverted",
            application=fields,
            entry_id=entry_id,
            commit=crash,
        )
    assert len(letters.list()) == 1
    assert fake_redis.exists(KEY) and records.get(ENTITY_ID) is not None
    assert queue.backlog().group_pending == 1

    letters.set_aside(
        entity_id=ENTITY_ID,
        reason="reverted",
        application=fields,
        entry_id=entry_id,
        commit=lambda remove: records.forget(ENTITY_ID, also=remove),
    )
    assert not fake_redis.exists(KEY)
    assert records.get(ENTITY_ID) is None and records.count() == 0
    assert queue.backlog().group_pending == 0


def test_a_letter_is_capped_and_says_how_large_it_was(fake_redis, queue, letters) -> None:
    """Four fields of 60 KB of bytes that are not UTF-8: under the loader's limits, but its
    escaped copy would be about 1.5 MB; the letter drops it and keeps the size."""
    fields = signed_fields()
    fields.update({f"junk{i}": b"\xff" * 60_000 for i in range(4)})
    fake_redis.hset(KEY, mapping=fields)
    entry_id = deliver_only(fake_redis, queue)
    content = queue.load_application(ENTITY_ID)
    assert content.sizes is None, "loaded whole: within the untrusted-input limits"
    dead_id = letters.set_aside(
        entity_id=ENTITY_ID,
        reason="application has unknown fields",
        kind="invalid_field",
        application=content,
        entry_id=entry_id,
        entry_fields={"entityId": ENTITY_ID},
    )
    [(_, record)] = letters.list()
    assert sum(len(k) + len(v) for k, v in record.items()) <= LETTER_MAX_BYTES
    assert int(record["originalBytes"]) > 1_000_000
    assert record["reason"] == "application has unknown fields"
    assert record["kind"] == "invalid_field" and record["entityId"] == ENTITY_ID
    assert json.loads(record["application"]) == {}
    with pytest.raises(ValueError, match="no application to requeue"):
        letters.restore(dead_id)


def test_a_small_letter_is_kept_whole_without_a_size(fake_redis, queue, letters) -> None:
    fields = signed_fields()
    entry_id = deliver(fake_redis, queue, fields)
    letters.set_aside(entity_id=ENTITY_ID, reason="bad", application=fields, entry_id=entry_id)
    [(_, record)] = letters.list()
    assert "originalBytes" not in record
    assert json.loads(record["application"]) == fields


def test_the_dead_letters_keep_at_most_their_count(fake_redis) -> None:
    queue = make_queue(fake_redis, max_letters=5)
    for n in range(12):
        queue.dead_letters.set_aside(entity_id=None, reason=f"bad {n}", application={})
    kept = [record["reason"] for _, record in queue.dead_letters.list()]
    assert kept == [f"bad {n}" for n in range(7, 12)]


def test_dead_letters_older_than_their_retention_are_trimmed(fake_redis) -> None:
    now = [1_700_000_000.0]
    letters = DeadLetters(fake_redis, stream=STREAM, group="g", key=DEAD, clock=lambda: now[0])
    for n in range(3):
        fake_redis.xadd(DEAD, {"reason": f"old {n}"}, id=f"{int((now[0] - 86_400) * 1000)}-{n}")
    fake_redis.xadd(DEAD, {"reason": "new"}, id=f"{int(now[0] * 1000)}-0")
    assert letters.trim(older_than=3600) == 3
    assert [record["reason"] for _, record in letters.list()] == ["new"]
    assert letters.trim(older_than=0) == 0
