"""A node whose transaction pool is full, played in front of anvil: it keeps `slots` unmined
transactions of each account (geth's txpool.accountslots, what a full pool guarantees) and
refuses one more as geth does when it cannot make room ("txpool is full"). anvil's own pool
takes any number, so a test on plain anvil never meets the limit."""

from __future__ import annotations

from collections.abc import Callable

from eth_account import Account

POOL_FULL = {"code": -32000, "message": "txpool is full"}


def refusals(members: list, slots: int, count: Callable[[str, str], int]) -> dict[int, dict]:
    """By index in `members`, the eth_sendRawTransaction a full pool refuses: the sender
    already has `slots` unmined (`count(address, tag)` is the node's transaction count),
    counting the members before it."""
    unmined: dict[str, int] = {}
    refused = {}
    for i, member in enumerate(members):
        if not isinstance(member, dict) or member.get("method") != "eth_sendRawTransaction":
            continue
        try:
            sender = Account.recover_transaction(member["params"][0])
        except Exception:
            continue
        if sender not in unmined:
            unmined[sender] = count(sender, "pending") - count(sender, "latest")
        if unmined[sender] >= slots:
            refused[i] = {"jsonrpc": "2.0", "id": member.get("id"), "error": POOL_FULL}
        else:
            unmined[sender] += 1
    return refused
