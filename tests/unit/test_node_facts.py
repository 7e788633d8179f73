"""node_facts: what the node says at start (chain id, product code, message helper, the first
wallet's balance) asked in one batch, and judged in the order the single calls were."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import responses

from depeg_processor import errors
from depeg_processor.chain.rpc import NodeClient
from depeg_processor.errors import StartupError
from depeg_processor.node_facts import check_node

from .fake_node import URL, methods, rpc_reply

PRODUCT = "0x700b6A60ce7EaaEA56F065753d8dcB9653dbAD35"
HELPER = "0xa44b9F3f5bB8C278c1eE85d8f3251d1b8fDB3F1d"
WALLET = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
SETTINGS = SimpleNamespace(product_address=PRODUCT)


def answers(**override):
    """A node where the product is deployed; `override` maps a method to its answer."""
    table = {
        "eth_chainId": ("result", "0x7a69"),
        "eth_getCode": ("result", "0x6080604052"),
        "eth_call": ("result", "0x" + "00" * 12 + HELPER[2:].lower()),
        "eth_getBalance": ("result", hex(5 * 10**18)),
    } | override
    return lambda method, params: table[method]


@pytest.fixture
def chain() -> NodeClient:
    return NodeClient(url=URL, timeout=5)


def test_the_facts_come_in_one_request(node, chain) -> None:
    node.add_callback(responses.POST, URL, callback=rpc_reply(answers()))
    facts = check_node(SETTINGS, chain, WALLET)
    assert (facts.chain_id, facts.message_helper, facts.balance) == (31337, HELPER, 5 * 10**18)
    assert methods(node) == [["eth_chainId", "eth_getCode", "eth_call", "eth_getBalance"]]


def test_no_code_at_the_product_address_is_a_startup_error(node, chain) -> None:
    # the call to an address without code answers "0x", and a failed balance comes after
    failing = {"code": -32000, "message": "header not found"}
    node.add_callback(
        responses.POST,
        URL,
        callback=rpc_reply(
            answers(
                eth_getCode=("result", "0x"),
                eth_call=("result", "0x"),
                eth_getBalance=("error", failing),
            )
        ),
    )
    with pytest.raises(StartupError, match="has no contract code on chain 31337"):
        check_node(SETTINGS, chain, WALLET)


def test_a_contract_that_names_no_helper_is_not_the_product(node, chain) -> None:
    node.add_callback(responses.POST, URL, callback=rpc_reply(answers(eth_call=("result", "0x"))))
    with pytest.raises(StartupError, match="getMessageHelperAddress"):
        check_node(SETTINGS, chain, WALLET)


def test_a_failed_call_raises_its_own_error_before_what_follows(node, chain) -> None:
    node.add_callback(
        responses.POST,
        URL,
        callback=rpc_reply(
            answers(
                eth_chainId=("error", {"code": -32603, "message": "internal error"}),
                eth_getCode=("result", "0x"),
            )
        ),
    )
    with pytest.raises(errors.ProcessorError) as raised:
        check_node(SETTINGS, chain, WALLET)
    assert not isinstance(raised.value, StartupError)
    assert "internal error" in str(raised.value)
