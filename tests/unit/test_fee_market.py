"""ChainClient.fee_market and FeePolicy's `market`: the latest block and the node's tip in one
JSON-RPC batch, with the results and errors the two calls alone give, and no more calls."""

from __future__ import annotations

import json

import pytest
import responses

from depeg_processor import errors
from depeg_processor.chain.rpc import NodeClient
from depeg_processor.fees import FeePolicy

from .fake_node import URL, methods, rpc_reply

GWEI = 10**9
BLOCK = {
    "number": "0x10",
    "hash": "0x" + "ab" * 32,
    "parentHash": "0x" + "cd" * 32,
    "baseFeePerGas": hex(10 * GWEI),
    "gasUsed": hex(12_000_000),
    "gasLimit": hex(30_000_000),
    "transactions": [],
}
FAILING = {"code": -32603, "message": "internal error"}


def answers(**override):
    table = {
        "eth_getBlockByNumber": ("result", BLOCK),
        "eth_maxPriorityFeePerGas": ("result", hex(2 * GWEI)),
    } | override
    return lambda method, params: table[method]


@pytest.fixture
def chain() -> NodeClient:
    return NodeClient(url=URL, timeout=5)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def policy(chain: NodeClient, clock: Clock, tip: int | None = None) -> FeePolicy:
    return FeePolicy(
        base_fee=chain.latest_block,
        suggested_tip=chain.max_priority_fee,
        market=chain.fee_market,
        cap=100 * GWEI,
        tip=tip,
        ttl=2.0,
        monotonic=clock,
    )


def test_the_block_and_the_tip_come_in_one_request(node, chain) -> None:
    node.add_callback(responses.POST, URL, callback=rpc_reply(answers()))
    block, tip = chain.fee_market()
    assert block == chain.latest_block()
    assert tip() == chain.max_priority_fee() == 2 * GWEI
    assert methods(node) == [
        ["eth_getBlockByNumber", "eth_maxPriorityFeePerGas"],
        "eth_getBlockByNumber",
        "eth_maxPriorityFeePerGas",
    ]


def test_a_failed_block_raises_what_the_single_call_raises(node, chain) -> None:
    node.add_callback(
        responses.POST, URL, callback=rpc_reply(answers(eth_getBlockByNumber=("error", FAILING)))
    )
    with pytest.raises(errors.ProcessorError) as single:
        chain.latest_block()
    with pytest.raises(errors.ProcessorError) as batched:
        chain.fee_market()
    assert type(batched.value) is type(single.value)
    assert str(batched.value) == str(single.value)


def test_a_failed_tip_raises_what_the_single_call_raises_after_the_block(node, chain) -> None:
    node.add_callback(
        responses.POST,
        URL,
        callback=rpc_reply(answers(eth_maxPriorityFeePerGas=("error", FAILING))),
    )
    with pytest.raises(errors.ProcessorError) as single:
        chain.max_priority_fee()
    block, tip = chain.fee_market()
    assert block.number == 16 and block.base_fee == 10 * GWEI
    with pytest.raises(errors.ProcessorError) as batched:
        tip()
    assert type(batched.value) is type(single.value)
    assert str(batched.value) == str(single.value)


def test_the_policy_refreshes_in_one_request_and_keeps_its_cache(node, chain) -> None:
    node.add_callback(responses.POST, URL, callback=rpc_reply(answers()))
    clock = Clock()
    fees = policy(chain, clock)
    first = fees.current()
    assert (first.base_fee, first.max_priority_fee_per_gas) == (10 * GWEI, 2 * GWEI)
    assert first.max_fee_per_gas == 22 * GWEI
    assert (fees.last_block, fees.block_gas_limit) == (16, 30_000_000)
    clock.now += 1.9
    assert fees.current() == first
    assert len(node.calls) == 1, "cached for the ttl: nothing asked"
    clock.now += 0.1
    fees.current()
    fees.current(fresh=True)
    assert methods(node) == [["eth_getBlockByNumber", "eth_maxPriorityFeePerGas"]] * 3


def test_the_policy_takes_the_block_before_a_failed_tip_raises(node, chain) -> None:
    node.add_callback(
        responses.POST,
        URL,
        callback=rpc_reply(answers(eth_maxPriorityFeePerGas=("error", FAILING))),
    )
    fees = policy(chain, Clock())
    with pytest.raises(errors.ProcessorError):
        fees.current()
    assert fees.last_block == 16, "the block read is followed, as with the two calls"
    with pytest.raises(errors.ProcessorError):
        fees.current()
    assert len(node.calls) == 2, "nothing cached from a failed refresh"


def test_a_configured_tip_asks_the_block_alone(node, chain) -> None:
    node.add_callback(responses.POST, URL, callback=rpc_reply(answers()))
    fees = policy(chain, Clock(), tip=GWEI).current()
    assert fees.max_priority_fee_per_gas == GWEI
    assert methods(node) == ["eth_getBlockByNumber"]


def test_a_node_that_refuses_batches_gets_the_two_calls(node, chain) -> None:
    reply = rpc_reply(answers())

    def refuse_batches(request):
        if isinstance(json.loads(request.body), list):
            return 400, {}, '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"x"}}'
        return reply(request)

    node.add_callback(responses.POST, URL, callback=refuse_batches)
    fees = policy(chain, Clock()).current()
    assert (fees.base_fee, fees.max_priority_fee_per_gas) == (10 * GWEI, 2 * GWEI)
    pair = ["eth_getBlockByNumber", "eth_maxPriorityFeePerGas"]
    assert methods(node) == [pair, *pair], "refused once, then one by one"
