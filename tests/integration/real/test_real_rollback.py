"""Redis forgets, the chain remembers (issue 22), against the real product: a Redis that keeps
snapshots only is killed while the processor's transactions wait in the node's pool, and comes
back from a snapshot taken before the processor started. Its consumer group, lease, write-ahead
records, `transactionHash`es, acknowledgements and signature marks are gone; its transactions
are not. The processor holds the pool while the node has transactions no record explains, and
once they are mined each application finds its signature used by the pool's own transaction
and is completed: every policy once, no paid revert, no dead letter.

Below the in-flight cap all eight applications are in the pool when Redis dies; at the cap
(four) four are, and the other four are sent after the rollback.
"""

from __future__ import annotations

import collections
import os
import signal
from pathlib import Path

import pytest
import redis

from depeg_processor.inbound.untrusted import REDIS_DECODING
from devnet.nodes import RedisServer
from tests.conftest import wait_until
from tests.integration.conftest import dead_letters, service_env, wallet_nonce
from tests.integration.real_replicas import STREAM, WALLET_ETH, WALLETS, submit_together

pytestmark = pytest.mark.integration
APPLICATIONS = 8
WALLET = WALLETS[0]


def sent(client: redis.Redis, entity_ids) -> int:
    """How many applications carry their transactionHash."""
    return sum(1 for e in entity_ids if client.hget(f"PendingApplication:{e}", "transactionHash"))


def settle_all(anvil, client: redis.Redis, applications, process) -> None:
    """Blocks again, until every application is settled, every transaction of the wallet
    mined, and the processor still up."""
    anvil.rpc("anvil_setIntervalMining", 1)
    wait_until(
        lambda: (
            not any(client.exists(f"PendingApplication:{e}") for e in applications)
            and client.xpending(STREAM, "depeg-backend-processor")["pending"] == 0
        ),
        timeout=120,
        what="every application settled",
    )
    wait_until(
        lambda: (
            wallet_nonce(anvil, WALLET.address) == wallet_nonce(anvil, WALLET.address, "pending")
        ),
        what="the wallet's transactions mined",
    )
    assert process.poll() is None, "the processor stays up"


def check_recovered(real_product, client, holders, start_block, text: str) -> int:
    """Every policy once, no paid revert, no false dead letter, each loss said once at most;
    returns how many applications were completed from the chain (their records lost)."""
    receipts = real_product.our_receipts([WALLET.address], start_block)
    created = [
        e
        for e in real_product.applications_created(start_block)
        if e["policyHolder"].lower() in holders
    ]
    letters = dead_letters(client)
    reverted = [r["transactionHash"] for r in receipts if r["status"] != "0x1"]
    completed = text.count("(its record was lost); purged as confirmed")
    print(
        f"\n{len(receipts)} transactions mined, {len(reverted)} reverted; "
        f"{len(created)} policies; {len(letters)} dead letters; "
        f"{text.count('is not held by this process')} lease warnings; "
        f"{completed} completed from the chain; {text.count('; purged')} purged in all"
    )
    assert reverted == [], "no paid revert"
    assert len(receipts) == APPLICATIONS, "one transaction per application"
    by_holder = collections.Counter(e["policyHolder"].lower() for e in created)
    assert by_holder == dict.fromkeys(holders, 1), "every policy once"
    assert letters == {}, f"no false dead letter: {letters}"
    assert text.count("is not held by this process") <= 2, "the lease's loss said once or twice"
    assert text.count("vanished; creating it again") <= 1, "the group's loss said once at most"
    return completed


def kill_and_restore(server: RedisServer, *, meanwhile=lambda: None) -> None:
    """Kill the server (no shutdown save), do `meanwhile`, and start it again on its data
    directory: it loads the last snapshot."""
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    meanwhile()
    server.start()


def count(log: Path, text: str) -> int:
    return log.read_text().count(text)


@pytest.mark.parametrize(
    ("cap", "pool_lost"),
    [
        pytest.param(None, False, id="below-the-cap"),
        pytest.param(4, False, id="at-the-cap"),
        pytest.param(None, True, id="the-node-lost-its-pool-too"),
    ],
)
def test_a_rollback_to_a_snapshot_with_transactions_in_the_pool(
    cap, pool_lost, real_product, spawn, tmp_path
):
    """With `pool_lost` the node drops every pending transaction while Redis is down: nothing
    is left to explain, and the applications are sent again, the same nonces carrying
    transactions signed afresh."""
    anvil = real_product.anvil
    anvil.set_balance(WALLET.address, WALLET_ETH)
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url, **REDIS_DECODING)
        webapp = real_product.webapp(client, real_product.new_bundle(APPLICATIONS))
        applications = {f"rollback-{n}": webapp.application() for n in range(APPLICATIONS)}
        holders = {f["policyHolder"].lower() for f in applications.values()}
        submit_together(client, applications)
        client.save()  # the snapshot: the applications written, the processor not started
        start_block = anvil.block_number() + 1
        first_nonce = wallet_nonce(anvil, WALLET.address)
        log = tmp_path / "processor.log"
        in_pool = cap or APPLICATIONS
        with real_product.interval_mining(None):  # no blocks: what is sent stays in the pool
            env = service_env(
                server.url,
                anvil.url,
                real_product.address,
                LOG_LEVEL="INFO",
                **({"PROCESSOR_MAX_IN_FLIGHT": str(cap)} if cap else {}),
            )
            env["PYTHONPATH"] = os.getcwd()
            process = spawn(env, log)
            wait_until(
                lambda: (
                    wallet_nonce(anvil, WALLET.address, "pending") == first_nonce + in_pool
                    and sent(client, applications) == in_pool
                ),
                timeout=60,
                what=f"{in_pool} transactions in the node's pool",
            )
            kill_and_restore(
                server, meanwhile=lambda: pool_lost and anvil.rpc("anvil_dropAllTransactions")
            )
            assert sent(client, applications) == 0 and client.exists(STREAM)
            if pool_lost:
                assert wallet_nonce(anvil, WALLET.address, "pending") == first_nonce
            wait_until(  # below the cap it has the entries in hand and says why it holds;
                # at the cap it reads nothing until some are mined: it took the wallet again
                lambda: (
                    pool_lost
                    or count(log, "no record explains") >= 1
                    or (cap and count(log, "holding the wallet's lease") >= 2)
                ),
                timeout=60,
                what="the processor holding after the rollback",
            )
            assert wallet_nonce(anvil, WALLET.address) == first_nonce  # nothing mined yet
            settle_all(anvil, client, applications, process)
        completed = check_recovered(real_product, client, holders, start_block, log.read_text())
        client.close()
    assert completed == (0 if pool_lost else in_pool), completed
