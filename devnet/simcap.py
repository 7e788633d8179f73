"""A node's simulation gas cap, played in front of anvil: an `eth_simulateV1` request whose
calls ask for more gas in all than `cap` is refused as reth refuses it (JSON-RPC error -38026,
"client adjustable limit reached"), whatever anvil would do. geth and reth cap a simulation at
50 M gas by default (`--rpc.gascap`), for the whole request; anvil does not refuse at all, so a
test on plain anvil never meets the cap."""

from __future__ import annotations

SIMULATION_CAP_CODE = -38026


def asked_gas(member: dict) -> int:
    """The gas an `eth_simulateV1` request asks for: its calls' gas limits, all blocks."""
    params = member.get("params") or [{}]
    blocks = params[0].get("blockStateCalls", []) if isinstance(params[0], dict) else []
    return sum(
        int(call.get("gas", "0x0"), 16)
        for block in blocks
        if isinstance(block, dict)
        for call in block.get("calls", [])
        if isinstance(call, dict)
    )


def over_cap(member: object, cap: int) -> dict | None:
    """reth's refusal of `member` when it is an eth_simulateV1 over `cap`, else None."""
    if not isinstance(member, dict) or member.get("method") != "eth_simulateV1":
        return None
    asked = asked_gas(member)
    if asked <= cap:
        return None
    return {
        "jsonrpc": "2.0",
        "id": member.get("id"),
        "error": {
            "code": SIMULATION_CAP_CODE,
            "message": f"client adjustable limit reached: {asked} gas asked, the cap is {cap}",
        },
    }
