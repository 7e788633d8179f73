"""The pool's revert budget and what every wei paid shows: the revert ledger (once per hash,
the last hour only), the pool-wide spending figure, the metrics a revert moves, and the guard
that holds every wallet while the hour's reverted gas is at MAX_REVERTED_GAS_PER_HOUR."""

from __future__ import annotations

import pytest

from depeg_processor import errors, keys
from depeg_processor.monitor import Limits, readiness_checks
from depeg_processor.wallet.budget import PoolSpend, RevertLedger
from depeg_processor.wallet.records import SpendLedger

from .consumer_harness import KEY, Harness
from .helpers import signed_fields
from .test_lifecycle import NOW, World

STREAM = "application:signatures"
LIMITS = Limits(alert_balance=0, loop_max_age=60, watcher_max_age=60, max_non_ack_pending=10)


def sample(metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def test_the_revert_ledger_counts_each_transaction_once_and_only_the_last_hour(fake_redis):
    ledger = RevertLedger(fake_redis, stream=STREAM)
    assert ledger.key == "application:signatures:reverted"
    new, gas = ledger.add([("0xa", 196_000, 196_000 * 3), ("0xb", 1_120_000, 5)], NOW)
    assert (new, gas) == ({"0xa", "0xb"}, 1_316_000)
    # the same revert settled again (a crash before its application was settled, or the
    # next holder of its wallet): neither new nor counted twice, and its time is kept
    new, gas = ledger.add([("0xa", 196_000, 196_000 * 3)], NOW + 1800)
    assert (new, gas) == (set(), 1_316_000)
    assert fake_redis.zscore(ledger.key, f"0xa:196000:{196_000 * 3}") == NOW
    assert ledger.last_hour(NOW + 3599) == 1_316_000
    assert ledger.last_hour(NOW + 3601) == 0  # the hour rolled past both
    assert fake_redis.zcard(ledger.key) == 0, "trimmed, not only left out"


def test_the_spending_figure_is_the_pools_mined_and_in_flight(fake_redis):
    prefixes = [STREAM, keys.wallet_prefix(STREAM, 1, "0xB")]
    first, second = (
        PoolSpend(fake_redis, stream=STREAM, address=a, own=p, pool=prefixes)
        for a, p in zip(("0xA", "0xB"), prefixes)
    )
    first.add_many([("0x1", 100)], NOW - 4000)  # older than the hour
    first.add_many([("0x2", 300)], NOW - 10)
    second.add_many([("0x3", 50)], NOW)
    assert fake_redis.zcard(SpendLedger(fake_redis, prefix=prefixes[1]).key) == 1
    assert second.last_hour(NOW, in_flight=7) == 357
    # the first wallet's watcher then sees the second's in flight as well as its own
    assert first.last_hour(NOW + 1, in_flight=1000) == 300 + 50 + 7 + 1000
    # an hour on: what was mined is out of the window; the first's in flight still counts
    assert second.last_hour(NOW + 3600.5, in_flight=0) == 1000
    # until nobody counted it for an hour (its process gone): it no longer adds
    assert second.last_hour(NOW + 3602, in_flight=0) == 0


@pytest.fixture
def world(fake_redis) -> World:
    return World(fake_redis)


def reverted_in_a_block(world: World, n: int = 1):
    record = world.send(n)
    world.round()
    world.chain.mine(record.tx_hash, status=0)
    world.chain.mine()
    world.chain.call_error = errors.PermanentError("ERROR:DP-015:ALLOWANCE_TOO_LOW")
    assert world.round() == 1
    return record


def test_a_revert_shows_in_the_metrics_beside_confirmed_spend_and_in_the_ledger(world):
    metrics = world.wallet.ctx.shared.metrics
    record = reverted_in_a_block(world)
    paid = 21_000 * 10**9  # the fake chain's gas used and effective gas price
    assert sample(metrics, "depeg_processor_reverted_spent_wei_total") == paid
    assert sample(metrics, "depeg_processor_reverted_transactions_total") == 1
    assert sample(metrics, "depeg_processor_gas_spent_wei_total") == 0, "confirmed ones only"
    assert sample(metrics, "depeg_processor_reverted_gas_last_hour") == 21_000
    assert world.wallet.last_seen().reverted_gas == 21_000
    assert world.redis.zrange(keys.reverted_key(STREAM), 0, -1) == [
        f"{record.tx_hash}:21000:{paid}"
    ]
    # a later round with nothing new keeps the figure, and lowers it once the hour has passed
    world.chain.mine()
    world.round()
    assert world.wallet.last_seen().reverted_gas == 21_000
    world.now[0] += 3601
    world.chain.mine()
    world.round()
    assert world.wallet.last_seen().reverted_gas == 0
    assert sample(metrics, "depeg_processor_reverted_gas_last_hour") == 0
    assert sample(metrics, "depeg_processor_reverted_spent_wei_total") == paid, "a counter"


def test_a_revert_another_process_wrote_already_is_not_counted_again(world):
    """Its previous holder wrote the revert to the pool's ledger and stopped before settling
    the application: the next holder settles it, and the pool's metrics still add up."""
    ledger = world.wallet.ctx.shared.reverts
    ledger.add([("0x" + f"{1:064x}", 21_000, 21_000 * 10**9)], NOW)
    reverted_in_a_block(world)
    metrics = world.wallet.ctx.shared.metrics
    assert sample(metrics, "depeg_processor_reverted_transactions_total") == 0
    assert world.wallet.last_seen().reverted_gas == 21_000


def test_a_confirmed_transaction_is_no_revert(world):
    record = world.send()
    world.round()
    world.chain.mine(record.tx_hash)
    world.chain.mine()
    assert world.round() == 1
    metrics = world.wallet.ctx.shared.metrics
    assert sample(metrics, "depeg_processor_gas_spent_wei_total") == 21_000 * 10**9
    assert sample(metrics, "depeg_processor_reverted_transactions_total") == 0
    assert world.wallet.last_seen().reverted_gas == 0


@pytest.fixture
def h(fake_redis):
    harness = Harness(fake_redis, max_reverted_gas_per_hour=500_000)
    yield harness
    harness.close()


def test_the_spent_budget_holds_sending_names_itself_and_lifts_as_the_hour_rolls(h):
    ledger = h.wallet.ctx.shared.reverts
    now = h.clock.now()
    ledger.add([("0xa", 196_000, 1), ("0xb", 196_000, 1), ("0xc", 196_000, 1)], now - 10)
    h.wallet.ctx.last_seen.set_reverted_gas(ledger.last_hour(now))  # the watcher's round
    h.enqueue(signed_fields())

    assert h.run_once() == 0
    assert h.calls == [] and h.node.sent == [] and h.node.simulations == 0
    assert h.queue.backlog().lag == 1, "nothing read while it holds"
    snap = h.state.snapshot()
    expected = (
        "revert budget spent: 588000 gas reverted in the last hour reached "
        "MAX_REVERTED_GAS_PER_HOUR 500000"
    )
    checks = readiness_checks(snap, LIMITS, h.time.now)
    assert checks["reverts"] == expected
    assert expected in checks["sending"]

    # an hour after the reverts the watcher's figure is 0: the next round sends again
    h.wallet.ctx.last_seen.set_reverted_gas(ledger.last_hour(now + 3600))
    assert h.run_once() == 1
    assert h.redis.hexists(KEY, "transactionHash")
    checks = readiness_checks(h.state.snapshot(), LIMITS, h.time.now)
    assert "reverts" not in checks and "sending" not in checks


def test_under_the_budget_or_without_one_nothing_holds(fake_redis):
    for budget, gas in ((500_000, 499_999), (0, 10**9)):
        fake_redis.flushall()
        harness = Harness(fake_redis, max_reverted_gas_per_hour=budget)
        try:
            harness.wallet.ctx.last_seen.set_reverted_gas(gas)
            harness.enqueue(signed_fields())
            assert harness.run_once() == 1, (budget, gas)
            assert harness.state.snapshot().reverts is None
        finally:
            harness.close()
