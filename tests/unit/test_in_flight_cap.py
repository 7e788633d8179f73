"""The cap on a wallet's transactions in flight (PROCESSOR_MAX_IN_FLIGHT): at the cap its
consumer reads nothing, looks again at the watcher's pace, keeps beating, and the monitor shows
the hold without failing readiness; below it, it reads no more than the room left."""

from __future__ import annotations

import threading

import pytest

from depeg_processor.state import AT_CAP

from .consumer_harness import Harness
from .helpers import signed_fields
from .test_monitor import get
from .wallet_harness import ETHER, build_consumer

CAP = 3
POLL = 2.0  # the watcher's pace (RECEIPT_POLL_INTERVAL)
BALANCE_WAIT = 60.0  # BALANCE_TOO_LOW_TIMEOUT: not how long a wallet at its cap waits


class Waits(threading.Event):
    """The loop's stop event: each wait is recorded and moves the harness's clock on by it."""

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self._harness = harness
        self.waited: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.append(timeout)
        self._harness.time.now += timeout or 0.0
        return self.is_set()


@pytest.fixture
def h(fake_redis):
    harness = Harness(fake_redis)
    harness.waits = Waits(harness)
    harness.consumer = build_consumer(
        harness.wallet,
        clock=harness.clock,
        state=harness.state,
        metrics=harness.metrics,
        stop=harness.waits,
        max_in_flight=CAP,
        in_flight_poll=POLL,
        balance_too_low_timeout=BALANCE_WAIT,
    )
    yield harness
    harness.close()


def enqueue(h: Harness, count: int) -> list[str]:
    names = [f"E{i}" for i in range(count)]
    for name in names:
        h.enqueue(signed_fields(signature_id=f"sig-{name}"), entity_id=name)
    return names


def watcher_saw_mined(h: Harness, mined: int) -> None:
    """What the receipt watcher publishes after a look at the chain (the node says so too)."""
    h.node.mined = mined
    h.wallet.ctx.last_seen.observed(balance=2 * ETHER, mined_nonce=mined)


def undelivered(h: Harness) -> int:
    return h.queue.backlog().lag


def test_a_wallet_at_its_cap_reads_nothing_and_the_monitor_says_so_without_failing(h) -> None:
    enqueue(h, 5)
    watcher_saw_mined(h, 0)
    assert h.run_once() == CAP, "reads no more than the cap"
    assert undelivered(h) == 2

    beat_before = h.state.snapshot().processor_beat
    assert h.run_once() == 0
    assert undelivered(h) == 2, "at the cap: not even read"
    assert h.waits.waited and sum(h.waits.waited) == POLL, "looks again at the watcher's pace"
    snap = h.state.snapshot()
    assert snap.processor_beat > beat_before, "the loop beats while it waits"
    assert snap.holding.startswith(AT_CAP) and h.wallet.address in snap.holding
    status, body = get(h.state, "/api/monitor/readiness")
    assert status == 200, body
    assert "PROCESSOR_MAX_IN_FLIGHT" in body["inFlight"] and "sending" not in body


def test_it_reads_the_room_left_as_its_transactions_are_mined(h) -> None:
    enqueue(h, 5)
    watcher_saw_mined(h, 0)
    assert h.run_once() == CAP
    watcher_saw_mined(h, 1)  # one mined: room for one
    assert h.run_once() == 1 and undelivered(h) == 1
    assert h.state.snapshot().holding is None
    assert h.run_once() == 0, "at the cap again"
    watcher_saw_mined(h, 4)
    assert h.run_once() == 1 and undelivered(h) == 0
    h.wallet.finish()
    assert len(h.node.sent) == 5


def test_before_the_watchers_first_look_the_records_in_flight_count(h) -> None:
    enqueue(h, 5)
    assert h.run_once() == CAP  # nothing recorded yet: room for the cap
    assert h.run_once() == 0, "three records in flight, nothing known mined"
    assert undelivered(h) == 2


def test_a_mined_transaction_waiting_for_confirmations_takes_no_place(h) -> None:
    enqueue(h, 4)
    watcher_saw_mined(h, 0)
    assert h.run_once() == CAP
    watcher_saw_mined(h, CAP)  # all mined, none confirmed yet: still in the in-flight set
    assert h.records.count() == CAP
    assert h.run_once() == 1 and undelivered(h) == 0


def test_at_the_cap_the_node_is_asked_when_the_watchers_figure_is_old(h) -> None:
    enqueue(h, 5)
    watcher_saw_mined(h, 0)
    assert h.run_once() == CAP
    h.node.mined = CAP  # mined, but the watcher has not looked since
    assert h.run_once() == 2, "the node's count frees the room at once"
    assert not h.waits.waited, "no wait for the watcher's next look"


def test_at_the_cap_a_wallet_looks_again_after_half_a_block(h) -> None:
    enqueue(h, 5)
    watcher_saw_mined(h, 0)
    h.wallet.ctx.last_seen.set_block_time(1.0)  # the watcher learned the chain's pace
    assert h.run_once() == CAP
    assert h.run_once() == 0
    assert sum(h.waits.waited) == 0.5, "half a block, not the watcher's whole round"


def test_at_the_cap_a_nonce_to_synchronise_is_synchronised_not_counted_by_records(h) -> None:
    """A batch not written forgets the local nonce; the records still in flight, mined and
    waiting for confirmations, must not hold the wallet at its cap until blocks come."""
    enqueue(h, 5)
    watcher_saw_mined(h, 0)
    assert h.run_once() == CAP
    h.wallet.finish()
    h.node.mined = CAP  # all three mined; no block confirms them yet
    h.wallet.ctx.nonces.sync_later()
    assert h.wallet.records.count() == CAP, "still in flight, waiting for confirmations"
    assert h.run_once() == 2, "the next nonce is synchronised and the room is free"
    assert not h.waits.waited
