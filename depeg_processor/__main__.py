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
from typing import Optional, Sequence

import redis
from decouple import AutoConfig
from prometheus_client import CollectorRegistry
from eth_account import Account

from . import errors, redis_server
from .chain import Chain
from .config import DERIVATION_PATH, Settings, load_settings
from .faults import Faults
from .logs import configure_logging
from .metrics import Metrics
from .queue import StreamQueue
from .records import TxRecords
from .service import Service, StartupError
from .systemd import Notifier
from .untrusted import REDIS_DECODING
from .wallets import derive_accounts

log = logging.getLogger("depeg_processor")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_STARTUP = 0, 1, 2, 3


def build_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, **REDIS_DECODING,
                                socket_timeout=max(10.0, settings.rpc_timeout),
                                socket_connect_timeout=5.0, health_check_interval=30)


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
    service = Service(settings=settings, redis_client=build_redis(settings),
                      chain=Chain.from_url(settings.chain_rpc_url, timeout=settings.rpc_timeout,
                                           on_error=metrics.rpc_error),
                      account=accounts[0], accounts=accounts, stop=stop, metrics=metrics,
                      notifier=Notifier.from_environ(os.environ),
                      faults=Faults(os.environ.get("DEPEG_PROCESSOR_FAULT") or None))
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
    except errors.ProcessorError as error:
        print(f"node FAILED: {error}")
        problems += 1
    return EXIT_FAILURE if problems else EXIT_OK


def gather_status(settings: Settings) -> dict:
    """What an operator asks first: the wallet, the queue, what is in flight, what was set
    aside. Each part that cannot be reached says why instead of failing the whole report."""
    account = Account.from_mnemonic(settings.mnemonic, account_path=DERIVATION_PATH)
    report: dict = {"wallet": account.address, "stream": settings.stream_key,
                    "group": settings.group}
    chain = Chain.from_url(settings.chain_rpc_url, timeout=settings.rpc_timeout)
    try:
        report["chain_id"] = chain.chain_id()
        report["balance_wei"] = chain.balance(account.address)
        report["nonce_latest"] = chain.nonce(account.address, "latest")
        report["nonce_pending"] = chain.nonce(account.address, "pending")
    except errors.ProcessorError as error:
        report["node_error"] = str(error)
    client = build_redis(settings)
    try:
        queue = _queue(settings, client)
        records = TxRecords(client, prefix=settings.stream_key)
        pending, lag = queue.group_info()
        in_flight = records.get_many(list(records.inflight_nonces()))
        now = time.time()
        report.update(
            stream_length=client.xlen(settings.stream_key), unacknowledged=pending,
            not_yet_delivered=lag, dead_letters=client.xlen(settings.dead_letter_key),
            lease_holder=client.get(f"{settings.stream_key}:lease:{account.address}"),
            in_flight=[{"entityId": r.entity_id, "nonce": r.nonce, "txHash": r.tx_hash,
                        "maxFeePerGas": r.max_fee_per_gas, "ageSeconds": round(now - r.signed_at)}
                       for r in sorted(in_flight.values(), key=lambda r: r.nonce)])
    except redis.RedisError as error:
        report["redis_error"] = f"{type(error).__name__}: {error}"
    return report


def command_status(settings: Settings, *, as_json: bool) -> int:
    report = gather_status(settings)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        rows = [(key.replace("_", " "), value) for key, value in report.items()
                if key != "in_flight"]
        width = max(len(key) for key, _value in rows)
        for key, value in rows:
            print(f"{key:<{width}}  {value if value is not None else '-'}")
        flights = report.get("in_flight", [])
        print(f"{'in flight':<{width}}  {len(flights)}")
        for item in flights:
            print(f"  nonce {item['nonce']:<6} {item['entityId']:<26} {item['txHash']}  "
                  f"{item['ageSeconds']}s")
    return EXIT_FAILURE if "node_error" in report or "redis_error" in report else EXIT_OK


def command_dead_letters(settings: Settings, *, count: int, as_json: bool) -> int:
    queue = _queue(settings)
    letters = queue.dead_letters(count)
    if as_json:
        print(json.dumps([{"id": i, **{k: v for k, v in f.items() if k != "application"}}
                          for i, f in letters], indent=2))
        return EXIT_OK
    if not letters:
        print(f"no dead letters in {settings.dead_letter_key}")
    for dead_id, fields in letters:
        print(f"{dead_id}  {fields.get('entityId') or '-':<26}  {fields.get('reason')}")
    return EXIT_OK


def command_requeue(settings: Settings, *, ids: Sequence[str], all_: bool) -> int:
    queue = _queue(settings)
    targets = [i for i, _ in queue.dead_letters(10_000)] if all_ else list(ids)
    failed = 0
    for done, dead_id in enumerate(targets, 1):
        try:
            entry_id = queue.requeue(dead_id)
            print(f"[{done}/{len(targets)}] requeued dead letter {dead_id} as stream entry {entry_id}")
        except (KeyError, ValueError) as error:
            print(f"[{done}/{len(targets)}] {error.args[0]}")
            failed += 1
    return EXIT_FAILURE if failed else EXIT_OK


def _queue(settings: Settings, client: Optional[redis.Redis] = None) -> StreamQueue:
    return StreamQueue(client or build_redis(settings), stream=settings.stream_key,
                       group=settings.group, consumer=settings.consumer,
                       dead_letter_key=settings.dead_letter_key)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m depeg_processor",
        description="Relays gasless depeg applications from the web app's Redis stream to the "
                    "depeg product. Configured by environment variables (and .env).")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="run the processor (the default)",
                        description="Run the processor until SIGTERM/SIGINT.")
    commands.add_parser("check-config", help="validate the configuration and connectivity",
                        description="Validate the environment, reach Redis and the node; "
                                    "exit non-zero with the reason if something is wrong.")
    status = commands.add_parser("status", help="wallet, queue, in-flight transactions",
                                 description="Show the wallet's address, balance and nonce, the "
                                             "queue's depth, the transactions in flight and the "
                                             "number of dead letters.")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dead = commands.add_parser("dead-letters", help="list the dead-lettered applications",
                               description="List the applications set aside, with their reasons.")
    dead.add_argument("--count", type=int, default=100, help="at most this many (default 100)")
    dead.add_argument("--json", action="store_true", help="print JSON instead of a table")
    requeue = commands.add_parser("requeue", help="put dead-lettered applications back",
                                  description="Put dead-lettered applications back on the queue "
                                              "after their cause was fixed.")
    requeue.add_argument("ids", nargs="*", help="dead-letter stream ids (see dead-letters)")
    requeue.add_argument("--all", action="store_true", dest="all_", help="requeue all of them")
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
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
