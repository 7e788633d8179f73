"""One paid revert per policy holder (issue 21): a transaction that reverted on chain is never
sent again, its holder is held (its applications set aside as `holder_held`), and a holder has
one application in flight, pool-wide, the others waiting without holding up the queue."""

from __future__ import annotations

import dataclasses

import pytest

from depeg_processor import errors
from depeg_processor.chain.product import ProductCalls
from depeg_processor.inbound.application import parse_application
from depeg_processor.wallet.holders import Hold, Holders
from depeg_processor.wallet.records import TxRecord, TxRecords

from .consumer_harness import Harness
from .helpers import HOLDER, OTHER, signed_fields
from .test_lifecycle import ENTITY_ID, NOW, World, signed_call, tx_hash

STREAM = "application:signatures"
HELD = f"{STREAM}:held:{HOLDER.address.lower()}"
BUSY = f"{STREAM}:holder-busy:{HOLDER.address.lower()}"
DP015 = "ERROR:DP-015:ALLOWANCE_TOO_LOW"


@pytest.fixture
def world(fake_redis) -> World:
    return World(fake_redis)


def reverted(world: World, *, simulated: Exception | None) -> TxRecord:
    """The holder's application sent, reverted on chain and settled, the call then simulated
    with `simulated` (None: it would succeed now)."""
    data, _signature = signed_call()
    record = world.send(data=data)
    assert world.redis.get(BUSY) == world.records.key(ENTITY_ID), "busy while in flight"
    world.round()
    world.chain.mine(record.tx_hash, status=0)
    world.chain.mine()
    world.chain.call_error = simulated
    assert world.round() == 1
    return record


def test_a_revert_that_would_succeed_now_is_set_aside_and_its_holder_held(world) -> None:
    record = reverted(world, simulated=None)
    [(_id, dead)] = world.queue.dead_letters.list()
    assert dead["entityId"] == ENTITY_ID and dead["kind"] == "reverted_on_chain"
    assert record.tx_hash in dead["reason"] and "would succeed now" in dead["reason"]
    assert world.redis.xlen(STREAM) == 0, "not enqueued again"
    assert world.chain.sent == [], "not sent again"
    assert world.records.get(ENTITY_ID) is None and not world.redis.exists(BUSY)
    hold = world.redis.hgetall(HELD)
    assert hold["entityId"] == ENTITY_ID and hold["tx"] == record.tx_hash
    assert "would succeed now" in hold["reason"] and float(hold["since"]) == NOW
    assert float(hold["until"]) == NOW + 86400 and 0 < world.redis.ttl(HELD) <= 86400


def test_a_product_revert_holds_the_holder_with_the_products_reason(world) -> None:
    record = reverted(world, simulated=errors.PermanentError(DP015, kind="DP-015"))
    [(_id, dead)] = world.queue.dead_letters.list()
    assert DP015 in dead["reason"] and dead["kind"] == "reverted_on_chain"
    [state] = world.records.holders.states([HOLDER.address])
    assert state.hold.reason == DP015 and state.hold.tx_hash == record.tx_hash
    assert state.hold.block == world.chain.head - 1 and state.busy is None


def test_a_signature_used_on_chain_after_our_revert_still_holds_the_holder(world) -> None:
    reverted(world, simulated=errors.PermanentError("ERROR:DMH-001:SIGNATURE_USED"))
    [(_id, dead)] = world.queue.dead_letters.list()
    assert "DMH-001" in dead["reason"] and world.redis.exists(HELD)


def test_a_paused_product_sends_the_application_back_and_holds_nobody(world) -> None:
    reverted(world, simulated=errors.ProductInactive("ERROR:DP-010:PRODUCT_NOT_ACTIVE"))
    assert world.redis.xlen(STREAM) == 1, "enqueued again"
    assert world.queue.dead_letters.list() == []
    assert not world.redis.exists(HELD) and not world.redis.exists(BUSY)


def test_with_holding_off_the_revert_is_set_aside_and_nobody_held(world) -> None:
    world.records.holders.hold_seconds = 0
    reverted(world, simulated=None)
    assert len(world.queue.dead_letters.list()) == 1 and not world.redis.exists(HELD)


def test_a_confirmed_transaction_frees_its_holder(world) -> None:
    data, _signature = signed_call()
    record = world.send(data=data)
    world.round()
    world.chain.mine(record.tx_hash)
    world.chain.mine()
    assert world.round() == 1
    assert not world.redis.exists(BUSY) and not world.redis.exists(HELD)


def record_of(entity_id: str, holder=HOLDER, n: int = 1) -> TxRecord:
    """A record of `holder`'s application `entity_id` (a signature of its own)."""
    app = parse_application(entity_id, signed_fields(holder, signature_id=f"sig-{entity_id}"))
    data = ProductCalls().apply(app.contract_args())
    return TxRecord(entity_id=entity_id, tx_hash=tx_hash(n), nonce=n, raw="0x02", data=data)


