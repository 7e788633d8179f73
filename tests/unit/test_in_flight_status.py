"""One status per transaction in flight: the table of allowed moves, what goes with each
status, and the cache that reads records again without losing their status. The real paths
through the receipt watcher are in test_in_flight_paths.py."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import redis

from depeg_processor import errors
from depeg_processor.wallet.inflight import InFlight, Mined, Tracked, Waiting
from depeg_processor.wallet.lifecycle import MOVES, Status, allowed, move
from depeg_processor.wallet.records import TxRecord, TxRecords

from .test_lifecycle import ENTITY_ID, NOW, tx_hash
from .wallet_harness import STREAM

SETTLED = (Status.CONFIRMED, Status.REVERTED)
ILLEGAL = [pair for pair in itertools.product(Status, Status) if pair not in MOVES]
AT_CAP = "transactions cannot be mined: max fee per gas is at the MAX_FEE_PER_GAS cap 1 wei"


def a_record(n: int = 1, *, entity_id: str = ENTITY_ID, nonce: int = 0) -> TxRecord:
    return TxRecord(
        entity_id=entity_id,
        tx_hash=tx_hash(n),
        nonce=nonce,
        raw="0x02" + f"{n:02x}",
        gas=100_000,
        max_fee_per_gas=10**9,
        signed_at=NOW,
        data="0x1234",
    )


def a_receipt(block: int = 12) -> Mined:
    return Mined(
        tx_hash=tx_hash(1), block=block, block_hash="0xb1", status=1, gas_used=1, seen_at_head=12
    )


# -- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize("current, to", list(MOVES), ids=lambda s: s.value)
def test_each_move_of_the_table_is_allowed(current, to) -> None:
    assert allowed(current, to)
    assert move(current, to) is to


@pytest.mark.parametrize("current, to", ILLEGAL, ids=lambda s: s.value)
def test_every_other_move_raises_an_illegal_move(current, to) -> None:
    assert not allowed(current, to)
    with pytest.raises(errors.IllegalMove, match=f"from {current.value} to {to.value}$"):
        move(current, to)


def test_the_table_leaves_some_moves_out() -> None:
    """The table is a choice, not every pair: the checks above test something."""
    assert len(ILLEGAL) > len(MOVES) > 0
    assert (Status.MINED, Status.STUCK) in ILLEGAL and (Status.STUCK, Status.REFUSED) in ILLEGAL


def test_settled_is_final_and_every_status_can_still_be_settled() -> None:
    assert not [pair for pair in MOVES if pair[0] in SETTLED]
    reach = {status: {status} for status in Status}
    for _ in Status:  # the closure of the moves, one step per round
        for current, to in MOVES:
            reach[current] |= reach[to]
    assert reach[Status.SENT] == set(Status), "every status is on some path from a send"
    for status in set(Status) - set(SETTLED):
        assert set(SETTLED) <= reach[status], f"{status.value} can still be settled"


# -- what goes with a status ----------------------------------------------------------------


def test_a_new_transaction_in_flight_is_sent() -> None:
    tracked = Tracked(a_record())
    assert (tracked.status, tracked.mined, tracked.stuck, tracked.waiting) == (
        Status.SENT,
        None,
        None,
        None,
    )


def test_mined_comes_with_its_receipt_and_stops_the_waiting_clock() -> None:
    tracked = Tracked(a_record(), waiting=Waiting(head=10, since=1.0))
    with pytest.raises(errors.IllegalMove, match="receipt"):
        tracked.move(Status.MINED)
    assert tracked.status is Status.SENT and tracked.waiting is not None, "unchanged"

    tracked.move(Status.MINED, mined=a_receipt())
    assert (tracked.status, tracked.mined, tracked.waiting) == (Status.MINED, a_receipt(), None)


def test_stuck_comes_with_its_reason_which_goes_when_it_leaves() -> None:
    tracked = Tracked(a_record())
    with pytest.raises(errors.IllegalMove, match="reason"):
        tracked.move(Status.STUCK)
    tracked.move(Status.STUCK, stuck=AT_CAP)
    assert (tracked.status, tracked.stuck) == (Status.STUCK, AT_CAP)
    tracked.move(Status.MINED, mined=a_receipt())
    assert tracked.stuck is None


def test_no_other_status_takes_a_receipt_or_a_reason() -> None:
    tracked = Tracked(a_record())
    with pytest.raises(errors.IllegalMove):
        tracked.move(Status.SENT, mined=a_receipt())
    with pytest.raises(errors.IllegalMove):
        tracked.move(Status.REFUSED, stuck=AT_CAP)
    assert tracked.status is Status.SENT


def test_an_illegal_move_leaves_the_transaction_as_it_was() -> None:
    tracked = Tracked(a_record())
    tracked.move(Status.MINED, mined=a_receipt())
    with pytest.raises(errors.IllegalMove, match="from mined to stuck"):
        tracked.move(Status.STUCK, stuck=AT_CAP)
    assert (tracked.status, tracked.mined, tracked.stuck) == (Status.MINED, a_receipt(), None)


def test_a_reorganised_block_takes_the_receipt_away() -> None:
    tracked = Tracked(a_record())
    tracked.move(Status.MINED, mined=a_receipt())
    tracked.move(Status.SENT)
    assert (tracked.status, tracked.mined) == (Status.SENT, None)
    tracked.move(Status.MINED, mined=a_receipt(block=14))
    assert tracked.mined.block == 14


# -- the cache: refusals told, records read again -------------------------------------------


class Cache:
    def __init__(self, client) -> None:
        self.redis = client
        self.records = TxRecords(client, prefix=STREAM)
        self.in_flight = InFlight(self.records, now=lambda: NOW)

    def put(self, *records: TxRecord) -> None:
        for record in records:
            self.records.put(record)

    def read(self) -> list[TxRecord]:
        return self.in_flight.read()[0]


@pytest.fixture
def cache(fake_redis) -> Cache:
    return Cache(fake_redis)


def test_a_refusal_told_moves_the_transaction_to_refused_at_the_next_read(cache) -> None:
    cache.put(a_record())
    cache.read()
    cache.in_flight.refused_below_base_fee([a_record()])
    assert cache.in_flight.refusals_waiting
    assert cache.in_flight[ENTITY_ID].status is Status.SENT, "told, not yet read"
    cache.read()
    assert cache.in_flight[ENTITY_ID].status is Status.REFUSED
    assert not cache.in_flight.refusals_waiting


def test_a_refusal_of_a_replaced_or_mined_transaction_changes_nothing(cache) -> None:
    cache.put(a_record(1), a_record(2, entity_id="app-2", nonce=1))
    cache.read()
    cache.in_flight["app-2"].move(Status.MINED, mined=a_receipt())
    cache.in_flight.refused_below_base_fee(
        [a_record(9), a_record(2, entity_id="app-2", nonce=1)]  # app-1's is no longer 9
    )
    cache.read()
    assert cache.in_flight[ENTITY_ID].status is Status.SENT
    assert cache.in_flight["app-2"].status is Status.MINED


def test_a_record_read_again_keeps_its_status(cache) -> None:
    """A failed replacement may have stored a new record of the same nonce: the cache reads it
    again, and a stuck transaction stays stuck."""
    cache.put(a_record(1))
    cache.read()
    cache.in_flight[ENTITY_ID].move(Status.STUCK, stuck=AT_CAP)
    replacement = dataclasses.replace(a_record(2), previous_hashes=(tx_hash(1),))
    cache.put(replacement)
    assert cache.read() == [a_record(1)], "same nonce: not read again unasked"

    cache.in_flight.read_again([ENTITY_ID])
    assert cache.read() == [replacement]
    tracked = cache.in_flight[ENTITY_ID]
    assert (tracked.record, tracked.status, tracked.stuck) == (replacement, Status.STUCK, AT_CAP)
    assert cache.in_flight.stuck_reasons() == {AT_CAP}


def test_a_record_to_read_again_that_is_no_longer_stored_is_forgotten(cache) -> None:
    cache.put(a_record(1), a_record(2, entity_id="app-2", nonce=1))
    cache.read()
    cache.redis.delete(f"{STREAM}:tx:{ENTITY_ID}", f"{STREAM}:tx:app-2")  # set left as it was
    assert len(cache.read()) == 2, "not asked to read again: the cached records stand"
    cache.in_flight.read_again(["app-2"])
    assert cache.read() == [a_record(1)]
    assert cache.in_flight.get("app-2") is None


def test_after_a_take_over_each_record_is_read_again_and_keeps_its_status(cache) -> None:
    cache.put(a_record(1), a_record(2, entity_id="app-2", nonce=1))
    cache.read()
    cache.in_flight[ENTITY_ID].move(Status.MINED, mined=a_receipt())
    cache.in_flight["app-2"].waiting = Waiting(head=10, since=1.0)
    other = a_record(3, entity_id="app-2", nonce=1)
    cache.put(other)  # another sender replaced it meanwhile

    cache.in_flight.invalidate()
    records, started_over = cache.in_flight.read()
    assert started_over and records == [a_record(1), other]
    assert cache.in_flight[ENTITY_ID].status is Status.MINED
    assert (cache.in_flight["app-2"].status, cache.in_flight["app-2"].waiting) == (
        Status.SENT,
        None,
    ), "the waiting clock starts again"


class FailingOnce(TxRecords):
    """The records, whose next `failures` reads of records fail."""

    failures = 0

    def get_many(self, entity_ids):
        if self.failures:
            self.failures -= 1
            raise redis.ConnectionError("the read failed")
        return super().get_many(entity_ids)


def test_a_failed_read_reads_the_records_again_at_the_next(fake_redis) -> None:
    records = FailingOnce(fake_redis, prefix=STREAM)
    in_flight = InFlight(records, now=lambda: NOW)
    records.put(a_record(1))
    in_flight.read()
    records.put(a_record(2))  # same nonce
    in_flight.invalidate()
    records.failures = 1
    with pytest.raises(redis.ConnectionError):
        in_flight.read()
    assert in_flight.read()[0] == [a_record(2)]
