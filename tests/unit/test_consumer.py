"""consumer.Consumer.run_once over an in-memory Redis, with a real wallet and a node double: the
loop, its guards (balance, a stuck transaction) and what a failure does to the entries in hand."""

from __future__ import annotations

import pytest

from depeg_processor import errors
from depeg_processor.errors import NodeUnavailable

from .consumer_harness import ESTIMATE, KEY, Harness
from .helpers import ENTITY_ID, signed_fields
from .wallet_harness import ETHER, STREAM


@pytest.fixture
def h(fake_redis):
    harness = Harness(fake_redis)
    yield harness
    harness.close()


def test_good_entry_is_sent_marked_and_acked(h) -> None:
    entry_id = h.enqueue(signed_fields())
    assert h.run_once() == 1
    assert h.calls == [(ENTITY_ID, entry_id)]
    assert h.redis.hget(KEY, "transactionHash") == h.tx_hash()
    assert h.records.get(ENTITY_ID).stream_entry_id == entry_id
    assert h.queue.backlog().group_pending == 0
    assert h.dead_letters() == []
    snap = h.state.snapshot()
    assert snap.processor_beat == h.time.now and snap.balance == 2 * ETHER
    assert snap.holding is None
    h.wallet.finish()
    assert h.node.sent == [h.records.get(ENTITY_ID).raw], "published once recorded"


def test_several_entries_in_one_run(h) -> None:
    for entity in ("E1", "E2", "E3"):
        h.enqueue(signed_fields(signature_id=f"sig-{entity}"), entity_id=entity)
    assert h.run_once() == 3
    assert [entity for entity, _ in h.calls] == ["E1", "E2", "E3"]
    assert h.queue.backlog().group_pending == 0


def test_product_inactive_holds_the_entry_and_retries_it(h) -> None:
    entry_id = h.enqueue(signed_fields())
    h.node.answer = errors.ProductInactive("ERROR:DP-010:PRODUCT_NOT_ACTIVE")
    assert h.run_once() == 0
    assert h.queue.backlog().group_pending == 1
    assert not h.redis.hexists(KEY, "transactionHash")
    assert "product not active" in h.state.snapshot().holding
    assert h.dead_letters() == []

    h.node.answer = None
    assert h.run_once() == 1
    assert h.calls == [(ENTITY_ID, entry_id)] * 2
    assert h.queue.backlog().group_pending == 0
    assert h.state.snapshot().holding is None


@pytest.mark.parametrize(
    "how, error",
    [
        ("answer", errors.TransientError("node error -32000: busy")),  # about this call
        ("failure", NodeUnavailable("node unreachable (eth_estimateGas)")),  # the whole batch
        ("failure", RuntimeError("a bug")),
    ],
)
def test_transient_or_unexpected_failure_keeps_the_entry_for_the_next_run(h, how, error) -> None:
    entry_id = h.enqueue(signed_fields())
    setattr(h.node, how, error)
    assert h.run_once() == 0
    assert h.queue.backlog().group_pending == 1 and h.dead_letters() == []

    setattr(h.node, how, None)
    assert h.run_once() == 1
    assert h.calls == [(ENTITY_ID, entry_id)] * 2
    assert h.redis.hget(KEY, "transactionHash") == h.tx_hash()


def test_node_unavailable_is_reported_to_the_monitor(h) -> None:
    h.node.balance_error = NodeUnavailable("node unreachable (eth_getBalance)")
    h.enqueue(signed_fields())
    h.run_once()
    assert "unreachable" in h.state.snapshot().node_error
    assert h.calls == []


def test_balance_below_minimum_reads_nothing_and_holds(h) -> None:
    h.node.wei = ETHER - 1
    h.enqueue(signed_fields())
    assert h.run_once() == 0
    assert h.queue.backlog().group_pending == 0  # not even delivered
    assert h.calls == []
    assert "PROCESSOR_MIN_BALANCE" in h.state.snapshot().holding

    h.node.wei = ETHER
    assert h.run_once() == 1  # re-read at once after the hold, not cached
    assert h.state.snapshot().holding is None


