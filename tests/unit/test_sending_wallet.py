"""wallet.sending.SendingWallet over an in-memory Redis, with real wallets (leases, records): which
wallet of the pool a process holds, and its move to a wallet left with transactions in flight."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from depeg_processor import clock as clocks
from depeg_processor.wallet.sending import SendingWallet
from depeg_processor.wallet.wallet import Wallet

from .wallet_harness import build_wallet


class Clock:
    """The monotonic time, set by the test."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Node:
    """A node no test here asks anything."""

    def batch(self, calls) -> list:
        raise AssertionError(f"unexpected calls {calls}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Replica(SendingWallet):
    """One process's choice among its wallets, with what the test needs to see of them:
    whether each wallet's consumer has something in hand (`busy`), and how often each
    wallet's last batch was waited for (`finished`)."""

    def __init__(self, wallets: list[Wallet], *, client, clock: Clock) -> None:
        self.busy: set[Wallet] = set()
        self.finished = {wallet: 0 for wallet in wallets}
        for wallet in wallets:
            wallet.finish = counted(wallet.finish, self.finished, wallet)
        super().__init__(
            wallets,
            redis_client=client,
            monotonic=clock,
            idle=lambda wallet: wallet not in self.busy,
        )


def counted(finish: Callable[[], None], counts: dict, wallet: Wallet) -> Callable[[], None]:
    """`finish`, each call counted in `counts[wallet]`."""

    def finish_counted() -> None:
        counts[wallet] += 1
        finish()

    return finish_counted


def replica(client, clock: Clock, owner: str, wallets: int = 2) -> Replica:
    """One process's choice among `wallets` wallets; its consumers have nothing in hand."""
    time = clocks.Clock(now=lambda: 1795830700.0, monotonic=clock)
    pool = [
        build_wallet(
            client,
            chain=Node(),
            clock=time,
            prefix=f"w{i}",
            owner=f"0xW{i}",
            lease_owner=owner,
            lease_key=f"w{i}:lease",
        )
        for i in range(wallets)
    ]
    return Replica(pool, client=client, clock=clock)


def in_flight(client, wallet: int, *entity_ids: str) -> None:
    for nonce, entity_id in enumerate(entity_ids):
        client.zadd(f"w{wallet}:inflight", {entity_id: nonce})


def address(choice: SendingWallet) -> str | None:
    return choice.current.address if choice.current else None


def stops(choice: SendingWallet) -> None:
    """A clean stop, as Service.run ends: every lease given up for good."""
    for wallet in choice.wallets:
        wallet.lease.release()


def test_each_replica_takes_the_first_free_wallet_and_a_third_stands_by(fake_redis, clock):
    a, b, c = (replica(fake_redis, clock, owner) for owner in "abc")
    assert [x.keep_leases_once() and address(x) for x in (a, b, c)] == ["0xW0", "0xW1", None]
    assert c.working() is c.wallets[0], "standing by, it watches the first wallet's health"


def test_a_replica_with_nothing_in_flight_moves_to_a_wallet_left_in_flight(fake_redis, clock):
    a, b = replica(fake_redis, clock, "a"), replica(fake_redis, clock, "b")
    a.keep_leases_once(), b.keep_leases_once()
    in_flight(fake_redis, 1, "app-1", "app-2")
    stops(b)  # a scale-down: b's lease released, its transactions still in flight

    moved = a.take_a_left_wallet()

    assert moved is a.wallets[1] and address(a) == "0xW1"
    assert fake_redis.get("w1:lease") == "a" and fake_redis.get("w0:lease") is None
    assert a.finished[a.wallets[0]] == 1, "its last batch went out first"
    assert a.keep_leases_once() is a.wallets[1], "the keeper renews the wallet moved to"


def test_no_move_while_its_own_wallet_has_something_in_flight_or_in_hand(fake_redis, clock):
    a, b = replica(fake_redis, clock, "a"), replica(fake_redis, clock, "b")
    a.keep_leases_once(), b.keep_leases_once()
    in_flight(fake_redis, 1, "app-1")
    stops(b)
    in_flight(fake_redis, 0, "app-0")
    assert a.take_a_left_wallet() is None and address(a) == "0xW0"

    fake_redis.delete("w0:inflight")
    a.busy.add(a.wallets[0])
    clock.now += a.interval
    assert a.take_a_left_wallet() is None and address(a) == "0xW0"

    a.busy.clear()
    assert a.take_a_left_wallet() is None, "looked again only after the renewal interval"
    clock.now += a.interval
    assert a.take_a_left_wallet() is a.wallets[1]


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
    assert a.take_a_left_wallet() is a.wallets[1]
    fake_redis.delete("w1:inflight")  # a confirmed and purged them
    c = replica(fake_redis, clock, "c")  # a scale-up takes the wallet a gave up
    assert c.keep_leases_once() is c.wallets[0]
    in_flight(fake_redis, 0, "app-2")
    stops(c)  # and a scale-down leaves it in flight

    clock.now += a.interval
    assert a.take_a_left_wallet() is a.wallets[0], "a wallet given up may be taken again"
    assert fake_redis.get("w0:lease") == "a"
    assert a.wallets[0].lease.generation == 2, "taken again: what was left is adopted anew"
