"""Entry point: `python -m depeg_processor [run|check-config|dead-letters|requeue]`.

The only place with side effects at start: it reads the environment (then `.env` in the working
directory), configures logging, builds the Redis and node clients, installs the signal handlers
and starts the threads.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

import redis
from decouple import AutoConfig
from eth_account import Account
from prometheus_client import CollectorRegistry

from . import errors, redis_server, wallets
from .chain import Chain
from .config import DERIVATION_PATH, Settings, load_settings
from .faults import Faults
from .inbound.stream import StreamQueue
from .inbound.untrusted import REDIS_DECODING
from .logs import configure_logging
from .metrics import Metrics
from .records import TxRecords
from .service import Service, StartupError
from .systemd import Notifier
from .wallets import derive_accounts

log = logging.getLogger("depeg_processor")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_STARTUP = 0, 1, 2, 3


def build_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url,
        **REDIS_DECODING,
        socket_timeout=max(10.0, settings.rpc_timeout),
        socket_connect_timeout=5.0,
        health_check_interval=30,
    )


def install_signal_handlers(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: set the stop flag. Second: exit at once."""

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def command_run(settings: Settings) -> int:
    stop = threading.Event()
    install_signal_handlers(stop)
    accounts = derive_accounts(settings.mnemonic, settings.wallets)
    metrics = Metrics(CollectorRegistry())
    service = Service(
        settings=settings,
        redis_client=build_redis(settings),
        chain=Chain.from_url(
            settings.chain_rpc_url, timeout=settings.rpc_timeout, on_error=metrics.rpc_error
        ),
        account=accounts[0],
        accounts=accounts,
        stop=stop,
        metrics=metrics,
        notifier=Notifier.from_environ(os.environ),
        faults=Faults(os.environ.get("DEPEG_PROCESSOR_FAULT") or None),
    )
    try:
        service.serve_monitor()
        if service.prepare():
            service.run()
    except StartupError as error:
        log.critical("cannot start: %s", error)
        return EXIT_STARTUP
    finally:
        service.shutdown()
    log.info("stopped")
    return EXIT_OK


def command_check_config(settings: Settings) -> int:
    """Validate the settings and reach Redis and the node; say what is wrong."""
    account = Account.from_mnemonic(settings.mnemonic, account_path=DERIVATION_PATH)
    print(f"configuration ok; processor wallet {account.address}")
    problems = 0
    try:
        server = redis_server.inspect(build_redis(settings))
        print(f"redis ok ({settings.redis_url.split('@')[-1]}): {server.summary()}")
        for warning in server.warnings:
            print(f"redis WARNING: {warning}")
        for item in server.unchecked:
            print(f"redis NOT CHECKED: {item}")
    except (StartupError, redis.RedisError) as error:
        print(f"redis FAILED: {error}")
        problems += 1
    chain = Chain.from_url(settings.chain_rpc_url, timeout=settings.rpc_timeout)
    try:
        chain_id = chain.chain_id()
        balance = chain.balance(account.address)
        has_code = bool(chain.code(settings.product_address))
        print(f"node ok (chain id {chain_id}); wallet balance {balance} wei")
        if not has_code:
            print(f"product FAILED: no contract at {settings.product_address}")
            problems += 1
        if balance < settings.min_balance:
            print(f"balance WARNING: below PROCESSOR_MIN_BALANCE {settings.min_balance} wei")
        probe = {"from": account.address, "to": account.address, "data": "0x", "gas": "0x5208"}
        try:
            chain.simulate_v1([probe], "pending")
            print("node simulates each batch in one eth_simulateV1 call")
        except errors.ProcessorError as error:
            print(
                f"node NOTE: eth_simulateV1 failed ({error}); each application would be "
                "simulated with an eth_call of its own (about 0.9 JSON-RPC calls more per "
                "application)"
            )
    except errors.ProcessorError as error:
        print(f"node FAILED: {error}")
        problems += 1
    return EXIT_FAILURE if problems else EXIT_OK


def gather_status(settings: Settings) -> dict:
    """What an operator asks first: every wallet of the pool (balance, nonces, what it has in
    flight, who holds its lease), the queue, what was set aside. Each part that cannot be
    reached says why instead of failing the whole report."""
    pool = wallets.pool(
        wallets.derive_accounts(settings.mnemonic, settings.wallets),
        stream=settings.stream_key,
        consumer=settings.consumer,
    )
    report: dict = {"stream": settings.stream_key, "group": settings.group}
    rows = [{"index": w.index, "address": w.address, "consumer": w.consumer} for w in pool]
    chain = Chain.from_url(settings.chain_rpc_url, timeout=settings.rpc_timeout)
    try:
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
        for n, row in enumerate(rows):
            answers = results[3 * n : 3 * n + 3]
            failed = next((a for a in answers if isinstance(a, Exception)), None)
            if failed is not None:
                row["node_error"] = f"{type(failed).__name__}: {failed}"
                continue
            balance, latest, pending = (int(a, 16) for a in answers)
            row.update(balance_wei=balance, nonce_latest=latest, nonce_pending=pending)
    except errors.ProcessorError as error:
        report["node_error"] = str(error)
    client = build_redis(settings)
    try:
        queue = _queue(settings, client)
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
    report["wallets"] = rows
    return report


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


