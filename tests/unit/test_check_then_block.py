"""The block a batch is simulated at is read after the pool's nonce check has its answer, in a
request of its own: a node may answer the members of one JSON-RPC request in any order (or a
provider spread them over its backends), so a block read beside the counts can be older than
they are. Then transactions that Redis forgot, mined just as the counts were read, would be
in neither the block nor the replay: their applications would simulate as new and revert."""

from __future__ import annotations

import pytest

from depeg_processor.chain.calls import ChainClient
from depeg_processor.clock import Clock
from depeg_processor.fees import FeePolicy

from .test_preflight import apps
from .wallet_harness import GWEI, build_wallet


class Node(ChainClient):
    """A wallet with two transactions in the pool that no record explains, mined by the block
    that comes as their counts are read; each request's members answered last to first."""

    def __init__(self) -> None:
        self.number = 40
        self.mined, self.pending = 0, 2
        self.requests: list[list[str]] = []  # the methods of each request, in order
        self.tags: list = []  # the block each eth_call was simulated at
        self.sent = 0

    def batch(self, calls) -> list:
        calls = list(calls)
        self.requests.append([method for method, _params in calls])
        return [self._answer(m, p) for m, p in reversed(calls)][::-1]

    def _answer(self, method: str, params: list):
        if method == "eth_getTransactionCount":
            if self.mined < self.pending:  # the block holding them arrives now
                self.number, self.mined = self.number + 1, self.pending
            return hex(self.mined if params[1] == "latest" else self.pending)
        if method == "eth_getBlockByNumber":
            return {
                "number": hex(self.number),
                "baseFeePerGas": hex(GWEI),
                "gasLimit": hex(30_000_000),
                "hash": f"0x{self.number:064x}",
            }
        if method == "eth_maxPriorityFeePerGas":
            return hex(GWEI)
        if method == "eth_estimateGas":
            return hex(1_500_000)
        if method == "eth_call":
            self.tags.append(params[1])
            return "0x"
        if method == "eth_sendRawTransaction":
            self.sent += 1
            return f"0x{self.sent:064x}"
        raise AssertionError(f"unexpected call {method}")

    def at(self, number: int) -> dict:
        return {"blockHash": f"0x{number:064x}"}


def test_the_batch_is_simulated_at_a_block_holding_what_the_check_saw_mined(fake_redis) -> None:
    node = Node()
    fees = FeePolicy(
        base_fee=lambda: pytest.fail("the market is read, not the block alone"),
        suggested_tip=lambda: pytest.fail("the market is read, not the tip alone"),
        market=node.fee_market,
        cap=100 * GWEI,
    )
    wallet = build_wallet(fake_redis, chain=node, clock=Clock(), fees=fees)
    wallet.lease.acquire()
    assert wallet.take_over()
    node.requests.clear()
    assert wallet.unexplained() is None, "mined as they were counted: nothing to explain"
    assert node.requests == [["eth_getTransactionCount", "eth_getTransactionCount"]]
    wallet.submit(apps(2), entry_ids=["1-0", "1-1"])
    wallet.finish()
    assert node.tags and all(tag == node.at(41) for tag in node.tags), (
        "simulated at the block that mined them, not the one before"
    )
    assert node.sent == 2
    wallet.close()
