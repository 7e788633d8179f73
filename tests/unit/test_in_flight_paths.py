"""The real paths of a transaction in flight, followed status by status through the receipt
watcher over the fake chain (see `wallet/lifecycle.py`): sent → mined → confirmed or reverted;
mined, reorganised away and mined again; stuck, then replaced; refused below the base fee,
stuck at the cap and mined once the base fee falls; dropped and resent."""

from __future__ import annotations

import pytest

from depeg_processor import errors
from depeg_processor.wallet.lifecycle import Status
from depeg_processor.wallet.replace import MAX_REPLACEMENT_BUMPS

from .helpers import ENTITY_ID as SIGNED_ID
from .helpers import signed_fields
from .test_fee_spike import CAP, Spike
from .test_lifecycle import ENTITY_ID, FakeChain, World
from .wallet_harness import STREAM


def test_sent_then_mined_then_confirmed(fake_redis) -> None:
    world = World(fake_redis)
    record = world.send()
    world.round()
    tracked = world.tracked()
    assert tracked.status is Status.SENT
    world.chain.mine(record.tx_hash)
    world.round()
    assert tracked.status is Status.MINED and tracked.mined.tx_hash == record.tx_hash
    world.chain.mine()
    assert world.round() == 1
    assert tracked.status is Status.CONFIRMED and world.tracked() is None, "purged"


def test_sent_then_mined_then_reverted(fake_redis) -> None:
    world = World(fake_redis)
    record = world.send()
    world.round()
    tracked = world.tracked()
    world.chain.mine(record.tx_hash, status=0)
    world.round()
    assert tracked.status is Status.MINED
    world.chain.mine()
    world.chain.call_error = errors.PermanentError("coverage too high", kind="revert")
    assert world.round() == 1
    assert tracked.status is Status.REVERTED and world.tracked() is None


def test_mined_then_reorganised_away_then_mined_again(fake_redis) -> None:
    world = World(fake_redis, min_confirmations=3)
    record = world.send()
    world.round()
    world.chain.mine(record.tx_hash)
    world.round()
    tracked = world.tracked()
    assert tracked.status is Status.MINED
    world.chain.mine()
    world.chain.reorg(2)
    world.chain.mine()
    assert world.round() == 0
    assert (tracked.status, tracked.mined) == (Status.SENT, None)
    world.chain.mine(record.tx_hash)
    world.round()
    assert tracked.status is Status.MINED
    world.chain.mine()
    world.chain.mine()
    assert world.round() == 1 and tracked.status is Status.CONFIRMED


def test_dropped_and_resent_stays_sent(fake_redis) -> None:
    world = World(fake_redis)
    record = world.send(pending=False)
    world.round()
    world.chain.mine()
    world.chain.mine()
    world.round()
    assert world.chain.sent == [record.raw], "resent with its stored bytes"
    assert world.tracked().status is Status.SENT


def refuse_next_sends(chain: FakeChain, count: int) -> list[int]:
    """The node refuses the next `count` raw transactions as underpriced; returns the count
    left, as the test sees it."""
    left, answer = [count], chain._answer

    def refusing(method: str, params: list) -> object:
        if method == "eth_sendRawTransaction" and left[0]:
            left[0] -= 1
            return errors.ReplacementUnderpriced("replacement transaction underpriced")
        return answer(method, params)

    chain._answer = refusing
    return left


def test_stuck_then_replaced_then_confirmed(fake_redis) -> None:
    world = World(fake_redis)
    record = world.send()
    world.round()
    tracked = world.tracked()
    left = refuse_next_sends(world.chain, MAX_REPLACEMENT_BUMPS)
    world.chain.mine()
    world.chain.mine()
    world.round()  # due: each bump refused, the last one too
    assert left == [0] and world.records.get(ENTITY_ID) == record, "the older one stands"
    assert tracked.status is Status.STUCK and "MAX_FEE_PER_GAS" in tracked.stuck
    assert world.wallet.in_flight.stuck_reasons() == {tracked.stuck}

    world.chain.mine()
    world.chain.mine()
    world.round()  # due again: the node takes the replacement now
    new = world.records.get(ENTITY_ID)
    assert new.tx_hash != record.tx_hash and tracked.record == new
    assert (tracked.status, tracked.stuck) == (Status.SENT, None)
    assert world.wallet.in_flight.stuck_reasons() == set()

    world.chain.mine(new.tx_hash)
    world.chain.mine()
    assert world.round() == 1 and tracked.status is Status.CONFIRMED


@pytest.fixture
def spike(fake_redis):
    world = Spike(fake_redis)
    yield world
    world.wallet.close()


def test_refused_then_stuck_at_the_cap_then_mined_once_the_base_fee_falls(spike) -> None:
    spike.wallet.watch()
    spike.redis.hset(f"PendingApplication:{SIGNED_ID}", mapping=signed_fields())
    spike.redis.xadd(STREAM, {"entityId": SIGNED_ID})
    assert spike.consumer.run_once() == 1
    spike.wallet.finish()
    assert len(spike.chain.refused) == 1, "the first send was refused below the base fee"
    in_flight = spike.wallet.in_flight
    in_flight.read()  # the start of the watcher's next round: the refusal told is applied
    tracked = in_flight[SIGNED_ID]
    assert tracked.status is Status.REFUSED

    spike.wallet.watch_now()  # looked after at once: resent, refused, no room to re-price
    assert tracked.status is Status.STUCK and str(CAP) in tracked.stuck
    assert len(spike.chain.refused) == 2

    spike.chain.base_fee = CAP // 6
    while tracked.record.tx_hash not in spike.chain.pool:  # resent after TX_STUCK_BLOCKS
        spike.chain.mine()
        spike.mono[0] += 1.0
        spike.wallet.watch()
        assert spike.chain.head < 20, "never resent"
    assert tracked.status is Status.STUCK, "resent at the cap: stuck until it is mined"
    spike.chain.mine(tracked.record.tx_hash)
    spike.mono[0] += 1.0
    spike.wallet.watch()
    assert tracked.status is Status.MINED and tracked.stuck is None
    spike.chain.mine()
    spike.mono[0] += 1.0
    assert spike.wallet.watch() == 1 and tracked.status is Status.CONFIRMED
