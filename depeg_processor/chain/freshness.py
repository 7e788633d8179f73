"""How fresh a provider must be, for several providers: which block it must have reached before
its answer to a call may be believed, and which heads its answers show."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DECIDING = frozenset(  # a lagging provider's answer to these would be taken for a fact
    {
        "eth_call",  # a simulation: a refusal sets an application aside
        "eth_estimateGas",
        "eth_simulateV1",
        "eth_getTransactionReceipt",
        "eth_getTransactionByHash",
        "eth_getTransactionCount",
        "eth_getBlockReceipts",
        "eth_getBlockByNumber",
    }
)
BY_NUMBER = ("eth_getBlockByNumber", "eth_getBlockReceipts")


def required_block(calls: Sequence[tuple[str, Sequence[Any]]], best: int | None) -> int | None:
    """The block a provider must be at for `calls`: where an answer decides something, the
    best head seen and any block asked by its number; else None (any provider will do)."""
    deciding = [(method, params) for method, params in calls if method in DECIDING]
    if not deciding:
        return None
    blocks = [
        int(params[0], 16)
        for method, params in deciding
        if method in BY_NUMBER and isinstance(params[0], str) and params[0].startswith("0x")
    ]
    known = [n for n in (best, *blocks) if n is not None]
    return max(known, default=None)


def heads_answered(calls: Sequence[tuple[str, Sequence[Any]]], results: Sequence[Any]) -> list[int]:
    """The heads a provider's answers show: `eth_blockNumber`, and the latest block."""
    heads = []
    for (method, params), result in zip(calls, results):
        if method == "eth_blockNumber" and isinstance(result, str):
            heads.append(int(result, 16))
        elif method == "eth_getBlockByNumber" and list(params[:1]) == ["latest"]:
            if isinstance(result, dict) and result.get("number"):
                heads.append(int(result["number"], 16))
    return heads
