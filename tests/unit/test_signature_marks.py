"""wallet.signatures through TxRecords: every write-ahead marks its signatures in the same
Redis transaction, refuses a first write whose signature another application sent (two
wallets racing: one wins), follows replacements, survives confirmation and goes when the
signature turned out unused."""

from __future__ import annotations

import pytest

from depeg_processor import keys
from depeg_processor.chain.product import ProductCalls
from depeg_processor.errors import SignatureTaken
from depeg_processor.inbound.application import parse_application
from depeg_processor.wallet.records import TxRecord, TxRecords
from depeg_processor.wallet.signatures import DONE_TTL, SignatureMark, mark_lifetime

from .helpers import ENTITY_ID, signed_fields

STREAM = "application:signatures"
FIRST, SECOND = "0x" + "11" * 20, "0x" + "22" * 20
APP = parse_application(ENTITY_ID, signed_fields())
SIGNATURE = "0x" + APP.signature.hex()
CALLDATA = ProductCalls().apply(APP.contract_args())


def wallet(fake_redis, address: str = FIRST, **kwargs) -> TxRecords:
    return TxRecords(
        fake_redis, prefix=f"{STREAM}:wallet:{address}", stream=STREAM, owner=address, **kwargs
    )


def record(entity_id: str, nonce: int = 0, **kwargs) -> TxRecord:
    """A record of APP's call (its signature read from the calldata) under `entity_id`."""
    return TxRecord(
        entity_id=entity_id,
        tx_hash="0x" + f"{nonce + 1:064x}",
        nonce=nonce,
        raw="0x02f8",
        data=CALLDATA,
        **kwargs,
    )


def mark(records: TxRecords) -> SignatureMark | None:
    [found] = records.marks.get_many([APP.signature])
    return found


def test_the_signature_is_read_from_the_calldata_and_stored_with_the_record(fake_redis) -> None:
    records = wallet(fake_redis)
    records.put(record("A"))
    assert records.get("A").signature == SIGNATURE
    assert fake_redis.hget(records.key("A"), "signature") == SIGNATURE
    old = {k: v for k, v in fake_redis.hgetall(records.key("A")).items() if k != "signature"}
    assert TxRecord.from_fields(old).signature == SIGNATURE, "a record of an older version"
    assert TxRecord(entity_id="A", tx_hash="0x1", nonce=0, raw="0x", data="0x12").signature == ""


def test_the_write_ahead_marks_the_signature_with_the_entity_and_its_transaction(
    fake_redis,
) -> None:
    records = wallet(fake_redis)
    records.put(record("A"))
    assert mark(records) == SignatureMark("A", record("A").tx_hash)
    key = keys.signature_key(STREAM, APP.signature)
    assert records.marks.key(SIGNATURE) == key and key.startswith(f"{STREAM}:signature:")
    assert 0 < fake_redis.ttl(key) <= DONE_TTL


def test_a_first_write_of_a_signature_another_application_sent_is_refused_whole(
    fake_redis,
) -> None:
    first, second = wallet(fake_redis, FIRST), wallet(fake_redis, SECOND)
    first.put(record("A"))
    other = TxRecord(entity_id="C", tx_hash="0x" + "cc" * 32, nonce=0, raw="0x02")
    with pytest.raises(SignatureTaken) as refused:
        second.put_many([other, record("B", 1)], also=lambda pipe: pipe.set("also", "1"))
    [(entity_id, original)] = refused.value.taken
    assert entity_id == "B" and "application A" in original and record("A").tx_hash in original
    assert second.get("B") is None and second.get("C") is None and second.count() == 0
    assert not fake_redis.exists("also") and not fake_redis.exists(f"{STREAM}:owner:B")
    assert mark(first).entity_id == "A"


