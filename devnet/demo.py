"""`make demo`: see the processor work end to end on a throw-away redis-server and anvil.

Deploys a GIF instance and the real depeg product from the npm packages (anvil on chain id
1337, where the product's price data provider deploys), makes applications the web app's way
(the holder approves the premium, then signs; one holder gives no allowance, which the product
refuses with DP-015), runs `python -m depeg_processor` until every application is confirmed
and purged or set aside, prints what happened and the monitor's answer, cleans up.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from eth_account import Account

from depeg_processor.config import DERIVATION_PATH
from devnet.nodes import TEST_MNEMONIC, Anvil, RedisServer, clean_env, free_port
from devnet.scenario import CHAIN_ID, set_up

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
    with RedisServer() as redis_server, Anvil(chain_id=CHAIN_ID) as anvil:
        print(f"redis-server on {redis_server.url}, anvil on {anvil.url} (chain id {CHAIN_ID})")
        scenario = set_up(anvil, redis_server.url, applications=GOOD)
        depeg, client = scenario.depeg, scenario.client
        product = depeg.product
        print(
            f"GIF instance and depeg product deployed from node_modules/@etherisc: "
            f"{depeg.t.transactions} transactions, {depeg.seconds:.1f} s; product at "
            f"{product.address}, message helper {depeg.message_helper.address}"
        )
        good = scenario.apply(GOOD)
        bad = scenario.apply_without_allowance()
        print(
            f"web app enqueued {GOOD} applications to bundle {scenario.bundle_id} (premium "
            f"{scenario.premium() / 1e6} tokens approved by each holder) and 1 whose holder "
            "approved nothing"
        )
        anvil.rpc("anvil_setIntervalMining", 1)  # the set-up was automined; now a block a second

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
            gas = sorted(
                int(anvil.rpc("eth_getTransactionReceipt", h)["gasUsed"], 16)
                for h in hashes.values()
            )
            print(
                f"all {GOOD} applications confirmed ({CONFIRMATIONS} confirmations) and purged; "
                f"policies on chain: {product.functions.policies().call()}; gas per "
                f"application {gas[0]:,} to {gas[-1]:,}"
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
            product.functions.policies().call() == GOOD
            and service.returncode == 0
            and client.xlen("application:signatures:dead") == 1
        )
        print("demo " + ("passed" if ok else "FAILED") + "; redis-server and anvil stopped")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
