"""The typed calls the processor makes, over any client with `request(method, params)`: one
node's `Chain`, or a set of providers (`Providers`), so both answer the same questions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..fees import Block


class TypedCalls:
    """JSON-RPC calls returning plain Python values."""

    def request(self, method: str, params: Sequence[Any]) -> Any:
        raise NotImplementedError

    def chain_id(self) -> int:
        return int(self.request("eth_chainId", []), 16)

    def latest_block(self) -> Block:
        """The latest block's number, hash, base fee, gas used and gas limit (the fee policy's
        input, and the block a batch is simulated at)."""
        block = self.request("eth_getBlockByNumber", ["latest", False])
        return Block(
            number=int(block["number"], 16),
            base_fee=int(block.get("baseFeePerGas") or "0x0", 16),
            gas_used=int(block.get("gasUsed") or "0x0", 16),
            gas_limit=int(block.get("gasLimit") or "0x0", 16),
            block_hash=block.get("hash") or "",
        )

    def max_priority_fee(self) -> int:
        return int(self.request("eth_maxPriorityFeePerGas", []), 16)

    def balance(self, address: str) -> int:
        return int(self.request("eth_getBalance", [address, "latest"]), 16)

    def nonce(self, address: str, block: str = "pending") -> int:
        return int(self.request("eth_getTransactionCount", [address, block]), 16)

    def code(self, address: str) -> bytes:
        return bytes.fromhex(self.request("eth_getCode", [address, "latest"])[2:])

    def call(self, tx: dict) -> str:
        return self.request("eth_call", [tx, "latest"])
