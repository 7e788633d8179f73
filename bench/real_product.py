"""The real depeg product (GIF instance and product from the npm packages, anvil on chain id
1337 with 30 M gas blocks): what a burst achieves against the chain's capacity, and how far the
gas a transaction uses on chain is from the simulated gas.

(i) Burst: each row on the chain as deployed (a snapshot restored: the product's gas grows with
every active bundle), 300 applications made the web app's way (3 fresh bundles of 100) are
enqueued at once into 2 s blocks, for one replica on one wallet, for two replicas on a pool of
two, and for three on a pool of three behind a node that refuses simulations over 50 M gas (as
reth does, played by `devnet.proxy`), with the ERROR lines that name a wait counted. The clock
runs from the enqueue until the 300th transaction of the pool is mined. Reported: applications/s
against the chain's capacity (30 M / median gas per application / 2 s), and the blocks that held
them against the minimum (total gas used / 30 M, rounded up).

(ii) Spread: each receipt's gasUsed against an `eth_estimateGas` of the same call at the block
before (what the processor's simulation sees, less what came before it in its own block) and
against the transaction's gas limit (the processor's learned limit, eth_estimateGas x 1.2).
Groups: a fresh bundle filled to the last policy, one bundle with protected balances of 2,000
to 50,000 tokens and durations of 14 to 120 days (both automined: one transaction a block), and
the two bursts (many transactions a block).

    python -m bench.real_product       # writes bench/real-product-last-run.json
    python -m bench.real_product 1/1   # only that burst row (replicas/wallets)
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench.feed import enqueue, wait
from bench.real_report import print_table, spread
from bench.scaleout import WALLET_BALANCE, start_replicas, wait_for_pool
from depeg_processor.wallet import pool as wallets
from devnet.depeg import DAY, USD, Actors, Depeg, bundle_capital_for, deploy_depeg
from devnet.nodes import TEST_MNEMONIC, Anvil, RedisServer
from devnet.proxy import RpcProxy
from devnet.webapp import ProductWebApp, WebApp

CHAIN_ID = 1337  # the price data provider's constructor reverts on anvil's own 31337
BLOCK_GAS = 30_000_000
BLOCK_SECONDS = 2
BURST, BURST_BUNDLES = 300, 3
SIMULATION_GAS_CAP = 50_000_000  # geth's and reth's default --rpc.gascap
# (replicas, wallets, the node's simulation gas cap: None for anvil's own, which refuses none)
ROWS = ((1, 1, None), (2, 2, None), (3, 3, SIMULATION_GAS_CAP))
STREAM = "application:signatures"
CONSUMER = "depeg-backend-processor-consumer"
OUT = Path(__file__).with_name("real-product-last-run.json")


class Bench:
    """One chain with the product, one Redis, and the applications made for them."""

    def __init__(self, anvil: Anvil, depeg: Depeg, redis_url: str) -> None:
        self.anvil, self.depeg, self.redis_url = anvil, depeg, redis_url
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.waiting_errors = 0

    def applications(self, count: int, protected: int, duration: int, capacity: int = 0) -> list:
        """`count` applications made the web app's way to a fresh bundle with room for
        `capacity` (default `count`) such policies."""
        capital = bundle_capital_for(capacity or count, protected)
        webapp = self.webapp(self.depeg.create_bundle(capital), protected, duration)
        return [webapp.application() for _ in range(count)]

    def webapp(self, bundle_id: int, protected: int, duration: int) -> ProductWebApp:
        """The web app applying to `bundle_id` for `protected` over `duration`."""
        return ProductWebApp(
            WebApp(self.client, CHAIN_ID, self.depeg.message_helper.address),
            self.depeg,
            bundle_id,
            protected_balance=protected,
            duration=duration,
        )

    def nonces(self, pool: list) -> int:
        return sum(
            int(self.anvil.rpc("eth_getTransactionCount", w.address, "latest"), 16) for w in pool
        )

    def run(
        self, applications: list[dict], replicas: int, pool_size: int, rpc_url: str = ""
    ) -> tuple[float, list]:
        """Enqueue `applications` at once for `replicas` on `pool_size` wallets (through
        `rpc_url`, else anvil's own); returns the seconds until the last of their transactions
        is mined, and those transactions. The ERROR lines that name a wait are counted in
        `self.waiting_errors`."""
        pool = wallets.pool(
            wallets.derive_accounts(TEST_MNEMONIC, pool_size), stream=STREAM, consumer=CONSUMER
        )
        for wallet in pool:
            self.anvil.set_balance(wallet.address, WALLET_BALANCE)
        self.client.flushall()
        start_block, before = self.anvil.block_number() + 1, self.nonces(pool)
        keep = os.environ.get("BENCH_LOGS")  # a folder to keep the replicas' logs in
        with tempfile.TemporaryDirectory(prefix="real-product-", dir=keep) as logs:
            started = start_replicas(
                replicas,
                pool_size,
                redis_url=self.redis_url,
                rpc_url=rpc_url or self.anvil.url,
                product=self.depeg.product.address,
                logs=Path(logs),
            )
            try:
                wait_for_pool(started, pool, self.client)
                clock = time.perf_counter()
                enqueue(self.client, applications)
                wait(
                    lambda: self.nonces(pool) - before >= len(applications),
                    600,
                    "every application's transaction mined",
                )
                seconds = time.perf_counter() - clock
            finally:
                for replica in started:
                    replica.stop()
            if keep:
                shutil.copytree(logs, Path(keep) / f"{replicas}-{pool_size}", dirs_exist_ok=True)
            self.waiting_errors = sum(
                1
                for path in Path(logs).glob("*.log")
                for line in path.read_text().splitlines()
                if "ERROR" in line and "wait" in line
            )
        return seconds, self.transactions({w.address for w in pool}, start_block)

    def transactions(self, senders: set[str], from_block: int) -> list[dict]:
        """Each mined transaction from `senders`: its block, gas limit, gas used, status and
        an eth_estimateGas of the same call at the block before."""
        senders = {s.lower() for s in senders}
        found = []
        for number in range(from_block, self.anvil.block_number() + 1):
            block = self.anvil.rpc("eth_getBlockByNumber", hex(number), True)
            for tx in block["transactions"]:
                if tx["from"].lower() not in senders:
                    continue
                receipt = self.anvil.rpc("eth_getTransactionReceipt", tx["hash"])
                call = {"from": tx["from"], "to": tx["to"], "data": tx["input"]}
                try:
                    estimate = int(self.anvil.rpc("eth_estimateGas", call, hex(number - 1)), 16)
                except RuntimeError:
                    estimate = None  # it would not have gone through at the block before
                found.append(
                    {
                        "block": number,
                        "limit": int(tx["gas"], 16),
                        "used": int(receipt["gasUsed"], 16),
                        "status": int(receipt["status"], 16),
                        "estimate": estimate,
                    }
                )
        return found


def burst_row(
    bench: Bench, replicas: int, pool_size: int, cap: int | None = None
) -> tuple[dict, list]:
    apps = []
    for _ in range(BURST_BUNDLES):
        apps += bench.applications(BURST // BURST_BUNDLES, 5_000 * USD, 30 * DAY)
    bench.anvil.rpc("anvil_setIntervalMining", BLOCK_SECONDS)
    proxy = RpcProxy(bench.anvil.url, simulation_gas_cap=cap).start() if cap else None
    try:
        seconds, txs = bench.run(apps, replicas, pool_size, proxy.url if proxy else "")
    finally:
        if proxy is not None:
            proxy.stop()
        bench.anvil.rpc("anvil_setIntervalMining", 0)
        bench.anvil.set_automine(True)
    median_gas = statistics.median(t["used"] for t in txs)
    capacity = BLOCK_GAS / median_gas / BLOCK_SECONDS
    total_gas = sum(t["used"] for t in txs)
    row = {
        "replicas": replicas,
        "wallets": pool_size,
        "simulation_gas_cap": cap,
        "simulations_refused": proxy.simulations_refused if proxy else 0,
        "error_lines_for_waiting": bench.waiting_errors,
        "applications": len(apps),
        "seconds": round(seconds, 2),
        "per_second": round(len(apps) / seconds, 2),
        "chain_capacity_per_second": round(capacity, 2),
        "of_capacity": round(len(apps) / seconds / capacity, 3),
        "transactions": len(txs),
        "reverted": sum(1 for t in txs if t["status"] != 1),
        "blocks_used": len({t["block"] for t in txs}),
        "blocks_minimum": math.ceil(total_gas / BLOCK_GAS),
        "per_block": [
            sum(1 for t in txs if t["block"] == b) for b in sorted({t["block"] for t in txs})
        ],
        "fill_per_block": [
            round(sum(t["used"] for t in txs if t["block"] == b) / BLOCK_GAS, 2)
            for b in sorted({t["block"] for t in txs})
        ],
        "median_gas": int(median_gas),
    }
    return row, txs


def spread_groups(bench: Bench) -> dict[str, list]:
    """Automined groups: a fresh bundle filled to the last policy, and mixed terms."""
    fresh = bench.applications(10, 5_000 * USD, 30 * DAY)
    mixed = []
    terms = [(p * USD, d * DAY) for p in (2_000, 10_000, 50_000) for d in (14, 60, 120)]
    capital = bundle_capital_for(len(terms), 50_000 * USD)
    bundle_id = bench.depeg.create_bundle(capital)
    for protected, duration in terms:
        mixed.append(bench.webapp(bundle_id, protected, duration).application())
    return {
        "fresh bundle to full (automine)": bench.run(fresh, 1, 1)[1],
        "mixed balances and durations (automine)": bench.run(mixed, 1, 1)[1],
    }


def main(argv: list[str]) -> int:
    actors = Actors()
    started = time.monotonic()
    with (
        RedisServer() as redis_server,
        Anvil(chain_id=CHAIN_ID, extra_args=("--gas-limit", str(BLOCK_GAS))) as anvil,
    ):
        for account in actors.all():
            anvil.set_balance(account.address, 10**24)
        depeg = deploy_depeg(anvil.url, actors)
        bench = Bench(anvil, depeg, redis_server.url)
        deployed = anvil.rpc("evm_snapshot")
        groups = spread_groups(bench)
        rows = []
        for replicas, pool_size, cap in ROWS:
            if argv and f"{replicas}/{pool_size}" not in argv:
                continue  # only the rows asked for, as "2/2"
            # each row on the chain as deployed: the product's gas grows with every active
            # bundle (about 60 k each), so rows on one growing chain would not compare
            anvil.rpc("evm_revert", deployed)
            deployed = anvil.rpc("evm_snapshot")  # a restored snapshot is used up
            depeg.t.forget_nonces()
            row, txs = burst_row(bench, replicas, pool_size, cap)
            rows.append(row)
            groups[f"burst {replicas}/{pool_size} ({BLOCK_SECONDS} s blocks)"] = txs
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "block_gas": BLOCK_GAS,
        "block_seconds": BLOCK_SECONDS,
        "seconds": round(time.monotonic() - started, 1),
        "burst": rows,
        "spread": {name: spread(txs) for name, txs in groups.items()},
    }
    print_table(result)
    if argv:  # a part of the run: shown, not kept as the last run
        print(json.dumps(result["burst"], indent=1))
        return 0
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{result['seconds']} s in all; written to {OUT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