def test_a_holder_has_one_record_in_flight_whichever_wallet_writes_it(fake_redis) -> None:
    first = TxRecords(fake_redis, prefix=STREAM, stream=STREAM)
    second = TxRecords(fake_redis, prefix=f"{STREAM}:wallet:2", stream=STREAM)
    first.put(record_of("E1"))
    with pytest.raises(errors.HolderBusy) as refused:
        second.put(record_of("E2", n=2))
    assert refused.value.busy == ["E2"] and second.get("E2") is None
    second.put(record_of("E3", holder=OTHER, n=3))  # another holder is not held up

    replaced = dataclasses.replace(record_of("E1"), tx_hash=tx_hash(9), previous_hashes=("0x1",))
    first.put(replaced)  # a replacement of the one in flight is not refused
    first.forget("E1")
    assert not fake_redis.exists(BUSY), "its mark goes with its record"
    second.put(record_of("E2", n=2))
    assert fake_redis.get(BUSY) == second.key("E2")


def test_a_busy_mark_whose_record_is_gone_is_stale(fake_redis) -> None:
    records = TxRecords(fake_redis, prefix=STREAM, stream=STREAM)
    records.put(record_of("E1"))
    fake_redis.delete(records.key("E1"))  # a crash between the two
    [state] = records.holders.states([HOLDER.address])
    assert state.busy is None and state.hold is None
    records.put(record_of("E2", n=2))
    assert records.get("E2") is not None


def test_a_held_holders_record_is_refused_and_two_of_one_holder_in_one_write(fake_redis) -> None:
    records = TxRecords(fake_redis, prefix=STREAM, stream=STREAM)
    with pytest.raises(errors.HolderBusy) as twice:
        records.put_many([record_of("E1"), record_of("E2", n=2)])
    assert twice.value.busy == ["E2"] and records.count() == 0
    fake_redis.hset(HELD, mapping={"entityId": "E0", "tx": tx_hash(7)})
    with pytest.raises(errors.HolderBusy):
        records.put(record_of("E1"))
    assert records.count() == 0


def test_release_hold_lifts_it_and_says_what_it_held(fake_redis) -> None:
    holders = Holders(fake_redis, stream=STREAM)
    hold = Hold(HOLDER.address.lower(), "E1", tx_hash(1), 12, DP015, NOW, NOW + 60)
    pipe = fake_redis.pipeline(transaction=True)
    holders.stage_hold(pipe, hold)
    pipe.execute()
    assert holders.states([HOLDER.address])[0].hold == hold
    assert holders.release_hold(HOLDER.address) == hold
    assert holders.release_hold(HOLDER.address) is None
    assert holders.states([HOLDER.address])[0].hold is None


@pytest.fixture
def h(fake_redis):
    harness = Harness(fake_redis)
    yield harness
    harness.close()


def test_a_held_holders_application_is_set_aside_naming_the_hold(h) -> None:
    hold = Hold(HOLDER.address.lower(), "E0", tx_hash(7), 12, DP015, NOW, NOW + 3600)
    pipe = h.redis.pipeline(transaction=True)
    h.records.holders.stage_hold(pipe, hold)
    pipe.execute()
    h.enqueue(signed_fields(), entity_id="E1")
    h.enqueue(signed_fields(OTHER, signature_id="someone-else"), entity_id="E2")
    assert h.run_once() == 2
    [dead] = h.dead_letters()
    assert dead["entityId"] == "E1" and dead["kind"] == "holder_held"
    for named in (HOLDER.address.lower(), tx_hash(7), "E0", DP015, "until 2026"):
        assert named in dead["reason"], named
    assert [entity for entity, _ in h.calls] == ["E2"], "no simulation for the held one"
    assert h.dead_lettered() == {"holder_held": 1}
    assert h.queue.backlog().group_pending == 0


def test_a_busy_holders_next_application_waits_without_holding_up_the_queue(h) -> None:
    h.enqueue(signed_fields(HOLDER, signature_id="mine-1"), entity_id="H1")
    h.enqueue(signed_fields(HOLDER, signature_id="mine-2"), entity_id="H2")
    h.enqueue(signed_fields(OTHER, signature_id="other-1"), entity_id="O1")
    h.run_once()
    assert [entity for entity, _ in h.calls] == ["H1", "O1"], "the first goes, the second waits"
    assert h.dead_letters() == [] and h.queue.backlog().own_pending == 1
    assert h.consumer.held.only_waiting

    h.wallet.finish()
    h.enqueue(signed_fields(signature_id="third-holder"), entity_id="O2")
    h.run_once()
    assert [entity for entity, _ in h.calls] == ["H1", "O1", "O2"], "read beside the waiting"
    assert h.queue.backlog().own_pending == 1

    h.wallet.finish()
    h.records.complete_many([("H1", h.tx_hash("H1"))])
    h.records.holders.release_busy([(HOLDER.address.lower(), h.records.key("H1"))])
    h.run_once()
    assert [entity for entity, _ in h.calls] == ["H1", "O1", "O2", "H2"], "once H1 settled"
    assert h.dead_letters() == [] and h.queue.backlog().own_pending == 0
