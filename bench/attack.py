"""Issue 21's attack against today's processor and the real depeg product: ten honest
applications and four attacking holders (three with one application, one with three), a block
every 4 s. Each attacker (devnet.attacker) watches anvil's pool and front-runs the processor's
transaction for its application with approve(treasury, 0), then approves 100 USDT again.

Reported per row (replicas/wallets): the reverted transactions the pool's wallets paid for per
attacking holder, their gas and wei, what the wallets paid in all (their balance before and
after), and what the replicas' /metrics say (depeg_processor_gas_spent_wei and
depeg_processor_reverted_spent_wei, each summed: together, what the wallets paid).

    python -m bench.attack            # every row; writes bench/attack-last-run.json
    python -m bench.attack 1:6        # one row: 1 replica on 1 wallet, 6 confirmations

Before issue 21 confirmations mattered: with 6 a reverted call "would succeed now" once the
attacker approved again, and the application was sent again (22-24 paid reverts). Now a
reverted transaction is never sent again and its holder is held (wallet.holders), a holder
having one application in flight: at most one paid revert per attacking holder, whatever the
confirmations (tests/integration/real/test_real_revert_once.py measures 4 for 4 holders).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.feed import enqueue, wait
from bench.scaleout import WALLET_BALANCE, Replica, replica_env, wait_for_pool
from depeg_processor.wallet import pool as wallets
from devnet.attacker import Attacker, application_holder
from devnet.depeg import USD, Actors, bundle_capital_for, deploy_depeg
from devnet.nodes import TEST_MNEMONIC, Anvil, RedisServer, free_port
from devnet.webapp import ProductWebApp, WebApp

CHAIN_ID = 1337
BLOCK_SECONDS = 4
HONEST = 10
ATTACKING = (1, 1, 1, 3)  # applications of each attacking holder
ALLOWANCE = 100 * USD
PROTECTED = 5_000 * USD
STREAM, GROUP = "application:signatures", "depeg-backend-processor"
CONSUMER = "depeg-backend-processor-consumer"
OUT = Path(__file__).with_name("attack-last-run.json")
ROWS = ((1, 1), (1, 6), (2, 6))  # (replicas on as many wallets, confirmations)


def start_replicas(count: int, confirmations: int, logs: Path, **where: str) -> list[Replica]:
    """`count` replicas of `python -m depeg_processor run` on a pool of `count` wallets."""
    replicas = []
    for n in range(count):
        port, log = free_port(), logs / f"replica-{n + 1}.log"
        env = replica_env(where["redis_url"], where["rpc_url"], where["product"], count, port)
        env["CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS"] = str(confirmations)
        with log.open("w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "depeg_processor", "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        replicas.append(Replica(process, port, log))
    return replicas


def settled(client: redis.Redis, entity_ids: list[str]) -> bool:
    """Every application confirmed or set aside, no entry unacknowledged."""
    return (
        not any(client.exists(f"PendingApplication:{e}") for e in entity_ids)
        and client.xpending(STREAM, GROUP)["pending"] == 0
    )


def gas_spent_metric(port: int, name: str = "depeg_processor_gas_spent_wei_total") -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


def run_row(anvil: Anvil, depeg, redis_url: str, replicas: int, confirmations: int) -> dict:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    bundle = depeg.create_bundle(bundle_capital_for(HONEST + sum(ATTACKING) + 2, PROTECTED))
    webapp = ProductWebApp(
        WebApp(client, CHAIN_ID, depeg.message_helper.address), depeg, bundle, PROTECTED
    )
    apps = [webapp.application() for _ in range(HONEST)]
    attackers = [webapp.new_holder(ALLOWANCE) for _ in ATTACKING]
    for holder, count in zip(attackers, ATTACKING):
        apps += [webapp.application(holder) for _ in range(count)]
        depeg.t.call(holder, depeg.token, "approve", depeg.treasury, ALLOWANCE)
    pool = wallets.pool(
        wallets.derive_accounts(TEST_MNEMONIC, replicas), stream=STREAM, consumer=CONSUMER
    )
    for wallet in pool:
        anvil.set_balance(wallet.address, WALLET_BALANCE)
    start_block = anvil.block_number() + 1
    attacker = Attacker(
        rpc_url=anvil.url,
        product=depeg.product.address,
        token=depeg.token.address,
        treasury=depeg.treasury,
        holders=attackers,
        allowance=ALLOWANCE,
    )
    anvil.rpc("anvil_setIntervalMining", BLOCK_SECONDS)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="attack-") as logs, attacker:
        running = start_replicas(
            replicas,
            confirmations,
            Path(logs),
            redis_url=redis_url,
            rpc_url=anvil.url,
            product=depeg.product.address,
        )
        try:
            wait_for_pool(running, pool, client)
            ids = enqueue(client, apps)
            wait(lambda: settled(client, ids), 600, "every application settled")
            anvil.mine(confirmations + 1)  # the last receipts' confirmations
            metric = sum(gas_spent_metric(r.port) for r in running)
            reverted_metric = sum(
                gas_spent_metric(r.port, "depeg_processor_reverted_spent_wei_total")
                for r in running
            )
        finally:
            for replica in running:
                replica.stop()
    anvil.rpc("anvil_setIntervalMining", 0)
    anvil.set_automine(True)
    paid = sum(WALLET_BALANCE - anvil.balance(w.address) for w in pool)
    return report(anvil, depeg, pool, attackers, start_block, paid, metric, client) | {
        "replicas": replicas,
        "wallets": replicas,
        "confirmations": confirmations,
        "seconds": round(time.monotonic() - started, 1),
        "attacker_errors": attacker.errors,
        "metrics_reverted_spent_wei": int(reverted_metric),
    }


def report(anvil, depeg, pool, attackers, start_block, paid, metric, client) -> dict:
    """What the pool's wallets sent from `start_block` on, by holder."""
    ours = {w.address.lower() for w in pool}
    names = {h.address.lower(): f"attacker-{n + 1}" for n, h in enumerate(attackers)}
    by = collections.defaultdict(lambda: {"reverted": 0, "gas": 0, "wei": 0, "landed": 0})
    for number in range(start_block, anvil.block_number() + 1):
        block = anvil.rpc("eth_getBlockByNumber", hex(number), True)
        for tx in block["transactions"]:
            if tx["from"].lower() not in ours:
                continue
            receipt = anvil.rpc("eth_getTransactionReceipt", tx["hash"])
            holder = (application_holder(tx, depeg.product.address) or "?").lower()
            row = by[names.get(holder, "honest")]
            if receipt["status"] == "0x1":
                row["landed"] += 1
                continue
            row["reverted"] += 1
            row["gas"] += int(receipt["gasUsed"], 16)
            row["wei"] += int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    reverted_wei = sum(r["wei"] for r in by.values())
    return {
        "by_holder": dict(sorted(by.items())),
        "paid_reverts": sum(r["reverted"] for r in by.values()),
        "reverted_gas": sum(r["gas"] for r in by.values()),
        "reverted_wei": reverted_wei,
        "wallets_paid_wei": paid,
        "metrics_gas_spent_wei": int(metric),
        "dead_letters": client.xlen(f"{STREAM}:dead"),
    }


def main(argv: list[str]) -> int:
    rows = [tuple(int(x) for x in a.split(":")) for a in argv] or ROWS
    actors = Actors()
    results = []
    with RedisServer() as redis_server, Anvil(chain_id=CHAIN_ID) as anvil:
        for account in actors.all():
            anvil.set_balance(account.address, 10**24)
        depeg = deploy_depeg(anvil.url, actors)
        for replicas, confirmations in rows:
            result = run_row(anvil, depeg, redis_server.url, replicas, confirmations)
            results.append(result)
            print(json.dumps(result, indent=2), flush=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
