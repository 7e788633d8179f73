"""lease.Lease and lease.LeaseKeeper over an in-memory Redis, with an injected clock; and how
the consumer and its wallet react to the lease the keeper holds."""

from __future__ import annotations

import logging
import threading

import fakeredis
import pytest
import redis

from depeg_processor.clock import Clock as ServiceClock
from depeg_processor.errors import LeaseLost
from depeg_processor.inbound.application import parse_application
from depeg_processor.wallet.lease import SAFETY, Lease, LeaseKeeper
from depeg_processor.wallet.sending import SendingWallet

from .consumer_harness import Harness
from .helpers import signed_fields
from .wallet_harness import build_wallet

KEY = "application:signatures:lease:0xWallet"
TTL = 15.0


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SlowRedis(fakeredis.FakeRedis):
    """Every transaction takes `delay` seconds of the injected clock to commit."""

    def __init__(self, *args, clock: Clock, delay: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.clock, self.delay = clock, delay

    def pipeline(self, *args, **kwargs):
        pipe = super().pipeline(*args, **kwargs)
        execute = pipe.execute

        def slow_execute(*a, **kw):
            self.clock.now += self.delay
            return execute(*a, **kw)

        pipe.execute = slow_execute
        return pipe


class FailingRedis(fakeredis.FakeRedis):
    """Refuses every transaction once `down` is set."""

    down = False

    def pipeline(self, *args, **kwargs):
        if self.down:
            raise redis.ConnectionError("connection refused")
        return super().pipeline(*args, **kwargs)


class SteppingStop(threading.Event):
    """A stop event whose waits pass on the injected clock; set after `rounds` waits."""

    def __init__(self, clock: Clock, rounds: int) -> None:
        super().__init__()
        self.clock, self.rounds, self.waited = clock, rounds, []

    def wait(self, timeout=None) -> bool:
        self.waited.append(timeout)
        self.clock.now += timeout
        if len(self.waited) >= self.rounds:
            self.set()
        return self.is_set()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def lease(client, clock: Clock, owner: str = "me") -> Lease:
    return Lease(client, key=KEY, owner=owner, ttl=TTL, monotonic=clock)


def test_validity_is_measured_from_before_the_write(clock) -> None:
    client = SlowRedis(decode_responses=True, clock=clock, delay=3.0)
    mine = lease(client, clock)
    assert mine.acquire()
    assert clock.now == 103.0, "the write took 3 s"
    clock.now = 100.0 + TTL * SAFETY - 0.01
    assert mine.held()
    clock.now = 100.0 + TTL * SAFETY
    assert not mine.held(), "trusted for SAFETY x ttl from before the write, not after it"


def test_free_lease_is_taken_and_renewed_within_one_generation(fake_redis, clock) -> None:
    mine = lease(fake_redis, clock)
    assert not mine.held() and mine.generation == 0
    assert mine.acquire()
    assert mine.held() and mine.generation == 1
    assert fake_redis.get(KEY) == "me"
    assert 0 < fake_redis.pttl(KEY) <= TTL * 1000
    clock.now += TTL / 3
    assert mine.acquire()
    assert mine.generation == 1, "renewed in time: the same holding"


def test_a_lease_held_by_another_is_not_taken(fake_redis, clock) -> None:
    fake_redis.set(KEY, "other")
    mine = lease(fake_redis, clock)
    assert not mine.acquire()
    assert not mine.held() and mine.generation == 0
    assert fake_redis.get(KEY) == "other"


def test_a_lapsed_lease_taken_again_is_a_new_generation(fake_redis, clock) -> None:
    mine = lease(fake_redis, clock)
    assert mine.acquire()
    clock.now += TTL  # past its local validity: another sender may have held it meanwhile
    assert not mine.held()
    assert mine.acquire()
    assert mine.held() and mine.generation == 2


def test_a_key_gone_from_redis_while_held_is_a_new_generation(fake_redis, clock) -> None:
    mine = lease(fake_redis, clock)
    assert mine.acquire()
    fake_redis.delete(KEY)  # expired there: someone may have taken and released it
    assert mine.acquire()
    assert mine.generation == 2


def test_released_lease_is_free_and_not_taken_again(fake_redis, clock) -> None:
    mine = lease(fake_redis, clock)
    assert mine.acquire()
    mine.release()
    assert fake_redis.get(KEY) is None and not mine.held()
    assert not mine.acquire(), "a late renewal must not undo the release"
    assert fake_redis.get(KEY) is None
    assert lease(fake_redis, clock, owner="standby").acquire()


def test_a_lease_given_up_for_another_wallet_may_be_taken_again(fake_redis, clock) -> None:
    mine = lease(fake_redis, clock)
    assert mine.acquire()
    generation = mine.generation
    mine.release(for_good=False)
    assert fake_redis.get(KEY) is None and not mine.held()
    assert mine.acquire(), "the process may come back to this wallet"
    assert mine.generation == generation + 1, "and adopts what was left meanwhile"


def test_release_leaves_another_holders_lease_alone(fake_redis, clock) -> None:
    mine = lease(fake_redis, clock)
    fake_redis.set(KEY, "other")
    mine.release()
    assert fake_redis.get(KEY) == "other"


def test_keeper_renews_on_its_own_schedule_so_the_lease_never_lapses(fake_redis, clock) -> None:
    stop = SteppingStop(clock, rounds=30)
    wallet = build_wallet(fake_redis, chain=None, clock=ServiceClock(monotonic=clock), stop=stop)
    choice = SendingWallet(
        [wallet], redis_client=fake_redis, monotonic=clock, idle=lambda wallet: True
    )
    choice.run(stop)
    assert stop.waited == [TTL / 3] * 30, "every third of the ttl"
    assert clock.now == 100.0 + 10 * TTL
    mine = wallet.lease
    assert mine.held() and mine.generation == 1, "held throughout, never gained twice"


def test_keeper_takes_the_lease_once_it_is_free(fake_redis, clock) -> None:
    fake_redis.set(KEY, "other")
    mine = lease(fake_redis, clock)
    keeper = LeaseKeeper(mine, stop=threading.Event())
    assert not keeper.run_once()
    fake_redis.delete(KEY)  # the other holder died and its lease expired
    assert keeper.run_once()
    assert mine.held() and fake_redis.get(KEY) == "me"


def test_keeper_lets_the_lease_run_out_on_redis_errors(clock, caplog) -> None:
    client = FailingRedis(decode_responses=True)
    mine = lease(client, clock)
    keeper = LeaseKeeper(mine, stop=threading.Event())
    assert keeper.run_once()
    client.down = True  # redis goes away
    with caplog.at_level(logging.WARNING, logger="depeg_processor.wallet.lease"):
        clock.now += TTL / 3
        assert keeper.run_once(), "still valid: it runs out, it is not dropped"
        clock.now += TTL / 3
        assert keeper.run_once()
        clock.now += TTL / 3
        assert not keeper.run_once() and not mine.held()
    warnings = [r for r in caplog.records if "could not renew" in r.getMessage()]
    assert len(warnings) == 1, "said once, not every round"


def test_keeper_does_not_renew_for_a_process_that_cannot_send(fake_redis, clock) -> None:
    alive = [True]
    mine = lease(fake_redis, clock)
    keeper = LeaseKeeper(mine, stop=threading.Event(), wanted=lambda: alive[0])
    assert keeper.run_once()
    alive[0] = False  # the processor loop hangs
    clock.now += TTL / 3
    assert not keeper.run_once()
    clock.now += TTL * SAFETY
    assert not mine.held(), "left to run out, so a standby takes over"


# -- the consumer reads the lease -----------------------------------------------------------


@pytest.fixture
def h(fake_redis):
    harness = Harness(fake_redis)
    yield harness
    harness.close()


def test_consumer_stands_by_without_the_lease_and_takes_over_once_per_gain(h) -> None:
    nonces = h.wallet.ctx.nonces
    syncs = []
    sync = nonces.sync
    nonces.sync = lambda: syncs.append(1) or sync()
    claims = []
    claim = h.queue.claim_abandoned
    h.queue.claim_abandoned = lambda: claims.append(1) or claim()

    h.enqueue(signed_fields())
    h.time.now += TTL  # the keeper has not renewed: the lease ran out
    h.stop.set()  # the standby pause returns at once
    assert h.run_once() == 0
    assert h.calls == [] and syncs == [] and claims == []
    assert h.state.snapshot().holding.startswith("standby")

    h.stop.clear()
    assert h.lease.acquire() and h.lease.generation == 2  # the keeper takes it again
    assert h.run_once() == 1
    assert syncs == [1] and claims == [1], "the take-over, before sending"
    assert h.wallet.adopted == 2
    assert h.state.snapshot().holding is None
    h.enqueue(
        signed_fields(signature_id="second-signature-id1"), entity_id="01HZX3K8Q4M7N2P5R8T1V4W7Y1"
    )
    assert h.run_once() == 1
    assert syncs == [1] and claims == [1], "once per gain, not per batch"


def test_records_are_not_written_when_the_lease_changed_hands_during_the_batch(h) -> None:
    h.enqueue(signed_fields())
    assert h.run_once() == 1  # holding generation 1
    h.time.now += TTL
    assert h.lease.acquire() and h.lease.generation == 2  # lapsed and taken back meanwhile
    app = parse_application("X", signed_fields(signature_id="another-signature"))
    with pytest.raises(LeaseLost):
        h.wallet.submit([app], entry_ids=["1-0"])  # the take-over of generation 2 not done
    assert h.records.get("X") is None
    h.wallet.finish()
    assert len(h.node.sent) == 1, "only the first batch was published"


def test_a_lease_key_redis_lost_stops_sending_until_the_keeper_writes_it_again(h) -> None:
    """Redis restarted from a snapshot without the lease key: the first fenced write is
    refused, and the lease is not held from then on (not until its local deadline, which
    would have every batch refused) until the keeper writes it again: a new generation."""
    h.enqueue(signed_fields())
    assert h.run_once() == 1
    h.redis.delete(h.lease.key)  # what the rollback lost
    app = parse_application("X", signed_fields(signature_id="another-signature"))
    with pytest.raises(LeaseLost):
        h.wallet.submit([app], entry_ids=["1-0"])
    assert not h.lease.held() and h.records.get("X") is None
    assert h.lease.acquire() and h.lease.generation == 2
