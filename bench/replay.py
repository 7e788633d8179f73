"""What the replay of the pool's transactions in flight costs a batch's simulation, against
the real depeg product on anvil (chain id 1337).

A batch of 10 real applications is simulated in one `eth_simulateV1` call alone, and after a
replay of 0, 10, 20 and 40 applications in flight (as `wallet/preflight.py` replays them:
sender, calldata and gas of each). Reported: the median wall time of the call over 10 runs,
and the size of the answer.

    python -m bench.replay
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import urllib.request

import redis

from depeg_processor.chain.product import ProductCalls
from depeg_processor.inbound.application import parse_application
from devnet.depeg import Actors, bundle_capital_for, deploy_depeg
from devnet.nodes import Anvil, RedisServer
from devnet.webapp import ProductWebApp, WebApp

CHAIN_ID = 1337
PROTECTED = 5_000 * 10**6
GAS = 1_800_000
BATCH = 10
RUNS = 10
SENDER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def post(url: str, payload: dict) -> bytes:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.read()


def simulate(url: str, product: str, calldata: list[str]) -> tuple[float, int, int]:
    """(seconds, answer bytes, calls that succeeded) of one eth_simulateV1 call."""
    calls = [{"from": SENDER, "to": product, "data": data, "gas": hex(GAS)} for data in calldata]
    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_simulateV1",
        "params": [
            {
                "blockStateCalls": [
                    {"calls": calls, "blockOverrides": {"gasLimit": hex(GAS * len(calls))}}
                ],
                "validation": False,
            },
            "latest",
        ],
    }
    started = time.perf_counter()
    body = post(url, payload)
    seconds = time.perf_counter() - started
    outcomes = json.loads(body)["result"][0]["calls"]
    return seconds, len(body), sum(1 for o in outcomes if o["status"] == "0x1")


def main() -> int:
    actors = Actors()
    with Anvil(chain_id=CHAIN_ID) as node, RedisServer() as server:
        for account in actors.all():
            node.set_balance(account.address, 10**24)
        depeg = deploy_depeg(node.url, actors)
        product = depeg.product.address
        bundle = depeg.create_bundle(bundle_capital_for(60, PROTECTED))
        helper = depeg.product.functions.getMessageHelperAddress().call()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        webapp = ProductWebApp(WebApp(client, CHAIN_ID, helper), depeg, bundle)
        calls = ProductCalls()
        calldata = [
            calls.apply(parse_application(f"E{n:03}", webapp.application()).contract_args())
            for n in range(40 + BATCH)
        ]
        batch, flight = calldata[-BATCH:], calldata[:-BATCH]
        rows = []
        for depth in (0, 10, 20, 40):
            runs = [simulate(node.url, product, flight[:depth] + batch) for _ in range(RUNS)]
            ok = runs[0][2]
            rows.append((depth, statistics.median(r[0] for r in runs) * 1000, runs[0][1], ok))
    print(f"a batch of {BATCH} real applications in one eth_simulateV1 call ({RUNS} runs)")
    print("in flight replayed | median ms | answer bytes | calls succeeded")
    for depth, ms, size, ok in rows:
        print(f"{depth:18} | {ms:9.1f} | {size:12} | {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
