"""Time from start to the first transaction sent: `python -m depeg_processor` is started as
an operator starts it, with one application waiting in the stream, and the clock runs from the
process's start until that application's `transactionHash` is written (the write-ahead, right
before the broadcast). Each trial is a fresh process against the same Redis and anvil.

    python -m bench.first_send [TRIALS] [--source DIR] [--uncompiled] [--rtt SECONDS]

`--source DIR` runs the processor from another checkout's `depeg_processor/` (to compare two
versions on the same machine and parts). The package is copied to a temporary directory and
compiled there first, as an installed processor is (pip compiles the modules it installs, the
image's build too): with PYTHONDONTWRITEBYTECODE set and nothing compiled, every start would
compile the processor's ninety modules again, about 60 ms that no deployed start pays.
`--uncompiled` runs from DIR as it is, to see that cost. `--rtt` puts a proxy in front of anvil
that answers each HTTP request that much later, as a distant provider does: each round trip on
the way to the first send then shows (the proxy's requests and calls a trial are printed).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import redis
from eth_account import Account

from devnet.nodes import TEST_MNEMONIC, Anvil, RedisServer, clean_env, free_port
from devnet.product import Product
from devnet.proxy import RpcProxy
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
    args.add_argument("--uncompiled", action="store_true")
    args.add_argument("--rtt", type=float, default=0.0)
    options = args.parse_args(argv)
    with tempfile.TemporaryDirectory() as installed:
        if not options.uncompiled:
            package = os.path.join(installed, "depeg_processor")
            shutil.copytree(
                os.path.join(options.source, "depeg_processor"),
                package,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
            if not compileall.compile_dir(package, quiet=1):
                raise SystemExit("bench: the processor does not compile")
            options.source = installed
        return measure(options.trials, options.source, rtt=options.rtt)


def measure(trials: int, source: str, *, rtt: float = 0.0) -> int:
    with RedisServer() as server, Anvil() as anvil, RpcProxy(anvil.url, delay=rtt) as proxy:
        product = Product.deploy(anvil.url, OWNER)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        webapp = WebApp(client, int(anvil.rpc("eth_chainId"), 16), product.message_helper())
        env = clean_env() | {
            "REDIS_URL": server.url,
            "CHAIN_RPC_URL": proxy.url if rtt else anvil.url,
            "DEPEG_PRODUCT_ADDRESS": product.address,
            "PROCESSOR_MNEMONIC": TEST_MNEMONIC,
            "PROCESSOR_MIN_BALANCE": "1",
            "PROCESSOR_ALERT_BALANCE": "1",
            "NODE_ENV": os.environ.get("FIRST_SEND_NODE_ENV", "production"),
        }
        proxy.reset_counts()
        times = [trial(env, client, webapp, source) for _ in range(trials)]
        seen = f", {proxy.requests / trials:.1f} requests and {proxy.total_calls() / trials:.1f}"
    print(
        f"start to first transaction sent: median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s, max {max(times):.3f} s ({len(times)} trials"
        + (f"{seen} calls to the node a trial, {rtt * 1000:.0f} ms a request)" if rtt else ")")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
