"""Scale-out: applications per second for R replicas sending from a pool of W wallets, against
a node that answers every request in 50 ms (a hosted provider far away, or one under load).

Each row gets a fresh redis-server and anvil (a block every BENCH_BLOCK_TIME seconds, default
0.25) behind a JSON-RPC proxy that delays every request by BENCH_NODE_DELAY seconds (default
0.05) and counts the calls. The product test double is deployed from account 9 of the test
mnemonic, so no pool wallet (accounts 0 .. W-1) ever shares a nonce with it; the pool wallets
are given a large balance. Then R processes `python -m depeg_processor`, each with the same
settings (`PROCESSOR_WALLETS=W`) and only its own monitor port, are started with an empty
queue. Once each answers its readiness (a hot standby is ready too) and min(R, W) wallets are
leased, N applications are written the web app's way as a backlog, and the clock runs until
all N are mined. Reported: applications per second, the speed-up against the first row,
JSON-RPC calls per application (counted at the proxy until the last is mined) and how many
transactions each wallet sent.

N is 2,000 by default: the four-replica rows then run for about four seconds, long enough that
start-up (each replica's first batch learns the gas limit) and the wait for the last block are
a small part of the run, as they are of a real backlog.

    python -m bench.scaleout              # N = 2000; rows 1/1, 2/2, 4/4, 4/2, 4/1
    python -m bench.scaleout 200          # another N
    python -m bench.scaleout 200 1/1 3/3  # chosen rows (replicas/wallets)
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

from bench.feed import enqueue, wait
from bench.throughput import ANVIL_ARGS, BLOCK_TIME, bench_chain
from depeg_processor.wallet import pool as wallets
from devnet.nodes import TEST_MNEMONIC, clean_env, free_port

STREAM = "application:signatures"
CONSUMER = "depeg-backend-processor-consumer"
NODE_DELAY = float(os.environ.get("BENCH_NODE_DELAY", "0.05"))
DEFAULT_N = 2000
ROWS = ((1, 1), (2, 2), (4, 4), (4, 2), (4, 1))  # (replicas, wallets)
START_TIMEOUT = 60.0
WALLET_BALANCE = 10**22  # wei: 10,000 ether, far above what N applications cost


class RowNotRun(Exception):
    """A row could not be measured (the replicas did not take the wallets they should)."""


@dataclasses.dataclass
class Replica:
    process: subprocess.Popen
    port: int
    log: Path

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/api/monitor/readiness", timeout=5
            ) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False
        except OSError:
            if self.process.poll() is not None:
                raise RowNotRun(
                    f"a replica exited with {self.process.returncode}: "
                    f"{self.log.read_text()[-2000:]}"
                ) from None
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def replica_env(redis_url: str, rpc_url: str, product: str, pool_size: int, port: int) -> dict:
    """Identical settings for every replica but the monitor's port."""
    return clean_env() | {
        "REDIS_URL": redis_url,
        "CHAIN_RPC_URL": rpc_url,
        "DEPEG_PRODUCT_ADDRESS": product,
        "PROCESSOR_MNEMONIC": TEST_MNEMONIC,
        "PROCESSOR_WALLETS": str(pool_size),
        "PROCESSOR_MIN_BALANCE": "0.1 ether",
        "PROCESSOR_ALERT_BALANCE": "0.1 ether",
        "CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS": "1",
        "MAX_FEE_PER_GAS": "100 gwei",
        "MAX_NON_ACK_PENDING_MESSAGES": str(10**9),
        "NODE_ENV": "production",
        "LOG_LEVEL": "WARNING",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }


