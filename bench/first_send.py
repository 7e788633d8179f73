"""Time from start to the first transaction sent: `python -m depeg_processor` is started as
an operator starts it, with one application waiting in the stream, and the clock runs from the
process's start until that application's `transactionHash` is written (the write-ahead, right
before the broadcast). Each trial is a fresh process against the same Redis and anvil.

    python -m bench.first_send [TRIALS] [--source DIR]

`--source DIR` runs the processor from another checkout's `depeg_processor/` (to compare two
versions on the same machine and parts).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import redis
from eth_account import Account

from devnet.nodes import TEST_MNEMONIC, Anvil, RedisServer, clean_env, free_port
from devnet.product import Product
from devnet.webapp import WebApp

Account.enable_unaudited_hdwallet_features()
OWNER = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/9")
POLL = 0.002  # seconds between two looks at the application


def trial(env: dict, client: redis.Redis, webapp: WebApp, source: str) -> float:
    entity_id = webapp.apply()
    key = f"PendingApplication:{entity_id}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "depeg_processor"],
        env=env | {"PYTHONPATH": source, "PORT": str(free_port())},
        cwd=source,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("FIRST_SEND_LOG", os.devnull), "a"),
    )
    try:
        deadline = started + 60
        while not client.hget(key, "transactionHash"):
            if time.perf_counter() > deadline or process.poll() is not None:
                raise SystemExit("bench: the processor sent nothing within 60 s")
            time.sleep(POLL)
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(30)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser()
    args.add_argument("trials", nargs="?", type=int, default=5)
    args.add_argument("--source", default=os.getcwd())
    options = args.parse_args(argv)
    with RedisServer() as server, Anvil() as anvil:
        product = Product.deploy(anvil.url, OWNER)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        webapp = WebApp(client, int(anvil.rpc("eth_chainId"), 16), product.message_helper())
        env = clean_env() | {
            "REDIS_URL": server.url,
            "CHAIN_RPC_URL": anvil.url,
            "DEPEG_PRODUCT_ADDRESS": product.address,
            "PROCESSOR_MNEMONIC": TEST_MNEMONIC,
            "PROCESSOR_MIN_BALANCE": "1",
            "PROCESSOR_ALERT_BALANCE": "1",
            "NODE_ENV": os.environ.get("FIRST_SEND_NODE_ENV", "production"),
        }
        times = [trial(env, client, webapp, options.source) for _ in range(options.trials)]
    print(
        f"start to first transaction sent: median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s, max {max(times):.3f} s ({len(times)} trials)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
