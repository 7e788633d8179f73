"""wallet.write_ahead through TxRecords.put_many: one WATCH, the checks' reads in one round
trip, then MULTI/EXEC. Each refusal still holds when its key changes between the reads and the
EXEC (another process's write: the WATCH fails the EXEC, the retry reads it), and when several
apply at once the same one is raised as before, in the same order."""

from __future__ import annotations

import fakeredis
import pytest
from eth_account.signers.local import LocalAccount

from depeg_processor.chain.product import ProductCalls
from depeg_processor.errors import (
    FenceLost,
    HolderBusy,
    OwnedElsewhere,
    PoolChanged,
    SignatureTaken,
)
from depeg_processor.inbound.application import parse_application
from depeg_processor.inbound.untrusted import REDIS_DECODING
from depeg_processor.wallet.records import TxRecord, TxRecords
from depeg_processor.wallet.signatures import SignatureMark

from .helpers import HOLDER, OTHER, signed_fields

STREAM = "application:signatures"
ME, ANOTHER = "0x" + "11" * 20, "0x" + "22" * 20
FENCE = ("lease", "me")


class CountingConnection(fakeredis.FakeRedisConnection):
    """Counts round trips as bench/child.py does: one per `send_packed_command` (a pipeline,
    or MULTI ... EXEC, is sent as one)."""

    round_trips = 0

    def send_packed_command(self, command, check_health=True):  # noqa: ANN001
        CountingConnection.round_trips += 1
        return super().send_packed_command(command, check_health)


@pytest.fixture
def client(fake_redis) -> fakeredis.FakeRedis:
    """The wallet's own client, counting; `fake_redis` (the same server) is another process."""
    kwargs = fake_redis.connection_pool.connection_kwargs
    return fakeredis.FakeRedis(
        server=kwargs["server"],
        host=kwargs["host"],
        port=kwargs["port"],
        db=kwargs["db"],
        connection_class=CountingConnection,
        **REDIS_DECODING,
    )


def wallet(client, address: str = ME) -> TxRecords:
    return TxRecords(client, prefix=f"{STREAM}:wallet:{address}", stream=STREAM, owner=address)


def record(entity_id: str, nonce: int = 0, holder: LocalAccount | None = None) -> TxRecord:
    """A record of `entity_id`'s application: a signature of its own, and a policy holder of
    its own unless `holder`."""
    app = parse_application(entity_id, signed_fields(holder, signature_id=f"sig-{entity_id}"))
    return TxRecord(
        entity_id=entity_id,
        tx_hash="0x" + f"{nonce + 1:064x}",
        nonce=nonce,
        raw="0x02f8",
        data=ProductCalls().apply(app.contract_args()),
    )


def batch(start: int) -> list[TxRecord]:
    return [record(f"E{n}", n) for n in range(start, start + 10)]


def round_trips(put) -> int:  # noqa: ANN001
    CountingConnection.round_trips = 0
    put()
    return CountingConnection.round_trips


def test_a_batch_of_ten_is_written_in_three_round_trips(client, fake_redis) -> None:
    """The WATCH, the reads of every check, MULTI/EXEC: every check applies here (fence,
    version, owners, signatures, holders), and none refuses."""
    records = wallet(client)
    fake_redis.set("lease", "me")
    records.put_many(batch(0), fence=FENCE, version="0")  # the client's connections made
    assert round_trips(lambda: records.put_many(batch(10), fence=FENCE, version="1")) == 3
    assert records.count() == 20 and fake_redis.get(records.version_key) == "2"
    assert fake_redis.get(records.owner_key("E19")) == ME
    assert fake_redis.get(records.holders.busy_key(record("E19").holder)) == records.key("E19")


def test_a_busy_mark_naming_another_record_costs_one_more_round_trip(client, fake_redis) -> None:
    records, other = wallet(client), wallet(fake_redis, ANOTHER)
    records.put(record("E0"))  # the client's connections made
    other.put(record("E1", holder=HOLDER))
    fake_redis.delete(other.key("E1"))  # gone, its holder's busy mark left behind: stale
    assert round_trips(lambda: records.put(record("E2", 1, holder=HOLDER))) == 4
    assert records.get("E2") is not None

    other.put(record("E3", holder=OTHER))  # in flight
    with pytest.raises(HolderBusy) as refused:
        records.put(record("E4", 2, holder=OTHER))
    assert refused.value.busy == ["E4"] and records.get("E4") is None


