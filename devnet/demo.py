"""`make demo`: see the processor work end to end on a throw-away redis-server and anvil.

Deploys the product test double, enqueues applications exactly as the web app does (one of
them with a broken signature), runs `python -m depeg_processor` until every application is
confirmed and purged or set aside, prints what happened and the monitor's answer, cleans up.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import redis
from eth_account import Account

from depeg_processor.config import DERIVATION_PATH
from devnet.nodes import TEST_MNEMONIC, Anvil, RedisServer, clean_env, free_port
from devnet.product import Product
from devnet.webapp import WebApp

GOOD, CONFIRMATIONS = 5, 3


def get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait(predicate, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo failed: timed out waiting for {what}")
        time.sleep(0.2)


def main() -> int:
    Account.enable_unaudited_hdwallet_features()
    processor = Account.from_mnemonic(TEST_MNEMONIC, account_path=DERIVATION_PATH)
    owner = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/9")
    with RedisServer() as redis_server, Anvil(block_time=1) as anvil:
        print(f"redis-server on {redis_server.url}, anvil on {anvil.url} (a block per second)")
        product = Product.deploy(anvil.url, owner)
        print(
            f"product test double at {product.address}, message helper {product.message_helper()}"
        )
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        webapp = WebApp(client, int(anvil.rpc("eth_chainId"), 16), product.message_helper())
        good = [webapp.apply() for _ in range(GOOD)]
        bad = webapp.apply(signature="0x" + "ab" * 65)
        print(f"web app enqueued {GOOD} signed applications and 1 with a broken signature")

        port = free_port()
        env = clean_env() | {
            "REDIS_URL": redis_server.url,
            "CHAIN_RPC_URL": anvil.url,
            "DEPEG_PRODUCT_ADDRESS": product.address,
            "PROCESSOR_MNEMONIC": TEST_MNEMONIC,
            "CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS": str(CONFIRMATIONS),
            "PORT": str(port),
            "NODE_ENV": "production",
            "RECEIPT_POLL_INTERVAL": "500",
        }
        print(f"starting: python -m depeg_processor (wallet {processor.address}, monitor :{port})")
        service = subprocess.Popen(
            [sys.executable, "-m", "depeg_processor"], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            hashes: dict[str, str] = {}

            def submitted() -> bool:
                for entity_id in good:
                    tx = client.hget(f"PendingApplication:{entity_id}", "transactionHash")
                    if tx:
                        hashes[entity_id] = tx
                return len(hashes) == GOOD

            wait(submitted, "transaction hashes")
            for entity_id in good:
                print(f"  {entity_id} -> {hashes[entity_id]}")
            wait(
                lambda: not any(client.exists(f"PendingApplication:{e}") for e in good + [bad]),
                f"{CONFIRMATIONS} confirmations and the purge",
            )
            print(
                f"all {GOOD} applications confirmed ({CONFIRMATIONS} confirmations) and purged; "
                f"policies created on chain: {product.application_count()}"
            )
            for _id, fields in client.xrange("application:signatures:dead"):
                print(f"  dead letter {fields['entityId']}: {fields['reason']}")
            for path in ("/api/monitor", "/api/monitor/liveness", "/api/monitor/readiness"):
                status, body = get(port, path)
                print(f"GET {path} -> {status} {json.dumps(body)}")
            service.send_signal(signal.SIGTERM)
            print(f"SIGTERM -> exit code {service.wait(15)}")
        finally:
            if service.poll() is None:
                service.kill()
            _out, err = service.communicate()
        print(f"service wrote {len(err.splitlines())} JSON log lines; the last one:")
        print("  " + (err.splitlines()[-1] if err else "(none)"))
        ok = (
            product.application_count() == GOOD
            and service.returncode == 0
            and client.xlen("application:signatures:dead") == 1
        )
        print("demo " + ("passed" if ok else "FAILED") + "; redis-server and anvil stopped")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