def print_status(report: dict) -> None:
    """The report as a table: the queue's figures, one row per wallet, then what each wallet
    has in flight and why a part could not be reached."""
    pairs = [(key.replace("_", " "), value) for key, value in report.items() if key != "wallets"]
    width = max(len(key) for key, _value in pairs)
    for key, value in pairs:
        print(f"{key:<{width}}  {value if value is not None else '-'}")
    rows = report["wallets"]
    cells = [[title for title, _key in WALLET_COLUMNS]] + [
        [str(row[key]) if row.get(key) is not None else "-" for _title, key in WALLET_COLUMNS]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(WALLET_COLUMNS))]
    print()
    for line in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
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


def command_status(settings: Settings, *, as_json: bool) -> int:
    report = gather_status(settings)
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


def command_dead_letters(settings: Settings, *, count: int, as_json: bool) -> int:
    queue = _queue(settings)
    letters = queue.dead_letters.list(count)
    if as_json:
        print(
            json.dumps(
                [
                    {"id": i, **{k: v for k, v in f.items() if k != "application"}}
                    for i, f in letters
                ],
                indent=2,
            )
        )
        return EXIT_OK
    if not letters:
        print(f"no dead letters in {settings.dead_letter_key}")
    for dead_id, fields in letters:
        print(f"{dead_id}  {fields.get('entityId') or '-':<26}  {fields.get('reason')}")
    return EXIT_OK


def command_requeue(settings: Settings, *, ids: Sequence[str], all_: bool) -> int:
    queue = _queue(settings)
    targets = [i for i, _ in queue.dead_letters.list(10_000)] if all_ else list(ids)
    failed = 0
    for done, dead_id in enumerate(targets, 1):
        try:
            entry_id = queue.dead_letters.restore(dead_id)
            print(
                f"[{done}/{len(targets)}] requeued dead letter {dead_id} as stream entry {entry_id}"
            )
        except (KeyError, ValueError) as error:
            print(f"[{done}/{len(targets)}] {error.args[0]}")
            failed += 1
    return EXIT_FAILURE if failed else EXIT_OK


def _queue(settings: Settings, client: redis.Redis | None = None) -> StreamQueue:
    return StreamQueue(
        client or build_redis(settings),
        stream=settings.stream_key,
        group=settings.group,
        consumer=settings.consumer,
        dead_letter_key=settings.dead_letter_key,
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m depeg_processor",
        description="Relays gasless depeg applications from the web app's Redis stream to the "
        "depeg product. Configured by environment variables (and .env).",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "run",
        help="run the processor (the default)",
        description="Run the processor until SIGTERM/SIGINT.",
    )
    commands.add_parser(
        "check-config",
        help="validate the configuration and connectivity",
        description="Validate the environment, reach Redis and the node; "
        "exit non-zero with the reason if something is wrong.",
    )
    status = commands.add_parser(
        "status",
        help="wallets, queue, in-flight transactions",
        description="Show every wallet of the pool (address, balance, "
        "nonces, transactions in flight, lease holder), "
        "the queue's depth and the number of dead "
        "letters.",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dead = commands.add_parser(
        "dead-letters",
        help="list the dead-lettered applications",
        description="List the applications set aside, with their reasons.",
    )
    dead.add_argument("--count", type=int, default=100, help="at most this many (default 100)")
    dead.add_argument("--json", action="store_true", help="print JSON instead of a table")
    requeue = commands.add_parser(
        "requeue",
        help="put dead-lettered applications back",
        description="Put dead-lettered applications back on the queue after their cause was fixed.",
    )
    requeue.add_argument("ids", nargs="*", help="dead-letter stream ids (see dead-letters)")
    requeue.add_argument("--all", action="store_true", dest="all_", help="requeue all of them")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings(AutoConfig(search_path=os.getcwd()))
    except errors.ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(level=settings.log_level, production=settings.production)
    command = args.command or "run"
    if command == "run":
        return command_run(settings)
    if command == "check-config":
        return command_check_config(settings)
    if command == "status":
        return command_status(settings, as_json=args.json)
    if command == "dead-letters":
        return command_dead_letters(settings, count=args.count, as_json=args.json)
    if command == "requeue":
        if not args.ids and not args.all_:
            print("requeue: name dead-letter ids or use --all", file=sys.stderr)
            return EXIT_CONFIG
        return command_requeue(settings, ids=args.ids, all_=args.all_)
    raise AssertionError(command)


if __name__ == "__main__":
    sys.exit(main())
