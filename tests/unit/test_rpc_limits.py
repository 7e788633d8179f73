"""chain.rpc under a hosted provider's rate limits: 429 and -32005 waited out (Retry-After, else
a capped backoff) within the patience, the shared state told, a stop ending the wait."""

from __future__ import annotations

import pytest
import responses

from depeg_processor import errors
from depeg_processor.chain import rpc as chain_module
from depeg_processor.chain.rpc import NodeClient
from depeg_processor.errors import NodeUnavailable

from .fake_node import URL, Clock, echo, error_answer, limited_chain, rpc_reply, sizes


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limited(clock: Clock) -> NodeClient:
    return limited_chain(clock)


def test_429_with_retry_after_is_waited_out_and_retried(node, limited, clock) -> None:
    node.add(responses.POST, URL, status=429, headers={"Retry-After": "2"}, body="slow down")
    node.add_callback(responses.POST, URL, callback=rpc_reply(lambda m, p: ("result", "0x7a69")))
    assert limited.chain_id() == 31337
    assert clock.waits == [2.0]
    assert len(node.calls) == 2
    assert [fact is None for fact in limited.facts] == [False, True]  # limited, then over
    assert "HTTP 429" in limited.facts[0]
    assert [type(e) for e in limited.counted] == [errors.RateLimited]


def test_429_without_retry_after_backs_off_exponentially_with_a_cap(
    node, limited, clock, monkeypatch
) -> None:
    monkeypatch.setattr(chain_module, "PATIENCE", 30.0)
    for _ in range(6):
        node.add(responses.POST, URL, status=429)
    node.add_callback(responses.POST, URL, callback=rpc_reply(lambda m, p: ("result", "0x1")))
    assert limited.request("eth_blockNumber", []) == "0x1"
    assert clock.waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_a_lasting_rate_limit_raises_rate_limited_within_the_patience(node, limited, clock) -> None:
    node.add(responses.POST, URL, status=429, headers={"Retry-After": "2"})
    with pytest.raises(errors.RateLimited) as caught:
        limited.request("eth_blockNumber", [])
    assert isinstance(caught.value, NodeUnavailable)
    assert sum(clock.waits) <= chain_module.PATIENCE and clock.waits == [2.0, 2.0]
    assert limited.facts[-1] is not None, "still limited: the monitor keeps saying so"


def test_a_retry_after_beyond_the_patience_gives_up_at_once_and_is_honoured_later(
    node, limited, clock
) -> None:
    node.add(responses.POST, URL, status=429, headers={"Retry-After": "30"})
    with pytest.raises(errors.RateLimited):
        limited.request("eth_blockNumber", [])
    with pytest.raises(errors.RateLimited):
        limited.request("eth_blockNumber", [])  # not asked again before the 30 s are over
    assert len(node.calls) == 1 and clock.waits == []
    clock.now += 30
    node.replace(responses.POST, URL, json={"jsonrpc": "2.0", "id": 0, "result": "0x2"})
    assert limited.request("eth_blockNumber", []) == "0x2"


def test_stopping_ends_the_wait(node, clock) -> None:
    chain = NodeClient(url=URL, timeout=5, wait=lambda seconds: True, monotonic=clock)
    node.add(responses.POST, URL, status=429, headers={"Retry-After": "1"})
    with pytest.raises(errors.RateLimited, match="stopping"):
        chain.request("eth_blockNumber", [])
    assert len(node.calls) == 1


def test_json_rpc_32005_for_a_whole_batch_is_retried(node, limited, clock) -> None:
    node.add(
        responses.POST,
        URL,
        json=error_answer(-32005, "limit exceeded", None),
    )
    node.add_callback(responses.POST, URL, callback=rpc_reply(echo))
    assert limited.batch([("eth_getBalance", ["a"]), ("eth_getBalance", ["b"])]) == [
        "eth_getBalance:a",
        "eth_getBalance:b",
    ]
    assert clock.waits == [0.25] and sizes(node) == [2, 2]


def test_rate_limited_batch_members_alone_are_asked_again(node, limited, clock) -> None:
    refused = {"b", "d"}

    def handler(method, params):
        if params[0] in refused:
            refused.discard(params[0])
            return "error", {"code": -32005, "message": "limit exceeded"}
        return echo(method, params)

    node.add_callback(responses.POST, URL, callback=rpc_reply(handler))
    results = limited.batch([("eth_call", [x]) for x in "abcd"])
    assert results == [f"eth_call:{x}" for x in "abcd"]
    assert sizes(node) == [4, 2] and clock.waits == [0.25]


def test_members_still_limited_after_the_patience_carry_rate_limited(node, limited) -> None:
    def handler(method, params):
        if params[0] == "b":
            return "error", {"code": -32005, "message": "limit exceeded"}
        return echo(method, params)

    node.add_callback(responses.POST, URL, callback=rpc_reply(handler))
    first, second = limited.batch([("eth_call", ["a"]), ("eth_call", ["b"])])
    assert first == "eth_call:a" and isinstance(second, errors.RateLimited)


def test_a_rate_limit_answered_with_http_400_is_waited_out_not_taken_as_a_refusal(
    node, limited, clock
) -> None:
    node.add(
        responses.POST,
        URL,
        status=400,
        json=error_answer(-32005, "limit exceeded", None),
    )
    node.add_callback(responses.POST, URL, callback=rpc_reply(echo))
    assert limited.batch([("eth_call", ["a"]), ("eth_call", ["b"])]) == ["eth_call:a", "eth_call:b"]
    assert clock.waits == [0.25] and limited.batches and limited.max_batch == 10
