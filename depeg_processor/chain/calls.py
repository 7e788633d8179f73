"""What the rest of the processor asks of the chain, whether CHAIN_RPC_URL names one node
(`rpc.NodeClient`) or several providers (`providers.Providers`): the same calls, the same
questions, so no caller needs to know which it holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import errors
from ..fees import Block


class ChainClient:
    """The chain client's interface: raw calls (`request`, `batch`), the typed calls built on
    them, and the three things a set of providers does beside its calls (agree on the chain
    id, probe the idle ones, stop its threads), which one node answers with nothing to do."""

    def request(self, method: str, params: Sequence[Any]) -> Any:
        raise NotImplementedError

    def batch(self, calls: Iterable[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls; each result, in call order, is a value or an error instance."""
        raise NotImplementedError

    def agree_on_chain_id(self) -> int | None:
        """Refuse (ConfigError) providers that serve different chains, asking each once.
        Returns the chain id they agree on, None when nothing was asked or none answered."""
        raise NotImplementedError

    def probe_idle(self) -> None:
        """Ask the providers no call reached lately whether they answer (the probe thread
        calls this every second)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop what the client runs beside its calls."""
        raise NotImplementedError

    # -- the typed calls ------------------------------------------------------------------------
    def chain_id(self) -> int:
        return int(self.request("eth_chainId", []), 16)

    def latest_block(self) -> Block:
        """The latest block's number, hash, base fee, gas used and gas limit (the fee policy's
        input, and the block a batch is simulated at)."""
        return block_of(self.request("eth_getBlockByNumber", ["latest", False]))

    def max_priority_fee(self) -> int:
        return int(self.request("eth_maxPriorityFeePerGas", []), 16)

    def fee_market(self) -> tuple[Block, Callable[[], int]]:
        """`latest_block` and `max_priority_fee` in one batch (one round trip where there
        were two, at each refresh of the fees): the block, raising its call's error as
        `latest_block` does, and the tip as a call that gives it or raises its error as
        `max_priority_fee` does (so a block read is still taken when the tip failed)."""
        block, tip = self.batch(
            [("eth_getBlockByNumber", ["latest", False]), ("eth_maxPriorityFeePerGas", [])]
        )
        if isinstance(block, errors.ProcessorError):
            raise block

        def suggested_tip() -> int:
            if isinstance(tip, errors.ProcessorError):
                raise tip
            return int(tip, 16)

        return block_of(block), suggested_tip

    def balance(self, address: str) -> int:
        return int(self.request("eth_getBalance", [address, "latest"]), 16)

    def nonce(self, address: str, block: str = "pending") -> int:
        return int(self.request("eth_getTransactionCount", [address, block]), 16)

    def code(self, address: str) -> bytes:
        return bytes.fromhex(self.request("eth_getCode", [address, "latest"])[2:])

    def call(self, tx: dict) -> str:
        return self.request("eth_call", [tx, "latest"])


def block_of(block: dict) -> Block:
    """A block as `eth_getBlockByNumber(..., false)` answers it."""
    return Block(
        number=int(block["number"], 16),
        base_fee=int(block.get("baseFeePerGas") or "0x0", 16),
        gas_used=int(block.get("gasUsed") or "0x0", 16),
        gas_limit=int(block.get("gasLimit") or "0x0", 16),
        block_hash=block.get("hash") or "",
        parent_hash=block.get("parentHash") or "",
        transactions=tuple(t for t in block.get("transactions") or () if isinstance(t, str)),
    )
