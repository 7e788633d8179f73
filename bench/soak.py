"""Soak: does the processor's memory stay flat while applications keep coming?

A fresh redis-server and anvil (one block a second, like a real chain), the processor in its own
process, and a writer that enqueues applications the web app's way at a steady rate for a
while. Every tenth application is hostile (a broken signature, a field that is not a number, a
huge field, bytes that are not UTF-8, an entity id that is not an id), so the dead-letter paths
run as often as the good ones. The processor's RSS is sampled every `--sample` seconds; the
report is the RSS after warm-up, at the end, the peak, and the growth per hour of the second
half fitted by least squares.

A day at 1 application/s is 86,400 applications; the default (10/s for 10 minutes, 6,000) runs
the same code paths ten times as fast.

    python -m bench.soak                        # 10 applications/s for 600 s
    python -m bench.soak --rate 1 --seconds 86400
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import redis
from eth_account import Account

from bench.throughput import bench_settings, start_processor
from devnet.nodes import TEST_MNEMONIC, Anvil, RedisServer
from devnet.product import Product
from devnet.webapp import WebApp, ulid

Account.enable_unaudited_hdwallet_features()
OWNER = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/9")
GWEI = 10**9


def hostile(webapp: WebApp, raw: redis.Redis, index: int) -> None:
    """One of five kinds of bad input, in turn."""
    kind = index % 5
    if kind == 0:
        webapp.apply(signature="0x" + "11" * 65)
    elif kind == 1:
        webapp.apply(timestamp=f"ERROR:AB-{index}")
    elif kind == 2:
        webapp.apply(bundleId="7" * 70_000)
    elif kind == 3:
        entity_id = ulid()
        raw.hset(f"PendingApplication:{entity_id}".encode(), mapping={b"policyHolder": b"\xff\xfe"})
        raw.xadd(b"application:signatures", {b"entityId": entity_id.encode()})
    else:
        entity_id = f"bad id {index}:\n"
        raw.hset(f"PendingApplication:{entity_id}", mapping=webapp.application())
        raw.xadd("application:signatures", {"entityId": entity_id})


def fit_slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB): MiB per second."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (m - mean_m) for t, m in points) / var if var else 0.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="applications per second")
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to enqueue")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args(argv)

    with (
        RedisServer() as redis_server,
        Anvil(block_time=1, extra_args=("--prune-history", "128")) as anvil,
    ):
        product = Product.deploy(anvil.url, OWNER)
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        raw = redis.Redis.from_url(redis_server.url)
        webapp = WebApp(client, int(anvil.rpc("eth_chainId"), 16), product.message_helper())
        settings = dataclasses.replace(
            bench_settings(redis_server, anvil.url, product), min_confirmations=2, log_level="ERROR"
        )
        process, parent = start_processor(settings)

        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        sent = good = 0
        next_sample = started
        while (now := time.monotonic()) - started < args.seconds:
            while sent < (now - started) * args.rate:
                if sent % 10 == 9:
                    hostile(webapp, raw, sent)
                else:
                    webapp.apply()
                    good += 1
                sent += 1
            if now >= next_sample:
                parent.send("rss_now")
                samples.append((now - started, parent.recv() / 1024))
                print(
                    f"t={now - started:6.0f}s enqueued={sent} rss={samples[-1][1]:.1f} MiB",
                    flush=True,
                )
                next_sample += args.sample
            time.sleep(min(0.05, 1 / args.rate))
        print("soak: waiting for the queue to drain ...", flush=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and (
            client.xpending("application:signatures", "depeg-backend-processor")["pending"]
            or client.zcard("application:signatures:inflight")
            or product.application_count() < good
        ):
            time.sleep(0.5)
        parent.send("rss_now")
        end_rss = parent.recv() / 1024
        parent.send("stop")
        report = parent.recv()
        process.join(30)
        dead = client.xlen("application:signatures:dead")

    second_half = [(t, m) for t, m in samples if t >= args.seconds / 2]
    warm = next((m for t, m in samples if t >= min(60.0, args.seconds / 4)), samples[0][1])
    result = {
        "rate_per_second": args.rate,
        "seconds": args.seconds,
        "enqueued": sent,
        "good": good,
        "dead_lettered": dead,
        "rss_after_warmup_mib": round(warm, 1),
        "rss_end_mib": round(end_rss, 1),
        "peak_rss_mib": round(report["peak_rss_kib"] / 1024, 1),
        "growth_mib_per_hour_second_half": round(fit_slope(second_half) * 3600, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))
    Path("bench/last-soak.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
