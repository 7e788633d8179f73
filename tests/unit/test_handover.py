"""A deploy's hand-over: a clean release is announced with the lease's delete, a standby hears
it and takes the lease, and the released consumer's entries become the new holder's at once."""

from __future__ import annotations

import threading

import pytest

from depeg_processor import keys
from depeg_processor.clock import Clock as ServiceClock
from depeg_processor.inbound.stream import StreamQueue
from depeg_processor.wallet.handover import Releases, claim_entries_left
from depeg_processor.wallet.lease import Lease, owner_id
from depeg_processor.wallet.sending import SendingWallet

from .wallet_harness import build_wallet

STREAM, GROUP = "application:signatures", "depeg-backend-processor"
KEY = keys.lease_key(STREAM, "0xWallet")
CHANNEL = keys.lease_released_channel(STREAM)


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def lease(client, owner: str, clock: Clock | None = None) -> Lease:
    return Lease(
        client, key=KEY, owner=owner, ttl=15.0, monotonic=clock or Clock(), channel=CHANNEL
    )


def subscribed(client):
    pubsub = client.pubsub()
    pubsub.subscribe(CHANNEL)
    return pubsub


def messages(pubsub) -> list[str]:
    found = []
    while (message := pubsub.get_message(timeout=0.01)) is not None:
        if message["type"] == "message":
            found.append(message["data"])
    return found


def test_a_release_deletes_the_lease_and_announces_it_with_its_owner(fake_redis) -> None:
    listener = subscribed(fake_redis)
    old = lease(fake_redis, owner_id("old-consumer"))
    assert old.acquire()
    old.release()
    assert fake_redis.get(KEY) is None
    assert messages(listener) == [f"{KEY} {old.owner}"]


def test_a_release_by_who_does_not_hold_the_lease_deletes_and_announces_nothing(
    fake_redis,
) -> None:
    listener = subscribed(fake_redis)
    holder, other = lease(fake_redis, "holder@h:1:a"), lease(fake_redis, "other@h:2:b")
    assert holder.acquire()
    other.release()
    assert fake_redis.get(KEY) == "holder@h:1:a"
    assert messages(listener) == []


def test_the_standby_listening_hears_the_release(fake_redis) -> None:
    stop = threading.Event()
    releases = Releases(fake_redis, channel=CHANNEL, stop=stop)
    assert releases.wait(0.01) == []  # subscribes; nothing released yet
    old = lease(fake_redis, "old-consumer@host:1:abc")
    assert old.acquire()
    old.release()
    assert releases.wait(5.0) == [(KEY, "old-consumer@host:1:abc")]
    releases.close()


def test_a_stopped_wait_returns_at_once(fake_redis) -> None:
    stop = threading.Event()
    stop.set()
    assert Releases(fake_redis, channel=CHANNEL, stop=stop).wait(60.0) == []


def test_the_lease_gained_after_a_clean_release_names_the_consumer_that_left_once(
    fake_redis,
) -> None:
    old, new = lease(fake_redis, owner_id("old@consumer")), lease(fake_redis, "new@h:2:b")
    assert old.acquire()
    assert not new.acquire()
    old.release()
    new.note_released(old.owner)
    assert new.acquire()
    assert new.handed_over() == "old@consumer"
    assert new.handed_over() is None, "handed over once"


def test_a_lease_that_ran_out_hands_nothing_over(fake_redis) -> None:
    """A notice heard while another still held the lease does not apply to a later gain:
    that holder may have died with entries in hand (those wait the lease TTL, as before)."""
    old, new = lease(fake_redis, "old@h:1:a"), lease(fake_redis, "new@h:2:b")
    assert old.acquire()
    new.note_released("someone@h:3:c")
    assert not new.acquire()  # the notice is used up by this attempt
    fake_redis.delete(KEY)  # the holder's lease expired
    assert new.acquire()
    assert new.handed_over() is None


def test_a_waiting_standby_wakes_when_the_lease_is_gained(fake_redis) -> None:
    new = lease(fake_redis, "new@h:2:b")
    started, woke = threading.Event(), []

    def standby() -> None:
        started.set()
        woke.append(new.wait_held(60.0))

    thread = threading.Thread(target=standby)
    thread.start()
    started.wait()
    assert new.acquire()
    thread.join(60.0)
    assert woke == [True]


def test_the_entries_the_released_consumer_left_are_taken_at_once(fake_redis) -> None:
    fake_redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    ids = [fake_redis.xadd(STREAM, {"entityId": f"E{i}"}) for i in range(3)]
    fake_redis.xreadgroup(GROUP, "old", {STREAM: ">"}, count=2)  # left in hand, just now
    queue = StreamQueue(
        fake_redis, stream=STREAM, group=GROUP, consumer="new", dead_letter_key="dead"
    )
    queue.read(count=10, block_ms=1)  # its own backlog is empty: now reading new entries
    assert not queue.reading_backlog
    assert claim_entries_left(fake_redis, queue, "old") == 2
    pending = fake_redis.xpending_range(STREAM, GROUP, min="-", max="+", count=10)
    assert {row["message_id"] for row in pending if row["consumer"] == "new"} >= set(ids[:2])
    assert queue.reading_backlog, "read next, as this consumer's backlog"
    assert [e.entry_id for e in queue.read(count=10, block_ms=1)][:2] == ids[:2]


@pytest.mark.parametrize("consumer", [None, "new"])
def test_nothing_to_take_without_a_release_or_under_the_same_name(fake_redis, consumer) -> None:
    fake_redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    fake_redis.xadd(STREAM, {"entityId": "E"})
    fake_redis.xreadgroup(GROUP, "new", {STREAM: ">"}, count=1)
    queue = StreamQueue(
        fake_redis, stream=STREAM, group=GROUP, consumer="new", dead_letter_key="dead"
    )
    assert claim_entries_left(fake_redis, queue, consumer) == 0


class OneNotice:
    """Releases where, during the keeper's first wait, the holder releases the lease and the
    notice is heard; the keeper is stopped on its second wait."""

    def __init__(self, holder: Lease, stop: threading.Event) -> None:
        self.holder, self.stop, self.waits = holder, stop, 0

    def wait(self, timeout: float) -> list[tuple[str, str]]:
        self.waits += 1
        if self.waits == 1:
            self.holder.release()
            return [(self.holder.key, self.holder.owner)]
        self.stop.set()
        return []

    def close(self) -> None:
        pass


def test_the_keeper_takes_a_released_wallet_in_the_round_after_the_notice(fake_redis) -> None:
    clock = Clock()
    stop = threading.Event()
    wallet = build_wallet(fake_redis, chain=None, clock=ServiceClock(monotonic=clock), stop=stop)
    other = Lease(fake_redis, key=wallet.lease.key, owner="old@h:1:a", ttl=15.0, monotonic=clock)
    assert other.acquire()
    sending = SendingWallet(
        [wallet],
        redis_client=fake_redis,
        monotonic=clock,
        idle=lambda _wallet: True,
        releases=OneNotice(other, stop),
    )

    sending.run(stop)  # round 1: held by the old one; the release heard; round 2: taken

    assert sending.current is wallet
    assert wallet.lease.handed_over() == "old"
