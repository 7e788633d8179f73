"""The operator commands beside `run`: check-config, dead-letters, requeue and release-holder,
and the command line's parser. Each builds the clients it needs from the settings it is given."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

import redis

from . import errors, redis_server
from .chain.clients import build_chain_client
from .chain.relay import relay_name
from .chain.rpc import NodeClient
from .chain.simulation import Simulator
from .config import Settings
from .durable import Durability
from .errors import StartupError
from .inbound.application import checked_address
from .inbound.stream import StreamQueue
from .signer import open_keys
from .startup import build_redis
from .wallet.holders import Holders

if TYPE_CHECKING:
    import argparse

EXIT_OK, EXIT_FAILURE = 0, 1


def command_check_config(settings: Settings, keys: list | None = None) -> int:
    """Validate the settings (and open the keys, unless given) and reach Redis and the node;
    say what is wrong."""
    account = (keys or open_keys(settings))[0]
    print(f"configuration ok; processor wallet {account.address}")
    problems = 0
    try:
        server = redis_server.inspect(build_redis(settings))
        print(f"redis ok ({settings.redis_url.split('@')[-1]}): {server.summary()}")
        for warning in server.warnings:
            print(f"redis WARNING: {warning}")
        for item in server.unchecked:
            print(f"redis NOT CHECKED: {item}")
        durability = Durability.of(build_redis(settings), timeout=settings.durable_wait)
        print(f"redis durability: {durability.describe()}")
    except (StartupError, redis.RedisError) as error:
        print(f"redis FAILED: {error}")
        problems += 1
    probe = {"from": account.address, "to": account.address, "data": "0x", "gas": "0x5208"}
    problems += check_providers(settings, probe)
    problems += check_relay(settings)
    chain = build_chain_client(settings.chain_rpc_urls, timeout=settings.rpc_timeout)
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
        try:
            Simulator(chain=chain).simulate_v1([probe], "pending")
            print(
                "node simulates each batch in one eth_simulateV1 call, after a replay of "
                "every transaction the pool has in flight and the latest block does not hold; "
                f"at most {settings.simulation_gas_cap} gas a request "
                "(CHAIN_SIMULATION_GAS_CAP: the node's simulation gas cap, lowered by itself "
                "when the node refuses a simulation over it)"
            )
        except errors.ProcessorError as error:
            print(
                f"node NOTE: eth_simulateV1 failed ({error}); each application would be "
                "simulated with an eth_call of its own against the pending block (about 0.9 "
                "JSON-RPC calls more per application), so the pool's gas in flight is held "
                "within one block's gas limit and a batch sends one application per bundle "
                "and policy holder"
            )
    except errors.ProcessorError as error:
        print(f"node FAILED: {error}")
        problems += 1
    return EXIT_FAILURE if problems else EXIT_OK


def check_providers(settings: Settings, probe: dict) -> int:
    """Reach each provider of CHAIN_RPC_URL and say what it offers; the number of problems
    (one that does not answer, providers on different chains)."""
    from .chain.each_provider import ask_each_provider  # check-config's and status's alone

    problems = 0
    reports = ask_each_provider(
        settings.chain_rpc_urls, timeout=settings.rpc_timeout, transfer=probe
    )
    for r in reports:
        if r.chain_id is None or r.head is None:
            print(f"provider {r.name} FAILED: {r.error}")
            problems += 1
            continue
        print(
            f"provider {r.name} ok: chain id {r.chain_id}, head {r.head}, "
            f"eth_simulateV1 {_yes(r.simulates)}, eth_getBlockReceipts {_yes(r.block_receipts)}"
        )
    chain_ids = {r.chain_id for r in reports if r.chain_id is not None}
    if len(chain_ids) > 1:
        print(
            "providers FAILED: they serve different chains: "
            + ", ".join(f"{r.name} chain id {r.chain_id}" for r in reports if r.chain_id)
        )
        problems += 1
    return problems


def check_relay(settings: Settings) -> int:
    """With CHAIN_SEND_URL: say where raw transactions go, and whether the relay serves the
    providers' chain (one that answers no eth_chainId is noted, not failed: some answer
    nothing but raw transactions). The number of problems."""
    if not settings.chain_send_url:
        print("raw transactions go to the providers of CHAIN_RPC_URL (no CHAIN_SEND_URL)")
        return 0
    name = relay_name(settings.chain_send_url)
    relay = NodeClient(url=settings.chain_send_url, timeout=settings.rpc_timeout, name=name)
    reads = build_chain_client(settings.chain_rpc_urls, timeout=settings.rpc_timeout)
    try:
        chain_id = relay.chain_id()
    except errors.ProcessorError as error:
        print(f"{name} NOTE: no chain id ({error}); raw transactions go there alone")
        return 0
    try:
        expected = reads.chain_id()
    except errors.ProcessorError:
        expected = chain_id
    if chain_id != expected:
        print(f"{name} FAILED: serves chain id {chain_id}, the providers {expected}")
        return 1
    print(f"{name} ok (chain id {chain_id}): raw transactions go there alone, reads never")
    return 0


def _yes(offered: bool | None) -> str:
    return "yes" if offered else "no"


def command_dead_letters(settings: Settings, *, count: int, as_json: bool) -> int:
    queue = stream_queue(settings)
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
    queue = stream_queue(settings)
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


def command_release_holder(settings: Settings, *, holder: str) -> int:
    """Lift a policy holder's hold (see wallet.holders) and say what it held; its applications
    set aside meanwhile go back with `requeue` (holder_held letters name the holder)."""
    if checked_address(holder) is None:
        print(f"release-holder: {holder!r} is not an address")
        return EXIT_FAILURE
    holders = Holders(build_redis(settings), stream=settings.stream_key)
    hold = holders.release_hold(holder)
    if hold is None:
        print(f"policy holder {holder.lower()} is not held")
        return EXIT_OK
    print(
        f"released policy holder {hold.holder}: it was held since application "
        f"{hold.entity_id}'s transaction {hold.tx_hash} reverted on chain in block "
        f"{hold.block} ({hold.reason}); requeue its holder_held dead letters to send them"
    )
    return EXIT_OK


def stream_queue(settings: Settings, client: redis.Redis | None = None) -> StreamQueue:
    return StreamQueue(
        client or build_redis(settings),
        stream=settings.stream_key,
        group=settings.group,
        consumer=settings.consumer,
        dead_letter_key=settings.dead_letter_key,
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace | SimpleNamespace:
    """The command and its options. A start as the service starts it (no arguments: `run`)
    builds no parser: argparse and the commands' help are an operator's command's alone."""
    if not argv:
        return SimpleNamespace(command=None)
    return parser().parse_args(argv)


def parser() -> argparse.ArgumentParser:
    import argparse  # a plain start parses nothing (parse_args)

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
    release = commands.add_parser(
        "release-holder",
        help="lift a policy holder's hold",
        description="Lift the hold on a policy holder whose application's transaction reverted "
        "on chain (HOLDER_HOLD_SECONDS); then requeue its dead letters.",
    )
    release.add_argument("holder", help="the policy holder's address")
    return top
