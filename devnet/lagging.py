"""A provider that lags: it answers as a node `lag` blocks behind the chain's head would.

Its head is the real head less `lag`; "latest" and "pending" mean that block; blocks, receipts
and transactions after it are unknown to it (null), as is every transaction not yet mined (a
node that far behind has not heard of it); a block asked by hash that it does not have yet is
"header not found". Raw transactions are passed on, as a provider passes them to the network.
"""

from __future__ import annotations

import json
from collections.abc import Callable

TAGGED = {  # method -> index of its block parameter
    "eth_getTransactionCount": 1,
    "eth_getBalance": 1,
    "eth_getCode": 1,
    "eth_call": 1,
    "eth_estimateGas": 1,
    "eth_simulateV1": 1,
    "eth_getBlockByNumber": 0,
    "eth_getBlockReceipts": 0,
}
NAMED = ("latest", "pending", "safe", "finalized")


def lagging_answers(message: object, lag: int, upstream: Callable[[object], object]) -> object:
    """The answer to a JSON-RPC `message` (an object or a batch), `lag` blocks behind;
    `upstream(message)` asks the real node."""
    members = message if isinstance(message, list) else [message]
    head = max(
        0,
        int(upstream({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber"})["result"], 16) - lag,
    )
    answers = [_answer(member, head, upstream) for member in members]
    return answers if isinstance(message, list) else answers[0]


def _answer(member: dict, head: int, upstream: Callable[[object], object]) -> dict:
    method, params = member.get("method"), list(member.get("params") or [])
    if method == "eth_blockNumber":
        return _result(member, hex(head))
    at = TAGGED.get(method)
    if at is not None and len(params) > at:
        tag = params[at]
        if tag in NAMED:
            params[at] = hex(head)
        elif isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) > head:
            return _result(member, None)
        elif isinstance(tag, dict) and "blockHash" in tag:
            block = upstream(_call("eth_getBlockByHash", [tag["blockHash"], False])).get("result")
            if block is None or int(block["number"], 16) > head:
                return {**_id(member), "error": {"code": -32000, "message": "header not found"}}
    answer = upstream({**member, "params": params})
    result = answer.get("result")
    if method in ("eth_getTransactionReceipt", "eth_getTransactionByHash") and result:
        number = result.get("blockNumber")
        if number is None or int(number, 16) > head:  # not mined, or mined after its head
            return _result(member, None)
    return answer


def _call(method: str, params: list) -> dict:
    return {"jsonrpc": "2.0", "id": 0, "method": method, "params": params}


def _id(member: dict) -> dict:
    return {"jsonrpc": "2.0", "id": member.get("id")}


def _result(member: dict, value: object) -> dict:
    return {**_id(member), "result": value}


def upstream_json(post: Callable[[bytes], bytes]) -> Callable[[object], object]:
    return lambda message: json.loads(post(json.dumps(message).encode()))
