"""wallet_choice.WalletChoice over an in-memory Redis, with real leases and records: which wallet
of the pool a process holds, and its move to a wallet left with transactions in flight."""

from __future__ import annotations

import threading
import types

import pytest

from depeg_processor.wallet.choice import WalletChoice, WalletParts
from depeg_processor.wallet.lease import Lease, LeaseKeeper
from depeg_processor.wallet.records import TxRecords

from .test_lease import TTL, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def replica(client, clock: Clock, owner: str, wallets: int = 2) -> WalletChoice:
    """One process's choice among `wallets` wallets; its processors have nothing in hand."""
    parts = []
    for i in range(wallets):
        lease = Lease(client, key=f"w{i}:lease", owner=owner, ttl=TTL, monotonic=clock)
        part = WalletParts(
            wallet=types.SimpleNamespace(address=f"0xW{i}", consumer=f"c{i}"),
            account=None,
            lease=lease,
            keeper=LeaseKeeper(lease, stop=threading.Event()),
            queue=None,
            records=TxRecords(client, prefix=f"w{i}"),
            nonces=None,
        )
        part.processor = types.SimpleNamespace(idle=True)
        part.sender = types.SimpleNamespace(broadcasts_finished=0)
        part.sender.finish_broadcast = lambda s=part.sender: setattr(
            s, "broadcasts_finished", s.broadcasts_finished + 1
        )
        parts.append(part)
    return WalletChoice(parts, redis_client=client, monotonic=clock)


def in_flight(client, wallet: int, *entity_ids: str) -> None:
    for nonce, entity_id in enumerate(entity_ids):
        client.zadd(f"w{wallet}:inflight", {entity_id: nonce})


def address(choice: WalletChoice) -> str | None:
    return choice.current.wallet.address if choice.current else None


def stops(choice: WalletChoice) -> None:
    """A clean stop, as Service.run ends: every lease given up for good."""
    for parts in choice.parts:
        parts.lease.release()


def test_each_replica_takes_the_first_free_wallet_and_a_third_stands_by(fake_redis, clock):
    a, b, c = (replica(fake_redis, clock, owner) for owner in "abc")
    assert [x.keep_leases_once() and address(x) for x in (a, b, c)] == ["0xW0", "0xW1", None]
    assert c.working() is c.parts[0], "standing by, it watches the first wallet's health"


def test_a_replica_with_nothing_in_flight_moves_to_a_wallet_left_in_flight(fake_redis, clock):
    a, b = replica(fake_redis, clock, "a"), replica(fake_redis, clock, "b")
    a.keep_leases_once(), b.keep_leases_once()
    in_flight(fake_redis, 1, "app-1", "app-2")
    stops(b)  # a scale-down: b's lease released, its transactions still in flight

    moved = a.take_a_left_wallet()

    assert moved is a.parts[1] and address(a) == "0xW1"
    assert fake_redis.get("w1:lease") == "a" and fake_redis.get("w0:lease") is None
    assert a.parts[0].sender.broadcasts_finished == 1, "its last batch went out first"
    assert a.keep_leases_once() is a.parts[1], "the keeper renews the wallet moved to"


def test_no_move_while_its_own_wallet_has_something_in_flight_or_in_hand(fake_redis, clock):
    a, b = replica(fake_redis, clock, "a"), replica(fake_redis, clock, "b")
    a.keep_leases_once(), b.keep_leases_once()
    in_flight(fake_redis, 1, "app-1")
    stops(b)
    in_flight(fake_redis, 0, "app-0")
    assert a.take_a_left_wallet() is None and address(a) == "0xW0"

    fake_redis.delete("w0:inflight")
    a.parts[0].processor.idle = False
    clock.now += a.interval
    assert a.take_a_left_wallet() is None and address(a) == "0xW0"

    a.parts[0].processor.idle = True
    assert a.take_a_left_wallet() is None, "looked again only after the renewal interval"
    clock.now += a.interval
    assert a.take_a_left_wallet() is a.parts[1]


def test_a_single_wallet_asks_redis_nothing_between_batches(fake_redis, clock):
    only = replica(fake_redis, clock, "a", wallets=1)
    only.keep_leases_once()
    fake_redis.pipeline = None  # any look at Redis would fail here
    assert only.take_a_left_wallet() is None and address(only) == "0xW0"


def test_no_move_to_a_wallet_another_process_holds(fake_redis, clock):
    a, b = replica(fake_redis, clock, "a"), replica(fake_redis, clock, "b")
    a.keep_leases_once(), b.keep_leases_once()
    in_flight(fake_redis, 1, "app-1")  # b's own, b alive
    assert a.take_a_left_wallet() is None and address(a) == "0xW0"


def test_a_replica_moves_back_to_a_wallet_it_gave_up_once_that_is_left_in_flight(fake_redis, clock):
    a, b = replica(fake_redis, clock, "a"), replica(fake_redis, clock, "b")
    a.keep_leases_once(), b.keep_leases_once()
    in_flight(fake_redis, 1, "app-1")
    stops(b)
    assert a.take_a_left_wallet() is a.parts[1]
    fake_redis.delete("w1:inflight")  # a confirmed and purged them
    c = replica(fake_redis, clock, "c")  # a scale-up takes the wallet a gave up
    assert c.keep_leases_once() is c.parts[0]
    in_flight(fake_redis, 0, "app-2")
    stops(c)  # and a scale-down leaves it in flight

    clock.now += a.interval
    assert a.take_a_left_wallet() is a.parts[0], "a wallet given up may be taken again"
    assert fake_redis.get("w0:lease") == "a"
    assert a.parts[0].lease.generation == 2, "taken again: what was left is adopted anew"