def test_balance_is_lowered_locally_by_what_a_send_may_cost(h) -> None:
    gas = ESTIMATE * 12 // 10  # the estimate and its headroom
    max_fee = h.wallet.ctx.shared.fees.current().max_fee_per_gas
    h.node.wei = ETHER + gas * max_fee // 2  # covers half of one transaction's worst case
    h.enqueue(signed_fields(signature_id="one"), entity_id="E1")
    assert h.run_once() == 1
    record = h.records.get("E1")
    assert (record.gas, record.max_fee_per_gas) == (gas, max_fee)
    h.enqueue(signed_fields(signature_id="two"), entity_id="E2")
    assert h.run_once() == 0
    assert h.node.balance_calls == 1  # within the ttl: the node was not asked again
    assert [entity for entity, _ in h.calls] == ["E1"]


def test_stop_request_leaves_entries_unsettled(h) -> None:
    h.enqueue(signed_fields())
    h.stop.set()
    assert h.run_once() == 0
    assert h.calls == []


def test_a_simulation_error_that_keeps_coming_back_is_set_aside_not_retried_forever(h) -> None:
    h.enqueue(signed_fields())
    h.node.answer = errors.TransientError("node error -32000: gas required exceeds allowance")
    for _ in range(2):  # max_deliveries=3 in this harness
        assert h.run_once() == 0
        assert h.dead_letters() == []
    h.run_once()
    [dead] = h.dead_letters()
    assert "simulation failed 3 times" in dead["reason"] and "gas required" in dead["reason"]
    assert h.queue.backlog().group_pending == 0


def test_a_paused_product_is_held_without_limit(h) -> None:
    h.enqueue(signed_fields())
    h.node.answer = errors.ProductInactive("ERROR:DP-010:PRODUCT_NOT_ACTIVE")
    for _ in range(6):
        assert h.run_once() == 0
    assert h.dead_letters() == [] and h.queue.backlog().group_pending == 1


def test_entries_settled_before_a_batch_failure_are_not_retried(h) -> None:
    h.redis.xadd(STREAM, {"foo": "bar"})  # dead-lettered at once
    h.enqueue(signed_fields())
    h.node.failure = NodeUnavailable("node unreachable (batch)")
    assert h.run_once() == 0
    h.node.failure = None
    assert h.run_once() == 1
    assert len(h.dead_letters()) == 1, "the odd entry was set aside once, not twice"


def test_an_idle_consumer_asks_the_node_nothing(h) -> None:
    h.node.wei = ETHER
    h.run_once()  # nothing known yet: one read
    assert h.node.balance_calls == 1
    for _ in range(5):
        h.time.now += 10.0  # past the balance's time to live, but no work in hand
        assert h.lease.acquire()  # what the lease keeper does meanwhile
        assert h.run_once() == 0
    assert h.node.balance_calls == 1

    h.enqueue(signed_fields())
    assert h.run_once() == 1  # work in hand and a stale figure: read again
    assert h.node.balance_calls == 2


def test_the_balance_read_at_start_serves_the_first_batch_while_fresh(h) -> None:
    read_at = h.time.now
    h.consumer.guards.observed_balance(2 * ETHER, at=read_at)
    h.time.now += 4.9  # within the balance's time to live (5 s)
    h.enqueue(signed_fields(signature_id="one"), entity_id="E1")
    assert h.run_once() == 1
    assert h.node.balance_calls == 0, "start-up's reading, not asked again"
    h.time.now = read_at + 5.0  # as old as the time to live: read as before
    h.enqueue(signed_fields(signature_id="two"), entity_id="E2")
    assert h.run_once() == 1
    assert h.node.balance_calls == 1


def test_a_stale_balance_from_start_is_read_again(h) -> None:
    h.consumer.guards.observed_balance(2 * ETHER, at=h.time.now)
    h.time.now += 5.0  # a standby's first batch, long after its start
    h.node.wei = ETHER - 1
    h.enqueue(signed_fields())
    assert h.run_once() == 0
    assert h.node.balance_calls == 1 and h.calls == []
    assert "PROCESSOR_MIN_BALANCE" in h.state.snapshot().holding


def test_a_low_balance_at_start_holds_and_is_read_again_after_the_hold(h) -> None:
    h.consumer.guards.observed_balance(ETHER - 1, at=h.time.now)
    h.enqueue(signed_fields())
    assert h.run_once() == 0
    assert h.node.balance_calls == 0 and h.calls == []
    assert "PROCESSOR_MIN_BALANCE" in h.state.snapshot().holding
    assert h.run_once() == 1  # re-read at once after the hold, not the start's figure
    assert h.node.balance_calls == 1
    assert h.state.snapshot().holding is None


