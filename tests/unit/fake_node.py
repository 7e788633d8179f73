"""A faked JSON-RPC node for the chain tests: answers, revert data, and a clock that never
sleeps."""

from __future__ import annotations

import json

from eth_abi import encode as abi_encode

from depeg_processor.chain.rpc import NodeClient

URL = "http://node.test"


def error_data(reason: str) -> str:
    return "0x08c379a0" + abi_encode(["string"], [reason]).hex()


def reverted(reason: str) -> dict:
    return {"code": 3, "message": f"execution reverted: {reason}", "data": error_data(reason)}


def error_answer(code: int, message: str, request_id: int | None = 0) -> dict:
    """A JSON-RPC answer carrying an error object (id None: for no request in particular)."""
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def rpc_reply(handler):
    """A responses callback answering single and batch JSON-RPC requests via
    handler(method, params) -> ("result", value) | ("error", error-object)."""

    def answer(call: dict) -> dict:
        kind, value = handler(call["method"], call["params"])
        return {"jsonrpc": "2.0", "id": call["id"], kind: value}

    def callback(request):
        body = json.loads(request.body)
        if isinstance(body, list):
            return 200, {}, json.dumps([answer(call) for call in reversed(body)])  # any order
        return 200, {}, json.dumps(answer(body))

    return callback


def echo(method, params):
    return "result", f"{method}:{params[0] if params else ''}"


def sizes(node) -> list[int]:
    """How many calls each HTTP request carried (1 for a plain object)."""
    bodies = [json.loads(call.request.body) for call in node.calls]
    return [len(body) if isinstance(body, list) else 1 for body in bodies]


def methods(node) -> list:
    """The method of each request: a name, or a list of names for a batch."""
    bodies = [json.loads(call.request.body) for call in node.calls]
    return [b["method"] if isinstance(b, dict) else [c["method"] for c in b] for b in bodies]


class Clock:
    """The chain's monotonic clock and wait: waiting moves the clock on, nothing sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def limited_chain(clock: Clock) -> NodeClient:
    """A chain with a fake clock; .facts lists what it told the shared state, .counted what
    it counted."""
    facts, counted = [], []
    chain = NodeClient(
        url=URL,
        timeout=5,
        max_batch=10,
        wait=clock.wait,
        monotonic=clock,
        on_rate_limit=facts.append,
        on_error=counted.append,
    )
    chain.facts, chain.counted = facts, counted
    return chain
