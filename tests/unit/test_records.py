"""records.TxRecords: the write-ahead transaction records and the in-flight work list."""

from __future__ import annotations

import pytest

from depeg_processor.errors import OwnedElsewhere
from depeg_processor.wallet.records import TxRecord, TxRecords


@pytest.fixture
def records(fake_redis) -> TxRecords:
    return TxRecords(fake_redis, prefix="application:signatures")


def record(entity_id: str, nonce: int, **kwargs) -> TxRecord:
    return TxRecord(
        entity_id=entity_id,
        tx_hash="0x" + f"{nonce:064x}",
        nonce=nonce,
        raw="0x02f8" + "00" * 10,
        **kwargs,
    )


def in_flight(records: TxRecords) -> list[TxRecord]:
    """The records in flight, lowest nonce first, read as the receipt watcher reads them."""
    return sorted(
        records.get_many(list(records.inflight_nonces())).values(), key=lambda record: record.nonce
    )


def test_put_then_get_round_trips(records) -> None:
    original = record(
        "A",
        7,
        gas=120000,
        max_fee_per_gas=30 * 10**9,
        max_priority_fee_per_gas=10**9,
        stream_entry_id="1-0",
        signed_at=1795830700.25,
        enqueued_at=1795830693.764,
    )
    records.put(original)
    assert records.get("A") == original
    assert records.get("B") is None


def test_record_without_enqueue_time_round_trips(records) -> None:
    records.put(record("A", 1))
    assert records.get("A").enqueued_at is None


def test_put_replaces_an_older_record(records) -> None:
    records.put(record("A", 3))
    records.put(record("A", 5))
    assert records.get("A").nonce == 5
    assert [r.nonce for r in in_flight(records)] == [5]


def test_in_flight_is_ordered_by_nonce_and_highest_nonce(records) -> None:
    assert in_flight(records) == [] and records.highest_nonce() is None
    for entity, nonce in (("B", 12), ("A", 10), ("C", 11)):
        records.put(record(entity, nonce))
    assert [r.entity_id for r in in_flight(records)] == ["A", "C", "B"]
    assert records.highest_nonce() == 12
    assert records.count() == 3


def test_forget_drops_record_and_work_item_but_not_the_application(fake_redis, records) -> None:
    fake_redis.hset("PendingApplication:A", "bundleId", "2")
    records.put(record("A", 1))
    records.put(record("B", 2))
    records.forget("B")
    assert records.get("B") is None
    assert [r.entity_id for r in in_flight(records)] == ["A"]
    assert records.highest_nonce() == 1
    assert fake_redis.exists("PendingApplication:A")


def test_complete_removes_the_application_too(fake_redis, records) -> None:
    fake_redis.hset("PendingApplication:A", "bundleId", "2")
    fake_redis.hset("PendingApplication:B", "bundleId", "2")
    records.put(record("A", 1))
    records.put(record("B", 2))
    records.complete_many([("A", "0xmined")])
    assert records.get("A") is None and not fake_redis.exists("PendingApplication:A")
    assert fake_redis.exists("PendingApplication:B")
    assert [r.entity_id for r in in_flight(records)] == ["B"]
    assert records.completed_as("A") == "0xmined" and records.completed_as("B") is None
    assert 0 < fake_redis.ttl(records.done_key("A")) <= 7 * 24 * 3600


def test_a_fenced_write_needs_the_lease(fake_redis, records) -> None:
    from depeg_processor.wallet.records import FenceLost

    fake_redis.set("lease", "someone-else")
    with pytest.raises(FenceLost):
        records.put_many([record("A", 1)], fence=("lease", "me"))
    assert records.get("A") is None and records.count() == 0
    fake_redis.set("lease", "me")
    records.put_many([record("A", 1)], fence=("lease", "me"))
    assert records.get("A").nonce == 1


# -- one application, one wallet --------------------------------------------------------------

STREAM = "application:signatures"
FIRST, SECOND = "0x" + "11" * 20, "0x" + "22" * 20


def wallet_records(fake_redis, address: str, prefix: str = STREAM) -> TxRecords:
    return TxRecords(fake_redis, prefix=prefix, stream=STREAM, owner=address)


def test_the_first_wallet_to_record_an_application_owns_it(fake_redis) -> None:
    first = wallet_records(fake_redis, FIRST)
    second = wallet_records(fake_redis, SECOND, prefix=f"{STREAM}:wallet:{SECOND}")
    first.put(record("A", 0))
    assert fake_redis.get(f"{STREAM}:owner:A") == FIRST
    with pytest.raises(OwnedElsewhere) as refused:
        second.put_many([record("B", 0), record("A", 1)])
    assert refused.value.taken == [("A", FIRST)]
    assert second.inflight_nonces() == {} and second.get("B") is None, "nothing of the batch"
    assert fake_redis.get(f"{STREAM}:owner:B") is None
    assert second.owned_elsewhere("A") == FIRST and first.owned_elsewhere("A") is None
    first.put(record("A", 0, max_fee_per_gas=2))  # its own replacement goes through
    second.put(record("B", 0))
    assert fake_redis.get(f"{STREAM}:owner:B") == SECOND


def test_confirming_or_forgetting_clears_the_owner_and_the_done_marker_is_the_streams(
    fake_redis,
) -> None:
    second = wallet_records(fake_redis, SECOND, prefix=f"{STREAM}:wallet:{SECOND}")
    second.put_many([record("A", 0), record("B", 1)])
    second.complete_many([("A", "0xmined")])
    second.forget("B")
    assert fake_redis.get(f"{STREAM}:owner:A") is None
    assert fake_redis.get(f"{STREAM}:owner:B") is None
    assert fake_redis.get(f"{STREAM}:done:A") == "0xmined", "whichever wallet sent it"
    assert second.completed_as("A") == "0xmined"


def test_records_written_before_owners_existed_are_claimed_by_their_wallet(fake_redis) -> None:
    TxRecords(fake_redis, prefix=STREAM).put_many([record("A", 0), record("B", 1)])
    fake_redis.set(f"{STREAM}:owner:B", FIRST)
    assert wallet_records(fake_redis, FIRST).claim_owners() == 1
    assert fake_redis.get(f"{STREAM}:owner:A") == FIRST