def test_an_unforeseen_error_with_the_whole_batch_ends_in_the_dead_letters(h) -> None:
    h.enqueue(signed_fields())
    h.node.failure = RuntimeError("a bug")
    for _ in range(2):
        assert h.run_once() == 0
        assert h.dead_letters() == [] and h.queue.backlog().group_pending == 1
    h.run_once()
    [dead] = h.dead_letters()
    assert "RuntimeError" in dead["reason"] and dead["kind"] == "other"
    assert h.queue.backlog().group_pending == 0 and h.dead_lettered() == {"other": 1}
    h.enqueue(signed_fields(signature_id="next"), entity_id="E2")
    h.node.failure = None
    assert h.run_once() == 1  # the loop goes on


def test_an_unforeseen_error_while_reading_reads_the_delivered_entries_again(
    h, monkeypatch
) -> None:
    h.enqueue(signed_fields())
    real = h.redis.xreadgroup

    def read_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("a bug after the delivery")

    monkeypatch.setattr(h.redis, "xreadgroup", read_then_fail)
    assert h.run_once() == 0
    monkeypatch.undo()
    assert h.run_once() == 1  # from this consumer's backlog, not left pending
    entry_id = h.redis.xrange(STREAM)[0][0]
    assert h.calls == [(ENTITY_ID, entry_id)]
    assert h.queue.backlog().group_pending == 0


def test_attempts_are_forgotten_once_their_entries_are_out_of_hand(h) -> None:
    h.enqueue(signed_fields())
    h.node.answer = errors.TransientError("node error -32000: gas required exceeds allowance")
    h.run_once()
    assert list(h.consumer.held.attempts().values()) == [1]
    h.node.answer = None
    assert h.run_once() == 1
    assert h.consumer.held.attempts() == {}


def test_an_unforeseen_error_before_reading_holds_the_entries_without_counting(h) -> None:
    h.enqueue(signed_fields())
    h.node.answer = errors.TransientError("node busy")
    h.run_once()  # the entry is in hand, one attempt counted
    h.node.balance_error = RuntimeError("a bug in the balance check")
    h.consumer.guards.forget_balance()
    for _ in range(5):
        assert h.run_once() == 0
    assert h.dead_letters() == [] and h.queue.backlog().group_pending == 1
    h.node.balance_error = h.node.answer = None
    assert h.run_once() == 1


# -- one wallet of a pool ----------------------------------------------------------------------

WALLET = "0x" + "11" * 20


@pytest.fixture
def pooled(fake_redis):
    harness = Harness(fake_redis, owner=WALLET)
    yield harness
    harness.close()


def test_a_stuck_transaction_holds_reading_and_the_hold_names_the_wallet(pooled) -> None:
    h = pooled
    h.enqueue(signed_fields())
    h.wallet.ctx.last_seen.set_stuck("transactions cannot be mined: max fee per gas is at the cap")
    assert h.run_once() == 0
    assert h.calls == [] and h.queue.backlog().group_pending == 0, "not even read"
    holding = h.state.snapshot().holding
    assert holding.startswith(f"wallet {WALLET}: ") and "cannot be mined" in holding
    h.wallet.ctx.last_seen.set_stuck(None)
    assert h.run_once() == 1
    assert h.state.snapshot().holding is None


def test_entries_read_counts_new_entries_not_redeliveries(h) -> None:
    """depeg_processor_entries_read_total: applications in, once each; this consumer's own
    backlog (read again after a restart) is not counted again."""
    registry = h.metrics.registry

    def read() -> float:
        return registry.get_sample_value("depeg_processor_entries_read_total")

    for entity in ("E1", "E2"):
        h.enqueue(signed_fields(signature_id=f"sig-{entity}"), entity_id=entity)
    h.queue.read(count=10, block_ms=1)  # delivered before a restart, not acknowledged
    h.queue.rewind()
    assert h.run_once() == 2 and read() == 0.0, "its own backlog, delivered before"
    h.enqueue(signed_fields(signature_id="sig-E3"), entity_id="E3")
    assert h.run_once() == 1 and read() == 1.0