def start_replicas(
    count: int, pool_size: int, *, redis_url: str, rpc_url: str, product: str, logs: Path
) -> list[Replica]:
    replicas = []
    for n in range(count):
        port = free_port()
        log = logs / f"replica-{n + 1}.log"
        with log.open("w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "depeg_processor", "run"],
                env=replica_env(redis_url, rpc_url, product, pool_size, port),
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        replicas.append(Replica(process, port, log))
    return replicas


def wait_for_pool(replicas: list[Replica], pool: list[wallets.Member], client: redis.Redis) -> None:
    """Every replica ready, and as many wallets leased as there are replicas to hold them."""
    wanted = min(len(replicas), len(pool))
    deadline = time.monotonic() + START_TIMEOUT
    while not all(replica.ready() for replica in replicas):
        if time.monotonic() > deadline:
            raise RowNotRun("the replicas did not become ready")
        time.sleep(0.1)
    while (leased := sum(client.exists(w.lease_key) for w in pool)) < wanted:
        if time.monotonic() > deadline:
            raise RowNotRun(
                f"{leased} of the pool's {len(pool)} wallets leased, "
                f"{wanted} expected: this processor does not spread its replicas "
                f"over PROCESSOR_WALLETS"
            )
        time.sleep(0.1)


def run_row(replica_count: int, pool_size: int, n: int) -> dict:
    pool = wallets.pool(
        wallets.derive_accounts(TEST_MNEMONIC, pool_size), stream=STREAM, consumer=CONSUMER
    )
    with (
        bench_chain(delay=NODE_DELAY) as (redis_server, anvil, proxy, product, client, webapp),
        tempfile.TemporaryDirectory(prefix="scaleout-") as logs,
    ):
        for wallet in pool:
            anvil.rpc("anvil_setBalance", wallet.address, hex(WALLET_BALANCE))
        applications = [webapp.application() for _ in range(n)]
        replicas = start_replicas(
            replica_count,
            pool_size,
            redis_url=redis_server.url,
            rpc_url=proxy.url,
            product=product.address,
            logs=Path(logs),
        )
        try:
            wait_for_pool(replicas, pool, client)
            before = product.application_count()
            proxy.reset_counts()
            started = time.perf_counter()
            enqueue(client, applications)
            wait(
                lambda: product.application_count() - before >= n, 3600, "all mined", interval=0.05
            )
            seconds = time.perf_counter() - started
            calls = proxy.total_calls()
        finally:
            for replica in replicas:
                replica.stop()
        sent = [int(anvil.rpc("eth_getTransactionCount", w.address, "latest"), 16) for w in pool]
    return {
        "replicas": replica_count,
        "wallets": pool_size,
        "n": n,
        "seconds": seconds,
        "per_second": n / seconds,
        "rpc_per_app": calls / n,
        "sent_per_wallet": sent,
    }


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else DEFAULT_N
    rows = [tuple(int(part) for part in row.split("/")) for row in argv[1:]] or ROWS
    results: list[dict] = []
    skipped: list[tuple[int, int, str]] = []
    for replica_count, pool_size in rows:
        print(
            f"{replica_count} replica(s), {pool_size} wallet(s): {n} applications ...", flush=True
        )
        try:
            result = run_row(replica_count, pool_size, n)
        except RowNotRun as why:
            print(f"  not measured: {why}", flush=True)
            skipped.append((replica_count, pool_size, str(why)))
            continue
        results.append(result)
        print(
            f"  {result['seconds']:.2f}s, {result['per_second']:.1f} apps/s, "
            f"{result['rpc_per_app']:.2f} JSON-RPC calls/app, sent per wallet "
            f"{result['sent_per_wallet']}",
            flush=True,
        )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    mining = f"a block every {BLOCK_TIME} s" if BLOCK_TIME else "automine"
    print(
        f"\nmachine: {machine}; anvil {mining} ({' '.join(ANVIL_ARGS)}); every JSON-RPC "
        f"request delayed {NODE_DELAY * 1000:.0f} ms; replicas, node and Redis on one host; "
        f"N = {n}\n"
    )
    base: float | None = results[0]["per_second"] if results else None
    print(
        "| replicas | wallets | apps/s | vs. 1 replica | JSON-RPC calls / app "
        "| transactions per wallet |"
    )
    print("|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(
            f"| {r['replicas']} | {r['wallets']} | {r['per_second']:.1f} | "
            f"{r['per_second'] / base:.1f}× | {r['rpc_per_app']:.2f} | "
            f"{' / '.join(str(s) for s in r['sent_per_wallet'])} |"
        )
    for replica_count, pool_size, why in skipped:
        print(f"| {replica_count} | {pool_size} | not measured: {why} | | | |")
    Path("bench/scaleout-last-run.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "mining": mining,
                "node_delay": NODE_DELAY,
                "n": n,
                "results": results,
                "not_measured": skipped,
            },
            indent=2,
        )
        + "\n"
    )
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