def test_two_copies_in_one_write_ahead_are_refused(fake_redis) -> None:
    records = wallet(fake_redis)
    with pytest.raises(SignatureTaken) as refused:
        records.put_many([record("A", 0), record("B", 1)])
    assert [entity_id for entity_id, _ in refused.value.taken] == ["B"]
    assert records.count() == 0 and mark(records) is None


def test_two_wallets_racing_with_two_copies_only_one_write_ahead_succeeds(fake_redis) -> None:
    """The second wallet read no mark, then the first wallet's write-ahead commits before the
    second's: the WATCH on the mark makes the second read again, and refuse."""
    first, second = wallet(fake_redis, FIRST), wallet(fake_redis, SECOND)
    raced = []

    def first_commits_meanwhile(pipe) -> None:
        if not raced:
            raced.append(True)
            first.put(record("A"))

    with pytest.raises(SignatureTaken):
        second.put_many([record("B")], also=first_commits_meanwhile)
    assert raced and first.get("A") is not None and second.get("B") is None
    assert mark(first).entity_id == "A"


def test_the_same_application_written_again_is_not_refused(fake_redis) -> None:
    records = wallet(fake_redis)
    records.put(record("A"))
    records.put(record("A", 3))  # rewritten (resent after a crash, resynchronised)
    assert mark(records) == SignatureMark("A", record("A", 3).tx_hash)


def test_a_replacement_moves_the_mark_to_the_current_hash(fake_redis) -> None:
    records = wallet(fake_redis)
    first = record("A")
    records.put(first)
    replacement = TxRecord(
        entity_id="A",
        tx_hash="0x" + "ee" * 32,
        nonce=0,
        raw="0x02f9",
        data=CALLDATA,
        previous_hashes=first.hashes,
    )
    records.put(replacement)
    assert mark(records) == SignatureMark("A", replacement.tx_hash)


def test_a_confirmed_signature_stays_marked_with_the_mined_transaction(fake_redis) -> None:
    records = wallet(fake_redis, mark_ttl=30 * 24 * 3600)
    records.put(record("A"))
    records.complete_many([("A", "0x" + "ab" * 32)], signatures={"A": SIGNATURE})
    assert mark(records) == SignatureMark("A", "0x" + "ab" * 32, confirmed=True)
    assert fake_redis.ttl(records.marks.key(SIGNATURE)) > DONE_TTL, "the stream's retention"
    with pytest.raises(SignatureTaken):
        wallet(fake_redis, SECOND).put(record("B"))


@pytest.mark.parametrize("how", ["forget", "send_back"])
def test_a_signature_that_turned_out_unused_is_released(fake_redis, how) -> None:
    records = wallet(fake_redis)
    records.put(record("A"))
    getattr(records, how)("A")
    assert mark(records) is None
    wallet(fake_redis, SECOND).put(record("B"))  # a resubmission under another id
    assert mark(records).entity_id == "B"


def test_a_mark_of_another_application_is_never_released_for_this_one(fake_redis) -> None:
    records = wallet(fake_redis)
    records.put(record("A"))
    fake_redis.hset(records.key("B"), mapping=record("B").to_fields())  # a stray record
    records.forget("B")
    assert mark(records).entity_id == "A"


def test_records_of_an_older_version_in_flight_are_marked_on_take_over(fake_redis) -> None:
    records = wallet(fake_redis)
    fields = {k: v for k, v in record("A").to_fields().items() if k != "signature"}
    fake_redis.hset(records.key("A"), mapping=fields)
    fake_redis.zadd(records.inflight_key, {"A": 0})
    assert records.mark_signatures() == 1 and mark(records).entity_id == "A"
    assert records.mark_signatures() == 0


@pytest.mark.parametrize(
    "retention, lifetime",
    [(0.0, None), (3600.0, DONE_TTL), (30 * 24 * 3600.0, 30 * 24 * 3600), (0.5, DONE_TTL)],
)
def test_a_mark_lives_at_least_the_streams_retention(retention, lifetime) -> None:
    assert mark_lifetime(retention) == lifetime
