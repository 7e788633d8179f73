"""Throughput of the processor against the node's own limit, in one run per N.

For each N: a fresh redis-server and anvil (automine) behind a counting JSON-RPC proxy; N
applications written the web app's way (EIP-712 signed, HSET + XADD) as a backlog; then
1. the limit: N application transactions from another wallet, signed before the clock starts,
   sent back to back with eth_sendRawTransaction;
2. the processor (its own process): time from its start until all N are mined, applications per
   second, JSON-RPC calls and Redis round trips per application (until all are purged), peak RSS;
3. the ratio processor / limit.

Then, once, the idle cost and the latency: the processor with an empty queue for a minute
(JSON-RPC calls counted), then 30 applications that arrive one by one, each timed from its
XADD to its `transactionHash` in the application hash (median and worst).

Each run also reports the processor's simulations: the replay's depth (transactions in flight
replayed before a batch's calls in its `eth_simulateV1`; median and largest) and the cost of
one simulation (its time, the time per call it holds, its answer's size). The processor waits
for BENCH_CONFIRMATIONS confirmations (default 1; mainnet's 6 keep more records in flight).

The node mines a block every BENCH_BLOCK_TIME seconds (default 0.25, a fast chain: blocks hold
many transactions, as on a real chain under load); BENCH_BLOCK_TIME=0 uses automine, one block
per transaction.

    python -m bench.throughput            # N = 100, 1000, 10000
    python -m bench.throughput 1000       # one N
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from eth_account import Account

from bench import child
from bench.feed import GWEI, enqueue, measure_limit, wait
from depeg_processor.config import DERIVATION_PATH
from devnet.nodes import TEST_MNEMONIC, Anvil, RedisServer
from devnet.product import Product
from devnet.proxy import RpcProxy
from devnet.webapp import WebApp

Account.enable_unaudited_hdwallet_features()
PROCESSOR = Account.from_mnemonic(TEST_MNEMONIC, account_path=DERIVATION_PATH)
# the product's owner (and the limit's sender) use accounts clear of a pool's first wallets
OWNER = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/9")
ANVIL_ARGS = ("--prune-history", "128")
BLOCK_TIME = float(os.environ.get("BENCH_BLOCK_TIME", "0.25")) or None
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "60"))
CONFIRMATIONS = int(os.environ.get("BENCH_CONFIRMATIONS", "1"))
LATENCY_SAMPLES = 30


def bench_settings(redis_server: RedisServer, rpc_url: str, product: Product):
    from depeg_processor.config import Settings

    settings = Settings(
        redis_url=redis_server.url,
        chain_rpc_url=rpc_url,
        product_address=product.address,
        mnemonic=TEST_MNEMONIC,
        min_confirmations=CONFIRMATIONS,
        node_env="production",
        log_level="WARNING",
        port=0,
        host="127.0.0.1",
        min_balance=10**17,
        alert_balance=10**17,
        max_fee_per_gas=100 * GWEI,
        max_non_ack_pending=10**9,
    )
    if os.environ.get("BENCH_READ_COUNT"):  # the batch size; the default is the service's
        settings = dataclasses.replace(settings, read_count=int(os.environ["BENCH_READ_COUNT"]))
    if os.environ.get("BENCH_MAX_IN_FLIGHT"):  # the cap per wallet; the default is the service's
        cap = int(os.environ["BENCH_MAX_IN_FLIGHT"])
        settings = dataclasses.replace(settings, max_in_flight=cap)
    return settings


def start_processor(settings) -> tuple:
    """The processor in a fresh interpreter; returns (process, pipe) once it is ready."""
    fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    context = multiprocessing.get_context("spawn")
    parent, child_end = context.Pipe()
    process = context.Process(target=child.run, args=(fields, child_end), name="processor")
    process.start()
    if parent.recv() != "ready":
        raise SystemExit("bench: the processor did not start")
    return process, parent


def measure_processor(
    redis_server: RedisServer,
    proxy: RpcProxy,
    anvil: Anvil,
    product: Product,
    client: redis.Redis,
    n: int,
) -> dict:
    before = product.application_count()
    process, parent = start_processor(bench_settings(redis_server, proxy.url, product))
    proxy.reset_counts()
    started = time.perf_counter()
    wait(lambda: product.application_count() - before >= n, 3600, "all mined", interval=0.1)
    mined = time.perf_counter() - started
    wait(
        lambda: (
            client.zcard("application:signatures:inflight") == 0
            and client.xpending("application:signatures", "depeg-backend-processor")["pending"] == 0
        ),
        3600,
        "all purged",
        interval=0.1,
    )
    rpc_calls = proxy.total_calls()
    rpc_by_method = dict(proxy.calls)
    parent.send("stop")
    report = parent.recv()
    process.join(30)
    return {
        "seconds": mined,
        "per_second": n / mined,
        "rpc_per_app": rpc_calls / n,
        "rpc_by_method": {k: round(v / n, 3) for k, v in sorted(rpc_by_method.items())},
        "redis_round_trips_per_app": report["redis_round_trips"] / n,
        "peak_rss_mib": report["peak_rss_kib"] / 1024,
        "simulations": child.simulation_figures(report["simulations"], report["replays"]),
    }


@contextlib.contextmanager
def bench_chain(delay: float = 0.0) -> Iterator[tuple]:
    """What every measurement runs against, fresh: redis-server; anvil (a block every
    BLOCK_TIME s, ANVIL_ARGS) behind a counting proxy that answers `delay` s late; the product
    deployed from account 9 (no pool wallet's nonce is touched); a Redis client; the web app's
    writer. Yields (redis_server, anvil, proxy, product, client, webapp)."""
    with (
        RedisServer() as redis_server,
        Anvil(block_time=BLOCK_TIME, extra_args=ANVIL_ARGS) as anvil,
        RpcProxy(anvil.url, delay=delay) as proxy,
    ):
        product = Product.deploy(anvil.url, OWNER)
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        webapp = WebApp(client, int(anvil.rpc("eth_chainId"), 16), product.message_helper())
        yield redis_server, anvil, proxy, product, client, webapp


def measure_idle_and_latency() -> dict:
    """JSON-RPC calls in an idle minute, then enqueue-to-transactionHash of applications that
    arrive one by one at an idle processor."""
    with bench_chain() as (redis_server, anvil, proxy, product, client, webapp):
        applications = [webapp.application() for _ in range(LATENCY_SAMPLES)]
        process, parent = start_processor(bench_settings(redis_server, proxy.url, product))
        time.sleep(5)  # past start-up's own calls
        proxy.reset_counts()
        print(f"idle: counting JSON-RPC calls for {IDLE_SECONDS:.0f}s ...", flush=True)
        time.sleep(IDLE_SECONDS)
        idle_calls = proxy.total_calls() * 60 / IDLE_SECONDS
        idle_by_method = dict(proxy.calls)
        latencies = []
        for fields in applications:
            time.sleep(1.0)  # one by one, each to an idle processor
            started = time.perf_counter()
            entity_id = webapp.submit(fields)
            key = f"PendingApplication:{entity_id}"
            while not client.hget(key, "transactionHash"):
                if time.perf_counter() - started > 60:
                    raise SystemExit("bench: no transactionHash within 60 s")
                time.sleep(0.001)
            latencies.append(time.perf_counter() - started)
        parent.send("stop")
        parent.recv()
        process.join(30)
    latencies.sort()
    result = {
        "idle_calls_per_minute": idle_calls,
        "idle_by_method": idle_by_method,
        "latency_median_ms": 1000 * latencies[len(latencies) // 2],
        "latency_worst_ms": 1000 * latencies[-1],
    }
    print(
        f"idle: {idle_calls:.1f} JSON-RPC calls a minute {idle_by_method}; enqueue to "
        f"transactionHash: median {result['latency_median_ms']:.0f} ms, worst "
        f"{result['latency_worst_ms']:.0f} ms over {len(latencies)}",
        flush=True,
    )
    return result


def run(n: int) -> dict:
    # anvil keeps every block's state in memory by default and slows down block after block
    # (at N=10,000 it passed 6 GB); the benchmark keeps the last states only, for both runs.
    with bench_chain() as (redis_server, anvil, proxy, product, client, webapp):
        print(f"N={n}: signing {2 * n} applications as the web app does ...", flush=True)
        limit_apps = [webapp.application() for _ in range(n)]
        processor_apps = [webapp.application() for _ in range(n)]

        limit = measure_limit(anvil, product, limit_apps)
        print(f"N={n}: limit {limit:.2f}s ({n / limit:.0f} tx/s)", flush=True)
        enqueue(client, processor_apps)
        result = measure_processor(redis_server, proxy, anvil, product, client, n)
        result.update(
            n=n,
            limit_seconds=limit,
            limit_per_second=n / limit,
            ratio=result["per_second"] / (n / limit),
        )
        print(
            f"N={n}: processor {result['seconds']:.2f}s ({result['per_second']:.0f}/s), "
            f"ratio {result['ratio']:.2f}, {result['rpc_per_app']:.2f} RPC/app "
            f"{result['rpc_by_method']}, {result['redis_round_trips_per_app']:.2f} Redis round "
            f"trips/app, peak RSS {result['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
        sims = result["simulations"]
        print(
            f"N={n}: {sims['count']} simulations at {CONFIRMATIONS} confirmation(s): replay "
            f"depth median {sims['replay_depth_median']}, largest {sims['replay_depth_max']}; "
            f"{sims['calls_median']} calls each (median), {sims['ms_median']:.1f} ms "
            f"(largest {sims['ms_max']:.1f}), {sims['ms_per_call']:.2f} ms a call, answer "
            f"{sims['answer_kib_median']:.1f} KiB",
            flush=True,
        )
        return result


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [100, 1000, 10000]
    results = [run(n) for n in sizes]
    idle = measure_idle_and_latency()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    mining = f"a block every {BLOCK_TIME} s" if BLOCK_TIME else "automine"
    mining += f", {CONFIRMATIONS} confirmation(s)"
    print(
        f"\nmachine: {machine}; anvil {mining} ({' '.join(ANVIL_ARGS)}); processor, node "
        f"and Redis on one host\n"
    )
    print(
        "| N | limit (tx/s) | processor (apps/s) | processor / limit | JSON-RPC calls / app "
        "| Redis round trips / app | peak RSS | replay depth (median, largest) "
        "| one simulation (median) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['n']:,} | {r['limit_per_second']:.0f} | {r['per_second']:.0f} | "
            f"{r['ratio']:.0%} | {r['rpc_per_app']:.2f} | {r['redis_round_trips_per_app']:.2f} "
            f"| {r['peak_rss_mib']:.0f} MiB | {r['simulations']['replay_depth_median']}, "
            f"{r['simulations']['replay_depth_max']} | {r['simulations']['ms_median']:.1f} ms |"
        )
    print("\n| idle JSON-RPC calls / minute | enqueue → transactionHash, median | worst |")
    print("|---:|---:|---:|")
    print(
        f"| {idle['idle_calls_per_minute']:.1f} | {idle['latency_median_ms']:.0f} ms | "
        f"{idle['latency_worst_ms']:.0f} ms |"
    )
    Path("bench/last-run.json").write_text(
        json.dumps(
            {"machine": machine, "mining": mining, "results": results, "idle": idle}, indent=2
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
