"""The block a batch is simulated at is read in one round trip with the pool's nonce check
(`Wallet.unexplained`, after the batch's entries were read), not in one of its own; it is
that batch's only: the next one reads its own, and a simulation without it reads it itself."""

from __future__ import annotations

import pytest

from depeg_processor import errors
from depeg_processor.chain.calls import MARKET_CALLS, market_of
from depeg_processor.clock import Clock
from depeg_processor.fees import FeePolicy

from .test_preflight import apps
from .wallet_harness import GWEI, build_wallet


class Node:
    """Blocks whose number rises with each look, the node's tip, transaction counts (none
    in the pool) and eth_call for simulations, which all succeed; each request is kept."""

    def __init__(self) -> None:
        self.number = 40
        self.requests: list[list[str]] = []  # the methods of each request, in order
        self.tags: list = []  # the block each eth_call was simulated at
        self.block_fails = False
        self.down = False

    def batch(self, calls) -> list:
        if self.down:
            raise errors.NodeUnavailable("the node does not answer")
        calls = list(calls)
        self.requests.append([method for method, _params in calls])
        return [self._answer(method, params) for method, params in calls]

    def _answer(self, method: str, params: list):
        if method == "eth_getBlockByNumber":
            if self.block_fails:
                return errors.NodeUnavailable("no block")
            self.number += 1
            return {
                "number": hex(self.number),
                "baseFeePerGas": hex(GWEI),
                "gasLimit": hex(30_000_000),
                "hash": f"0x{self.number:064x}",
            }
        if method == "eth_maxPriorityFeePerGas":
            return hex(GWEI)
        if method == "eth_getTransactionCount":
            return hex(0)
        if method == "eth_estimateGas":
            return hex(1_500_000)
        if method == "eth_call":
            self.tags.append(params[1])
            return "0x"
        raise AssertionError(f"unexpected call {method}")

    def at(self, number: int) -> dict:
        return {"blockHash": f"0x{number:064x}"}


@pytest.fixture
def world(fake_redis):
    node = Node()
    fees = FeePolicy(
        base_fee=lambda: pytest.fail("the market is read, not the block alone"),
        suggested_tip=lambda: pytest.fail("the market is read, not the tip alone"),
        market=lambda: market_of(*node.batch(MARKET_CALLS)),
        cap=100 * GWEI,
    )
    wallet = build_wallet(fake_redis, chain=node, clock=Clock(), fees=fees)
    wallet.lease.acquire()
    assert wallet.take_over()
    node.requests.clear()
    yield node, wallet
    wallet.close()


def send(wallet, count: int = 2) -> list:
    outcomes = wallet.submit(apps(count), entry_ids=[f"1-{i}" for i in range(count)])
    wallet.finish()
    return outcomes


def test_the_nonce_check_reads_the_block_the_batch_is_simulated_at(world) -> None:
    node, wallet = world
    assert wallet.unexplained() is None
    [check] = node.requests
    assert check == [
        "eth_getTransactionCount",
        "eth_getTransactionCount",
        "eth_getBlockByNumber",
        "eth_maxPriorityFeePerGas",
    ], "the counts, the latest block and the tip in one request"
    read = node.number
    assert all(o.__class__.__name__ == "TxRecord" for o in send(wallet))
    assert "eth_getBlockByNumber" not in sum(node.requests[1:], []), "not read again"
    assert node.tags and all(tag == node.at(read) for tag in node.tags)
    assert wallet.ctx.shared.fees.last_block == read


def test_the_next_batch_reads_its_own_block(world) -> None:
    node, wallet = world
    wallet.unexplained()
    send(wallet)
    first = node.number
    node.tags.clear()
    send(wallet)  # no nonce check before it: its block is read for it, not taken from before
    assert node.number == first + 1
    assert node.tags and all(tag == node.at(first + 1) for tag in node.tags)


def test_a_block_the_nonce_check_did_not_get_is_read_by_the_simulation(world) -> None:
    node, wallet = world
    node.block_fails = True
    assert wallet.unexplained() is None, "the counts answered: the check holds nothing"
    node.block_fails = False
    before = node.number
    send(wallet)
    assert ["eth_getBlockByNumber", "eth_maxPriorityFeePerGas"] in node.requests[1:]
    assert node.tags and all(tag == node.at(before + 1) for tag in node.tags)


def test_a_failed_nonce_check_keeps_no_block_for_the_batch(world) -> None:
    node, wallet = world
    wallet.unexplained()
    node.down = True
    with pytest.raises(errors.NodeUnavailable):
        wallet.unexplained()
    node.down = False
    read = node.number
    send(wallet)
    assert node.tags and all(tag == node.at(read + 1) for tag in node.tags), "read anew"


def test_without_the_nodes_market_the_nonce_check_reads_only_the_counts(fake_redis) -> None:
    """A configured tip: the fees read the block alone, in the simulation's own request."""
    node = Node()
    wallet = build_wallet(fake_redis, chain=node, clock=Clock())  # flat fees, a fixed tip
    wallet.lease.acquire()
    assert wallet.take_over()
    node.requests.clear()
    wallet.unexplained()
    assert node.requests == [["eth_getTransactionCount", "eth_getTransactionCount"]]
    wallet.close()
