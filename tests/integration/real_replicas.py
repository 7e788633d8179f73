"""Replicas of `python -m depeg_processor` against the real product, and what the tests about
capacity and duplicates read back: which applications are settled, which transactions of the
pool's wallets were mined and what they spent."""

from __future__ import annotations

import os
import urllib.request

import redis
from prometheus_client.parser import text_string_to_metric_families

from depeg_processor.wallet.pool import derive_accounts, pool
from devnet.nodes import TEST_MNEMONIC
from tests.conftest import wait_until
from tests.integration.conftest import application, holder_pid, service_env

STREAM = "application:signatures"
GROUP = "depeg-backend-processor"
WALLETS = pool(
    derive_accounts(TEST_MNEMONIC, 2), stream=STREAM, consumer="depeg-backend-processor-consumer"
)
WALLET_ETH = 10**22


def start_replicas(
    count: int,
    *,
    spawn,
    redis_server,
    redis_client,
    real_product,
    ports: list[int] | None = None,
    **extra: str,
) -> list[str]:
    """`count` replicas on a pool of `count` wallets, each started once the one before holds
    its wallet (so that each sends from one); returns the wallets' addresses, and appends each
    replica's monitor port to `ports` when given. `extra`: more settings for each."""
    wallets = WALLETS[:count]
    for wallet in wallets:
        real_product.anvil.set_balance(wallet.address, WALLET_ETH)
    for wallet in wallets:
        env = service_env(
            redis_server.url,
            real_product.anvil.url,
            real_product.address,
            PROCESSOR_WALLETS=str(count),
            LOG_LEVEL=os.environ.get("REPLICA_LOG_LEVEL", "WARNING"),
            **extra,
        )
        process = spawn(env)
        if ports is not None:
            ports.append(int(env["PORT"]))
        wait_until(
            lambda wallet=wallet, process=process: (
                holder_pid(redis_client, wallet.lease_key) == process.pid
            ),
            what=f"a replica holding wallet {wallet.index}",
        )
    return [w.address for w in wallets]


def submit_together(client: redis.Redis, applications: dict[str, dict]) -> None:
    """Write every hash and enqueue every id as the web app does, in one round trip: the
    replicas find them all waiting at once."""
    pipe = client.pipeline(transaction=False)
    for entity_id, fields in applications.items():
        pipe.hset(f"PendingApplication:{entity_id}", mapping=fields)
    for entity_id in applications:
        pipe.xadd(STREAM, {"entityId": entity_id})
    pipe.execute()


def settled(client: redis.Redis, entity_ids) -> bool:
    """Every application purged (confirmed) or set aside, and no entry left unacknowledged."""
    return (
        not any(application(client, e) for e in entity_ids)
        and client.xpending(STREAM, GROUP)["pending"] == 0
    )


def reverted(receipts: list[dict]) -> list[tuple[str, int]]:
    """(hash, gas used) of each receipt whose status is not 1."""
    return [(r["transactionHash"], int(r["gasUsed"], 16)) for r in receipts if r["status"] != "0x1"]


def describe(receipts: list[dict]) -> str:
    """What was mined, for an assertion's message."""
    failed = reverted(receipts)
    return (
        f"{len(receipts)} transactions mined, {len(failed)} reverted "
        f"(gas {sum(g for _h, g in failed):,}: {[g for _h, g in failed]})"
    )


def metric(port: int, name: str) -> float:
    """A sample of the replica's /metrics, summed over its labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )
