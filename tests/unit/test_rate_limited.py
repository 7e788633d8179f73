"""A node that rate-limits: never an application's failure (no attempt counted, nothing set
aside), and the readiness monitor says so while it lasts."""

from __future__ import annotations

import pytest
import responses

from depeg_processor import errors
from depeg_processor.chain.rpc import NodeClient
from depeg_processor.state import SharedState

from .consumer_harness import KEY, Harness
from .helpers import ENTITY_ID, signed_fields
from .test_monitor import get

LIMITED = errors.RateLimited("node error -32005: limit exceeded")


@pytest.fixture
def healthy_state() -> SharedState:
    state = SharedState(monotonic=lambda: 1000.0)
    state.processor_beat()
    state.watcher_beat()
    state.set_balance(2 * 10**18)
    state.set_non_ack_pending(0)
    return state


@pytest.fixture
def h(fake_redis):
    harness = Harness(fake_redis)  # max_deliveries=3
    yield harness
    harness.close()


def test_a_rate_limited_simulation_is_not_an_attempt(h) -> None:
    entry_id = h.enqueue(signed_fields())
    h.node.answer = LIMITED  # in each one's place
    for _ in range(6):  # twice the deliveries after which a simulation error sets it aside
        assert h.run_once() == 0
    assert h.dead_letters() == [] and h.queue.backlog().group_pending == 1
    assert h.consumer.held.attempts() == {}, "no attempt counted"

    h.node.answer = None
    assert h.run_once() == 1
    assert h.calls == [(ENTITY_ID, entry_id)] * 7, "six simulations refused, then sent"
    assert h.records.get(ENTITY_ID).stream_entry_id == entry_id
    assert h.redis.hget(KEY, "transactionHash") == h.tx_hash()


def test_a_rate_limited_batch_keeps_the_entry_and_tells_the_monitor(h) -> None:
    h.enqueue(signed_fields())
    h.node.failure = errors.RateLimited("rate limited by the node (HTTP 429); gave up after 5s")
    for _ in range(6):
        assert h.run_once() == 0
    assert h.dead_letters() == [] and h.queue.backlog().group_pending == 1
    assert "rate limited" in h.state.snapshot().node_error

    h.node.failure = None
    assert h.run_once() == 1
    assert h.state.snapshot().node_error is None


def test_readiness_fails_while_rate_limited_and_recovers(healthy_state) -> None:
    assert get(healthy_state, "/api/monitor/readiness")[0] == 200
    healthy_state.set_rate_limited("HTTP 429, retrying in 1s")
    status, body = get(healthy_state, "/api/monitor/readiness")
    assert status == 500
    assert body["node"] == "rate limited by the node (see the log)"
    assert get(healthy_state)[0] == 200, "the service itself is fine: /api/monitor stays 200"

    healthy_state.set_rate_limited(None)
    assert get(healthy_state, "/api/monitor/readiness") == (
        200,
        {"balance": "ok", "node": "ok", "redis": "ok"},
    )


def test_the_chain_tells_the_state_while_it_waits_out_a_rate_limit(healthy_state) -> None:
    seen_while_waiting, now = [], [50.0]

    def wait(seconds: float) -> bool:
        seen_while_waiting.append(healthy_state.snapshot().rate_limited)
        now[0] += seconds
        return False

    chain = NodeClient(
        url="http://node.test",
        timeout=1,
        max_batch=7,
        wait=wait,
        on_rate_limit=healthy_state.set_rate_limited,
        monotonic=lambda: now[0],
    )
    with responses.RequestsMock() as node:
        node.add(responses.POST, "http://node.test", status=429, headers={"Retry-After": "0.01"})
        node.add(
            responses.POST, "http://node.test", json={"jsonrpc": "2.0", "id": 0, "result": "0x7a69"}
        )
        assert chain.chain_id() == 31337
    assert seen_while_waiting == ["HTTP 429, retrying in 0.25s"]  # the shortest pause
    assert healthy_state.snapshot().rate_limited is None
    assert chain.max_batch == 7
