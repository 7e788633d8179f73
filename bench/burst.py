"""A depeg burst into full blocks: how many blocks 200 applications take against what the
chain's capacity needs.

A fresh redis-server and anvil mining a block a second. One application goes through first, to
learn the gas limit the processor gives each transaction; then the block gas limit is set so
that a block holds PER_BLOCK of them, the next block's base fee to 10 gwei, and N applications
are enqueued at once. Counted: the blocks from the first one holding one of them to the last,
against ceil(N / PER_BLOCK); the base fee of each block; reverted transactions; replacements.
Run as the processor prices ("for the wait") at the default cap on transactions in flight
(PROCESSOR_MAX_IN_FLIGHT 16), at twice it, and with the cap above the burst (as before there
was one), then once with the earlier flat pricing (max fee = 2 x base fee + tip for every
transaction; the receipt watcher as it is now, which leaves a pending transaction that covers
the base fee alone while the wallet's line moves), the cap above the burst. The cap's cost: one
wallet has at most that many transactions unmined, and sees them mined at the watcher's pace
(RECEIPT_POLL_INTERVAL, 2 s), so it sends at most cap / 2 s.

    python -m bench.burst            # N = 200, a block holds 10
    python -m bench.burst 400 20
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
import time
from collections.abc import Callable

import redis
from eth_account import Account
from prometheus_client import CollectorRegistry

from depeg_processor.chain.rpc import NodeClient
from depeg_processor.config import DERIVATION_PATH, Settings
from depeg_processor.inbound.untrusted import REDIS_DECODING
from depeg_processor.metrics import Metrics
from depeg_processor.service import Service
from depeg_processor.startup import build_runtime
from devnet.nodes import TEST_MNEMONIC, Anvil, RedisServer
from devnet.product import Product
from devnet.webapp import WebApp

Account.enable_unaudited_hdwallet_features()
PROCESSOR = Account.from_mnemonic(TEST_MNEMONIC, account_path=DERIVATION_PATH)
OWNER = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/1")
GWEI = 10**9
SETTINGS = dict(max_fee_per_gas=1000 * GWEI, max_priority_fee_per_gas=GWEI)


@dataclasses.dataclass(frozen=True)
class Block:
    number: int
    base_fee: int
    ours: int  # the burst's transactions in it


@dataclasses.dataclass(frozen=True)
class BurstResult:
    applications: int
    per_block: int  # the burst's transactions a block holds (gas limit / gas used)
    blocks: list[Block]  # from the first block with one of them to the last
    landed: int  # the burst's transactions mined
    reverted: int
    replaced: float  # fee bumps counted by the processor

    @property
    def needed(self) -> int:
        return math.ceil(self.applications / self.per_block)

    @property
    def used(self) -> int:
        return len(self.blocks)

    @property
    def ratio(self) -> float:
        return self.used / self.needed

    def table(self) -> str:
        return "\n".join(
            f"block {b.number}: base fee {b.base_fee / GWEI:.2f} gwei, {b.ours} of the burst"
            for b in self.blocks
        )


def wait(predicate: Callable[[], object], what: str, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return value


def flat_pricing(service: Service) -> None:
    """The pricing before the wait was priced: every transaction at 2 x base fee + tip."""
    fees = service.wallets[0].ctx.shared.fees
    fees.for_wait = lambda market, *, gas, backlog, count: [market] * count


def run_burst(
    *,
    anvil: Anvil,
    client: redis.Redis,
    webapp: WebApp,
    product: Product,
    start: Callable[..., Service],
    count: int = 200,
    per_block: int = 10,
    base_fee: int = 10 * GWEI,
    max_in_flight: int | None = None,
) -> BurstResult:
    """The scenario on a node mining at intervals; `start(**settings)` runs the processor.
    `max_in_flight`: PROCESSOR_MAX_IN_FLIGHT (None: the default)."""
    warm_up = [webapp.apply() for _ in range(2)]  # the first one writes fresh storage
    cap = {} if max_in_flight is None else {"max_in_flight": max_in_flight}
    service = start(**SETTINGS, **cap)
    sent = wait(
        lambda: client.hget(f"PendingApplication:{warm_up[1]}", "transactionHash"),
        "the first applications sent",
    )
    mined = wait(lambda: anvil.rpc("eth_getTransactionReceipt", sent), "them mined")
    gas_used = int(mined["gasUsed"], 16)
    gas_limit = per_block * gas_used + gas_used // 2
    anvil.rpc("evm_setBlockGasLimit", hex(gas_limit))
    applications = [webapp.application() for _ in range(count)]  # signed before the clock
    start_block = anvil.block_number()
    wait(
        lambda: hold_base_fee(anvil, base_fee) and anvil.block_number() > start_block + 3,
        "blocks at the new gas limit and base fee",
    )  # longer than the fee data is cached
    ids = [webapp.submit(fields) for fields in applications]
    wait(
        lambda: hold_base_fee(anvil, base_fee) and ours_pending(anvil), "the first of them sent"
    )  # the empty blocks until then keep the base fee
    hold_base_fee(anvil, base_fee)
    wait(
        lambda: (
            product.application_count() >= count + len(warm_up)
            and not any(client.exists(f"PendingApplication:{e}") for e in ids)
        ),
        f"{count} applications landed and purged",
    )
    blocks, hashes = [], []
    for number in range(start_block + 1, anvil.block_number() + 1):
        block = anvil.rpc("eth_getBlockByNumber", hex(number), True)
        ours = [
            tx["hash"]
            for tx in block["transactions"]
            if tx["from"].lower() == PROCESSOR.address.lower()
        ]
        blocks.append(Block(number, int(block["baseFeePerGas"], 16), len(ours)))
        hashes += ours
    with_ours = [i for i, b in enumerate(blocks) if b.ours]
    blocks = blocks[with_ours[0] : with_ours[-1] + 1] if with_ours else []
    receipts = [anvil.rpc("eth_getTransactionReceipt", h) for h in hashes]
    heaviest = max(int(r["gasUsed"], 16) for r in receipts)
    replaced = service.metrics.registry.get_sample_value("depeg_processor_fee_bumps_total")
    return BurstResult(
        applications=count,
        per_block=gas_limit // heaviest,
        blocks=blocks,
        landed=len(hashes),
        reverted=sum(int(r["status"], 16) != 1 for r in receipts),
        replaced=replaced,
    )


def hold_base_fee(anvil: Anvil, wei: int) -> bool:
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(wei))
    return True


def ours_pending(anvil: Anvil) -> bool:
    pending = anvil.rpc("eth_getBlockByNumber", "pending", True)["transactions"]
    return any(tx["from"].lower() == PROCESSOR.address.lower() for tx in pending)


def settings(redis_url: str, rpc_url: str, product: str, **overrides: object) -> Settings:
    values = dict(
        redis_url=redis_url,
        chain_rpc_url=rpc_url,
        product_address=product,
        mnemonic=TEST_MNEMONIC,
        min_confirmations=1,
        host="127.0.0.1",
        port=0,
        read_block_timeout=0.2,
        min_balance=10**17,
        alert_balance=10**18,
    )
    return Settings(**(values | overrides))


def one_run(count: int, per_block: int, *, flat: bool, cap: int | None) -> BurstResult:
    with RedisServer() as server, Anvil(block_time=1) as anvil:
        client = redis.Redis.from_url(server.url, **REDIS_DECODING)
        product = Product.deploy(anvil.url, OWNER)
        webapp = WebApp(client, int(anvil.rpc("eth_chainId"), 16), product.message_helper())
        services: list[tuple[Service, threading.Thread]] = []

        def start(**overrides: object) -> Service:
            chosen = settings(server.url, anvil.url, product.address, **overrides)
            service = Service(
                build_runtime(
                    chosen,
                    accounts=[PROCESSOR],
                    redis_client=redis.Redis.from_url(chosen.redis_url, **REDIS_DECODING),
                    chain=NodeClient(url=chosen.chain_rpc_url, timeout=10),
                    stop=threading.Event(),
                    metrics=Metrics(CollectorRegistry()),
                )
            )
            service.serve_monitor()
            assert service.prepare()
            if flat:
                flat_pricing(service)
            thread = threading.Thread(target=service.run, name="processor", daemon=True)
            thread.start()
            services.append((service, thread))
            return service

        try:
            return run_burst(
                anvil=anvil,
                client=client,
                webapp=webapp,
                product=product,
                start=start,
                count=count,
                per_block=per_block,
                max_in_flight=cap,
            )
        finally:
            for service, thread in services:
                service.shutdown()
                thread.join(10)


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 200
    per_block = int(argv[1]) if len(argv) > 1 else 10
    print(
        f"burst: {count} applications, a block holds {per_block}, base fee from 10 gwei, "
        "a block a second"
    )
    print(
        "| pricing | PROCESSOR_MAX_IN_FLIGHT | blocks used | capacity needs | ratio | "
        "replacements | reverted |"
    )
    print("|---|---:|---|---|---|---|---|")
    for name, flat, cap in (
        ("for the wait", False, None),
        ("for the wait", False, 32),
        ("for the wait", False, count),
        ("2 x base fee + tip, waiting ones not re-priced", True, count),
    ):
        result = one_run(count, per_block, flat=flat, cap=cap)
        print(
            f"| {name} | {cap or 16} | {result.used} | {result.needed} | {result.ratio:.2f} | "
            f"{result.replaced:.0f} | {result.reverted} |",
            flush=True,
        )
        print(result.table(), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
