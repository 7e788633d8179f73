"""chain.rpc: the JSON-RPC client over a faked HTTP endpoint: single calls, batches, and the
batch size a provider accepts."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from depeg_processor import errors
from depeg_processor.chain.rpc import NodeClient
from depeg_processor.errors import NodeUnavailable

from .fake_node import (
    URL,
    Clock,
    echo,
    error_answer,
    limited_chain,
    reverted,
    rpc_reply,
    sizes,
)


@pytest.fixture
def chain() -> NodeClient:
    return NodeClient(url=URL, timeout=5)


@pytest.fixture
def limited() -> NodeClient:
    """A chain that cuts batches at 10 calls."""
    return limited_chain(Clock())


def test_request_returns_the_result(node, chain) -> None:
    node.add_callback(responses.POST, URL, callback=rpc_reply(lambda m, p: ("result", "0x7a69")))
    assert chain.chain_id() == 31337
    assert json.loads(node.calls[0].request.body)["method"] == "eth_chainId"


def test_connection_error_is_node_unavailable(node, chain) -> None:
    node.add(responses.POST, URL, body=requests.ConnectionError("refused"))
    with pytest.raises(NodeUnavailable):
        chain.request("eth_blockNumber", [])


def test_http_error_status_is_node_unavailable(node, chain) -> None:
    node.add(responses.POST, URL, status=502, body="bad gateway")
    with pytest.raises(NodeUnavailable):
        chain.request("eth_blockNumber", [])


def test_json_rpc_error_is_raised_classified(node, chain) -> None:
    node.add_callback(
        responses.POST,
        URL,
        callback=rpc_reply(lambda m, p: ("error", reverted("ERROR:DP-010:PRODUCT_NOT_ACTIVE"))),
    )
    with pytest.raises(errors.ProductInactive):
        chain.request("eth_estimateGas", [{"to": "0x" + "00" * 20, "data": "0x"}])


def test_batch_returns_values_and_errors_in_call_order(node, chain) -> None:
    def handler(method, params):
        if method == "eth_getTransactionReceipt" and params[0] == "0x02":
            return "error", {"code": -32000, "message": "header not found"}
        return "result", {
            "eth_blockNumber": "0x10",
            "eth_getBalance": "0xde0b6b3a7640000",
            "eth_getTransactionReceipt": {"blockNumber": "0x5"},
        }[method]

    node.add_callback(responses.POST, URL, callback=rpc_reply(handler))
    results = chain.batch(
        [
            ("eth_blockNumber", []),
            ("eth_getBalance", ["0x" + "11" * 20, "latest"]),
            ("eth_getTransactionReceipt", ["0x02"]),
            ("eth_getTransactionReceipt", ["0x03"]),
        ]
    )
    assert results[:2] == ["0x10", "0xde0b6b3a7640000"]
    assert isinstance(results[2], errors.TransientError)
    assert results[3] == {"blockNumber": "0x5"}
    assert len(node.calls) == 1  # one HTTP request


def test_batch_of_one_returns_an_error_instance(node, chain) -> None:
    node.add_callback(
        responses.POST,
        URL,
        callback=rpc_reply(lambda m, p: ("error", {"code": -32000, "message": "already known"})),
    )
    [result] = chain.batch([("eth_sendRawTransaction", ["0x00"])])
    assert isinstance(result, errors.AlreadyKnown)


def test_batch_connection_error_is_node_unavailable(node, chain) -> None:
    node.add(responses.POST, URL, body=requests.ConnectionError("refused"))
    with pytest.raises(NodeUnavailable):
        chain.batch([("eth_blockNumber", []), ("eth_chainId", [])])


def test_batches_are_cut_at_the_configured_size(node, limited) -> None:
    node.add_callback(responses.POST, URL, callback=rpc_reply(echo))
    results = limited.batch([("eth_getTransactionReceipt", [str(i)]) for i in range(25)])
    assert results == [f"eth_getTransactionReceipt:{i}" for i in range(25)]
    assert sizes(node) == [10, 10, 5]


def refusing_batches_over(limit: int, refusal):
    """A provider that answers batches over `limit` with `refusal(request)`."""
    ok = rpc_reply(echo)

    def callback(request):
        body = json.loads(request.body)
        if isinstance(body, list) and len(body) > limit:
            return refusal(body)
        return ok(request)

    return callback


@pytest.mark.parametrize(
    "refusal",
    [
        lambda body: (413, {}, "request entity too large"),
        lambda body: (
            400,
            {},
            json.dumps(error_answer(-32600, "batch too large", None)),
        ),
        lambda body: (
            200,
            {},
            json.dumps(error_answer(-32600, "batch too large", None)),
        ),
        lambda body: (
            200,
            {},
            json.dumps([{"jsonrpc": "2.0", "id": m["id"], "result": "0x0"} for m in body[:3]]),
        ),  # an array of the wrong length
    ],
    ids=["413", "400", "error object", "short array"],
)
def test_a_refused_batch_is_halved_and_the_size_remembered(node, limited, refusal) -> None:
    node.add_callback(responses.POST, URL, callback=refusing_batches_over(3, refusal))
    calls = [("eth_call", [str(i)]) for i in range(10)]
    assert limited.batch(calls) == [f"eth_call:{i}" for i in range(10)]
    assert sizes(node) == [10, 5, 3, 3, 3, 1]
    assert limited.max_batch == 3

    node.calls.reset()
    assert limited.batch(calls[:4]) == [f"eth_call:{i}" for i in range(4)]
    assert sizes(node) == [3, 1], "the smaller size is kept for later batches"


def test_a_provider_without_batches_gets_single_calls_in_order(node, limited) -> None:
    def handler(method, params):
        if params[0] == "2":
            return "error", {"code": -32000, "message": "nonce too low"}
        return echo(method, params)

    node.add_callback(
        responses.POST,
        URL,
        callback=refusing_batches_over(
            1, lambda body: (400, {}, "batch requests are not supported")
        ),
    )
    calls = [("eth_sendRawTransaction", [str(i)]) for i in range(5)]
    results = limited.batch(calls)
    assert results[:2] == ["eth_sendRawTransaction:0", "eth_sendRawTransaction:1"]
    assert results[3:] == ["eth_sendRawTransaction:3", "eth_sendRawTransaction:4"]
    assert results[2] == "eth_sendRawTransaction:2"
    assert sizes(node) == [5, 3, 2, 1, 1, 1, 1, 1] and not limited.batches

    node.reset()
    node.add_callback(responses.POST, URL, callback=rpc_reply(handler))
    results = limited.batch(calls)
    assert isinstance(results[2], errors.NonceConflict)
    assert [r for i, r in enumerate(results) if i != 2] == [
        f"eth_sendRawTransaction:{i}" for i in (0, 1, 3, 4)
    ]
    assert sizes(node) == [1] * 5, "no batch is tried again"


def test_singles_reuse_the_thread_s_kept_alive_session(node, limited, monkeypatch) -> None:
    opened: list[requests.Session] = []

    class CountedSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            opened.append(self)

    monkeypatch.setattr(requests, "Session", CountedSession)
    limited.batches = False
    node.add_callback(responses.POST, URL, callback=rpc_reply(echo))
    limited.batch([("eth_call", ["0"])])
    [session] = opened
    limited.batch([("eth_call", [str(i)]) for i in range(3)])
    assert opened == [session] and len(node.calls) == 4, "one session for the thread's calls"


@pytest.mark.parametrize("status, body", [(502, "bad gateway"), (200, "<html>oops</html>")])
def test_a_broken_answer_to_a_batch_is_the_node_unavailable_not_a_refusal(
    node, limited, status, body
) -> None:
    node.add(responses.POST, URL, status=status, body=body)
    with pytest.raises(NodeUnavailable):
        limited.batch([("eth_call", ["a"]), ("eth_call", ["b"])])
    assert limited.batches and limited.max_batch == 10
