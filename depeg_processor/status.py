"""`status`: what an operator asks first, for every wallet of the pool."""

from __future__ import annotations

import json
import time

import redis

from . import errors
from .chain.clients import build_chain_client
from .chain.each_provider import ask_each_provider, blocks_behind
from .chain.relay import relay_name
from .cli import EXIT_FAILURE, EXIT_OK, stream_queue
from .config import Settings
from .signer import open_keys
from .startup import build_redis
from .wallet import pool as wallets
from .wallet.records import TxRecords


def gather_status(settings: Settings, keys: list | None = None) -> dict:
    """What an operator asks first: every wallet of the pool (balance, nonces, what it has in
    flight, who holds its lease), the queue, what was set aside. Each part that cannot be
    reached says why instead of failing the whole report."""
    pool = wallets.pool(
        keys or open_keys(settings),
        stream=settings.stream_key,
        consumer=settings.consumer,
    )
    report: dict = {"stream": settings.stream_key, "group": settings.group}
    rows = [{"index": w.index, "address": w.address, "consumer": w.consumer} for w in pool]
    report["providers"] = _providers(settings)
    report["raw_transactions_to"] = (
        relay_name(settings.chain_send_url) if settings.chain_send_url else "the providers"
    )
    _from_node(settings, pool, rows, report)
    _from_redis(settings, pool, rows, report)
    report["wallets"] = rows
    return report


def _from_node(settings: Settings, pool: list, rows: list[dict], report: dict) -> None:
    """Each wallet's balance and nonces, in one batch."""
    chain = build_chain_client(settings.chain_rpc_urls, timeout=settings.rpc_timeout)
    try:
        chain.agree_on_chain_id()  # every provider's head first: a lagging one is not read
        report["chain_id"] = chain.chain_id()
        results = chain.batch(
            [
                call
                for w in pool
                for call in (
                    ("eth_getBalance", [w.address, "latest"]),
                    ("eth_getTransactionCount", [w.address, "latest"]),
                    ("eth_getTransactionCount", [w.address, "pending"]),
                )
            ]
        )
    except errors.ProcessorError as error:
        report["node_error"] = str(error)
        return
    for n, row in enumerate(rows):
        answers = results[3 * n : 3 * n + 3]
        failed = next((a for a in answers if isinstance(a, Exception)), None)
        if failed is not None:
            row["node_error"] = f"{type(failed).__name__}: {failed}"
            continue
        balance, latest, pending = (int(a, 16) for a in answers)
        row.update(balance_wei=balance, nonce_latest=latest, nonce_pending=pending)


def _providers(settings: Settings) -> list[dict]:
    """Each provider of CHAIN_RPC_URL as it answers now: head, lag behind the best of them,
    latency, failed calls (named by index and host, never by URL)."""
    reports = ask_each_provider(settings.chain_rpc_urls, timeout=settings.rpc_timeout)
    lags = blocks_behind(reports)
    return [
        {
            "index": r.index,
            "provider": r.name,
            "chain_id": r.chain_id,
            "head": r.head,
            "lag_blocks": lags.get(r.index),
            "latency_ms": None if r.latency is None else round(r.latency * 1000),
            "errors": r.errors,
            "error": r.error,
        }
        for r in reports
    ]


def _from_redis(settings: Settings, pool: list, rows: list[dict], report: dict) -> None:
    """Each wallet's transactions in flight and lease holder, and the queue's figures."""
    client = build_redis(settings)
    try:
        queue = stream_queue(settings, client)
        backlog = queue.backlog()
        by_consumer = queue.pending_by_consumer()
        now = time.time()
        for wallet, row in zip(pool, rows):
            records = TxRecords(client, prefix=wallet.prefix)
            nonces = records.inflight_nonces()
            in_flight = records.get_many(list(nonces))
            row.update(
                in_flight_count=len(nonces),
                lease_holder=client.get(wallet.lease_key),
                unacknowledged=by_consumer.get(wallet.consumer, 0),
                in_flight=[
                    {
                        "entityId": r.entity_id,
                        "nonce": r.nonce,
                        "txHash": r.tx_hash,
                        "maxFeePerGas": r.max_fee_per_gas,
                        "ageSeconds": round(now - r.signed_at),
                    }
                    for r in sorted(in_flight.values(), key=lambda r: r.nonce)
                ],
            )
        report.update(
            stream_length=client.xlen(settings.stream_key),
            unacknowledged=backlog.group_pending,
            not_yet_delivered=backlog.lag,
            dead_letters=client.xlen(settings.dead_letter_key),
        )
    except redis.RedisError as error:
        report["redis_error"] = f"{type(error).__name__}: {error}"


WALLET_COLUMNS = (
    ("#", "index"),
    ("address", "address"),
    ("balance wei", "balance_wei"),
    ("nonce latest", "nonce_latest"),
    ("nonce pending", "nonce_pending"),
    ("in flight", "in_flight_count"),
    ("unacknowledged", "unacknowledged"),
    ("lease holder", "lease_holder"),
)


PROVIDER_COLUMNS = (
    ("provider", "provider"),
    ("chain id", "chain_id"),
    ("head", "head"),
    ("lag", "lag_blocks"),
    ("latency ms", "latency_ms"),
    ("errors", "errors"),
)


def print_table(rows: list[dict], columns: tuple[tuple[str, str], ...]) -> None:
    cells = [[title for title, _key in columns]] + [
        [str(row[key]) if row.get(key) is not None else "-" for _title, key in columns]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    print()
    for line in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def print_status(report: dict) -> None:
    """The report as a table: the queue's figures, the providers, one row per wallet, then
    what each wallet has in flight and why a part could not be reached."""
    tables = ("wallets", "providers")
    pairs = [(key.replace("_", " "), value) for key, value in report.items() if key not in tables]
    width = max(len(key) for key, _value in pairs)
    for key, value in pairs:
        print(f"{key:<{width}}  {value if value is not None else '-'}")
    print_table(report["providers"], PROVIDER_COLUMNS)
    for row in report["providers"]:
        if row.get("error"):
            print(f"provider {row['provider']} FAILED: {row['error']}")
    rows = report["wallets"]
    print_table(rows, WALLET_COLUMNS)
    for row in rows:
        if row.get("node_error"):
            print(f"wallet {row['index']}: node FAILED: {row['node_error']}")
        flights = row.get("in_flight", [])
        if flights:
            print(f"wallet {row['index']} {row['address']}: {len(flights)} in flight")
        for item in flights:
            print(
                f"  nonce {item['nonce']:<6} {item['entityId']:<26} {item['txHash']}  "
                f"{item['ageSeconds']}s"
            )


def command_status(settings: Settings, *, as_json: bool, keys: list | None = None) -> int:
    report = gather_status(settings, keys)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report)
    failed = (
        "node_error" in report
        or "redis_error" in report
        or any("node_error" in row for row in report["wallets"])
    )
    return EXIT_FAILURE if failed else EXIT_OK