def lease_lost(fake_redis, records: TxRecords, entity_id: str) -> None:
    fake_redis.set("lease", "someone-else")


def pool_moved_on(fake_redis, records: TxRecords, entity_id: str) -> None:
    fake_redis.incr(records.version_key)


def owned_by_another(fake_redis, records: TxRecords, entity_id: str) -> None:
    fake_redis.set(records.owner_key(entity_id), ANOTHER)


def signature_sent_for_another(fake_redis, records: TxRecords, entity_id: str) -> None:
    mark = SignatureMark("E-copy", "0x" + "cd" * 32)
    fake_redis.set(records.marks.key(record(entity_id).signature), mark.to_value())


def holder_held(fake_redis, records: TxRecords, entity_id: str) -> None:
    held = records.holders.held_key(record(entity_id).holder)
    fake_redis.hset(held, mapping={"entityId": "E-reverted", "tx": "0x" + "ef" * 32})


def holder_busy(fake_redis, records: TxRecords, entity_id: str) -> None:
    in_flight = f"{STREAM}:wallet:{ANOTHER}:tx:E-other"
    fake_redis.hset(in_flight, "nonce", "0")
    fake_redis.set(records.holders.busy_key(record(entity_id).holder), in_flight)


@pytest.mark.parametrize(
    ("meanwhile", "refusal"),
    [
        (lease_lost, FenceLost),
        (pool_moved_on, PoolChanged),
        (owned_by_another, OwnedElsewhere),
        (signature_sent_for_another, SignatureTaken),
        (holder_held, HolderBusy),
        (holder_busy, HolderBusy),
    ],
)
def test_a_change_after_the_reads_and_before_exec_is_refused(
    client, fake_redis, meanwhile, refusal
) -> None:
    """The reads found nothing to refuse; another process then writes before the EXEC: the
    WATCH fails it, the write-ahead reads again and refuses, nothing of the batch written."""
    records = wallet(client)
    fake_redis.set("lease", "me")
    raced = []

    def concurrent_write(pipe) -> None:  # noqa: ANN001 (in MULTI: after the reads)
        if not raced:
            raced.append(True)
            meanwhile(fake_redis, records, "E2")

    with pytest.raises(refusal):
        records.put_many(batch(0), also=concurrent_write, fence=FENCE, version="0")
    assert raced, "the concurrent write came between the reads and the EXEC"
    assert records.count() == 0 and records.get("E2") is None
    assert fake_redis.get(records.owner_key("E0")) is None
    assert fake_redis.get(records.holders.busy_key(record("E0").holder)) is None


def test_when_several_refusals_apply_the_first_in_order_is_raised(client, fake_redis) -> None:
    """FenceLost, then PoolChanged, OwnedElsewhere, SignatureTaken, HolderBusy: each is raised
    while it applies, whatever applies after it."""
    records = wallet(client)
    fake_redis.set(records.version_key, "5")
    for condition in (
        lease_lost,
        owned_by_another,
        signature_sent_for_another,
        holder_held,
    ):
        condition(fake_redis, records, "E1")
    lifts = [
        (FenceLost, lambda: fake_redis.set("lease", "me")),
        (PoolChanged, lambda: fake_redis.set(records.version_key, "0")),
        (OwnedElsewhere, lambda: fake_redis.delete(records.owner_key("E1"))),
        (SignatureTaken, lambda: fake_redis.delete(records.marks.key(record("E1").signature))),
        (HolderBusy, lambda: fake_redis.delete(records.holders.held_key(record("E1").holder))),
    ]
    for refusal, lift in lifts:
        with pytest.raises(refusal):
            records.put_many(batch(0), fence=FENCE, version="0")
        assert records.count() == 0
        lift()
    records.put_many(batch(0), fence=FENCE, version="0")
    assert records.count() == 10
