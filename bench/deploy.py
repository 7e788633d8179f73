"""A deploy while applications flow: a new `python -m depeg_processor` starts beside the one
sending, reports ready as a hot standby, and the old one gets SIGTERM. Measured, per deploy:
from the SIGTERM to the new process's first transaction at the node (its "sent as tx" log line,
written once the node accepted the transaction), and to the old process's exit. The web app
writes an application every 50 ms throughout; at the end every application must be on chain
exactly once (the product's count and the wallet's nonce), none set aside.

    python -m bench.deploy [DEPLOYS] [--source DIR] [--ttl MS]

Each deploy's new process is the next one's old process (a rolling deploy). Default settings,
production logs; `--ttl` sets PROCESSOR_LEASE_TTL (default: the processor's 15 s), `--source
DIR` runs another checkout's `depeg_processor/` (to compare two versions on the same machine).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import redis
from eth_account import Account

from devnet.nodes import TEST_MNEMONIC, Anvil, RedisServer, clean_env, free_port
from devnet.product import Product
from devnet.webapp import WebApp

Account.enable_unaudited_hdwallet_features()
OWNER = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/9")
WALLET = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/0").address
LEASE_KEY = f"application:signatures:lease:{WALLET}"
ARRIVAL = 0.05  # seconds between two applications


def sent_times(log: Path) -> list[float]:
    """Wall-clock times of the process's "sent as tx" lines (its JSON log)."""
    times = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if " sent as tx " in record.get("message", ""):
            stamp = datetime.datetime.fromisoformat(record["time"])
            times.append(stamp.timestamp())
    return times


def readiness_role(port: int) -> str:
    try:
        url = f"http://127.0.0.1:{port}/api/monitor/readiness"
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read()).get("role", "")
    except urllib.error.HTTPError as error:
        return json.loads(error.read()).get("role", "")
    except OSError:
        return ""


def wait(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.01)
    return result


def holder_pid(client: redis.Redis) -> int:
    holder = client.get(LEASE_KEY)
    return int(holder.rsplit(":", 2)[1]) if holder else 0


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser()
    args.add_argument("deploys", nargs="?", type=int, default=5)
    args.add_argument("--source", default=os.getcwd())
    args.add_argument("--ttl", type=int, default=None, help="PROCESSOR_LEASE_TTL in ms")
    options = args.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="deploy-bench-"))
    with RedisServer() as server, Anvil(block_time=0.25) as anvil:
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
            "CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS": "1",
            "NODE_ENV": "production",
            "PYTHONPATH": options.source,
        }
        if options.ttl:
            env["PROCESSOR_LEASE_TTL"] = str(options.ttl)
        processes: list[subprocess.Popen] = []

        def start(n: int) -> tuple[subprocess.Popen, Path, int]:
            log, port = folder / f"processor-{n}.log", free_port()
            with open(log, "w") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-m", "depeg_processor"],
                    env=env | {"PORT": str(port)},
                    cwd=options.source,
                    stdout=subprocess.DEVNULL,
                    stderr=sink,
                )
            processes.append(process)
            return process, log, port

        entity_ids: list[str] = []
        done = threading.Event()

        def web() -> None:
            while not done.is_set():
                entity_ids.append(webapp.apply())
                done.wait(ARRIVAL)

        to_first_send, to_exit = [], []
        try:
            old, _old_log, _ = start(0)
            wait(lambda: holder_pid(client) == old.pid, "the first process sending")
            feeder = threading.Thread(target=web, daemon=True)
            feeder.start()
            for n in range(1, options.deploys + 1):
                new, new_log, port = start(n)
                wait(lambda p=port: readiness_role(p).startswith("standby"), "a standby")
                time.sleep(1.0)  # the old one keeps sending while the standby waits
                signalled = time.time()
                old.send_signal(signal.SIGTERM)
                if old.wait(30) != 0:
                    raise SystemExit("bench: the old process did not stop cleanly")
                to_exit.append(time.time() - signalled)
                first = wait(lambda f=new_log: sent_times(f), "the new process sending")[0]
                to_first_send.append(first - signalled)
                print(
                    f"deploy {n}: first transaction of the new process "
                    f"{to_first_send[-1] * 1000:.0f} ms after SIGTERM; the old one exited "
                    f"after {to_exit[-1] * 1000:.0f} ms",
                    flush=True,
                )
                old = new
            done.set()
            feeder.join()
            wait(
                lambda: not any(client.exists(f"PendingApplication:{e}") for e in entity_ids),
                "every application confirmed",
                timeout=120,
            )
            count = len(entity_ids)
            nonce = int(anvil.rpc("eth_getTransactionCount", WALLET, "latest"), 16)
            on_chain = product.application_count()
            letters = client.xlen("application:signatures:dead")
        finally:
            done.set()
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    print(
        f"SIGTERM to the new process's first transaction: median "
        f"{statistics.median(to_first_send) * 1000:.0f} ms, min {min(to_first_send) * 1000:.0f}, "
        f"max {max(to_first_send) * 1000:.0f} ({len(to_first_send)} deploys); the old process "
        f"exited after {statistics.median(to_exit) * 1000:.0f} ms (median)"
    )
    print(
        f"{count} applications: {on_chain} on chain, wallet nonce {nonce}, "
        f"{letters} set aside; logs in {folder}"
    )
    return 0 if on_chain == count == nonce and not letters else 1


if __name__ == "__main__":
    sys.exit(main())
