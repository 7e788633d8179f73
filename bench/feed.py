"""Feeding the node and the stream in the benchmarks: applications enqueued as the web app does,
the node's own limit (pre-signed application transactions sent back to back), and a wait on a
state."""

from __future__ import annotations

import time

import redis
import requests
from eth_account import Account

from depeg_processor.inbound.application import parse_application
from devnet.nodes import TEST_MNEMONIC, Anvil
from devnet.product import Product

Account.enable_unaudited_hdwallet_features()
# the limit's sender is clear of a pool's first wallets and of the product's owner
LIMIT_SENDER = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/8")
GWEI = 10**9


def wait(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(interval)


def enqueue(client: redis.Redis, applications: list[dict]) -> list[str]:
    from devnet.webapp import ulid

    ids = []
    pipe = client.pipeline(transaction=False)
    for fields in applications:
        entity_id = ulid()
        pipe.hset(f"PendingApplication:{entity_id}", mapping=fields)
        pipe.xadd("application:signatures", {"entityId": entity_id})
        ids.append(entity_id)
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return ids


def measure_limit(anvil: Anvil, product: Product, applications: list[dict]) -> float:
    """Seconds to get N pre-signed application transactions mined, sent back to back."""
    chain_id = int(anvil.rpc("eth_chainId"), 16)
    nonce = int(anvil.rpc("eth_getTransactionCount", LIMIT_SENDER.address, "pending"), 16)
    raws = []
    for offset, fields in enumerate(applications):
        app = parse_application("limit", fields)
        data = product.contract.encode_abi(
            "applyForPolicyWithBundleAndSignature", args=app.contract_args()
        )
        signed = LIMIT_SENDER.sign_transaction(
            {
                "type": 2,
                "chainId": chain_id,
                "nonce": nonce + offset,
                "to": product.address,
                "value": 0,
                "data": data,
                "gas": 200_000,
                "maxFeePerGas": 20 * GWEI,
                "maxPriorityFeePerGas": GWEI,
            }
        )
        raws.append("0x" + signed.raw_transaction.hex())
    session = requests.Session()
    started = time.perf_counter()
    last = None
    for index, raw in enumerate(raws):
        reply = session.post(
            anvil.url,
            json={
                "jsonrpc": "2.0",
                "id": index,
                "method": "eth_sendRawTransaction",
                "params": [raw],
            },
        ).json()
        if "error" in reply:
            raise SystemExit(f"bench: limit transaction refused: {reply['error']}")
        last = reply["result"]
    wait(
        lambda: anvil.rpc("eth_getTransactionReceipt", last) is not None,
        600,
        "limit mined",
        interval=0.001,
    )
    return time.perf_counter() - started
