"""Gas limits on the real product, in the case they must hold against: a transaction of
the pool replayed before an application in its simulation is not mined before it, so the chain
runs the application on storage the simulation saw written. It still succeeds."""

from __future__ import annotations

import os
import signal

import pytest

from devnet.webapp import ulid
from tests.conftest import wait_until
from tests.integration.conftest import dead_letters, holder_pid, service_env
from tests.integration.real_replicas import WALLET_ETH, WALLETS, settled, submit_together

pytestmark = pytest.mark.integration


def recorded_tx(redis_client, entity_id: str) -> str | None:
    return redis_client.hget(f"PendingApplication:{entity_id}", "transactionHash")


def test_an_application_simulated_after_one_mined_later_succeeds(
    real_product, spawn, redis_server, redis_client, anvil
):
    """Two replicas on two wallets: the first sends an application to a fresh bundle, then
    stops; the second sends another to the same bundle, simulated after the first's replay;
    the first leaves the node and a block is mined. The second is the bundle's first policy on
    chain after all (1.59 M gas where the simulation saw 1.41 M, on a chain with one bundle):
    a limit fitted to that simulation ran out of gas so (a paid revert); the limit the
    processor sends, the estimate with headroom, holds it."""
    bundle_id = real_product.new_bundle(4)
    webapp = real_product.webapp(redis_client, bundle_id)
    first, second = ulid(), ulid()
    first_fields, second_fields = webapp.application(), webapp.application()
    for wallet in WALLETS:
        anvil.set_balance(wallet.address, WALLET_ETH)
    replicas = []
    try:
        with real_product.interval_mining(None):
            for wallet in WALLETS:
                env = service_env(
                    redis_server.url,
                    anvil.url,
                    real_product.address,
                    PROCESSOR_WALLETS="2",
                    PROCESSOR_LEASE_TTL="60000",  # the stopped replica keeps its wallet
                )
                replicas.append(spawn(env))
                wait_until(
                    lambda w=wallet, p=replicas[-1]: holder_pid(redis_client, w.lease_key) == p.pid,
                    what=f"a replica on wallet {wallet.index}",
                )
            submit_together(redis_client, {first: first_fields})
            first_tx = wait_until(lambda: recorded_tx(redis_client, first), what="first sent")
            wait_until(lambda: anvil.rpc("eth_getTransactionByHash", first_tx), what="broadcast")
            first_sent = anvil.rpc("eth_getTransactionByHash", first_tx)
            sender = first_sent["from"].lower()
            stopped = next(p for p, w in zip(replicas, WALLETS) if w.address.lower() == sender)
            os.kill(stopped.pid, signal.SIGSTOP)  # the other replica takes the second
            try:
                submit_together(redis_client, {second: second_fields})
                second_tx = wait_until(lambda: recorded_tx(redis_client, second), what="sent")
                wait_until(
                    lambda: anvil.rpc("eth_getTransactionByHash", second_tx), what="broadcast"
                )
                # the first leaves the node before any block: the second runs without it
                anvil.rpc("anvil_dropTransaction", first_tx)
                anvil.mine(1)
            finally:
                os.kill(stopped.pid, signal.SIGCONT)
            mined = anvil.rpc("eth_getTransactionReceipt", second_tx)
            tx = anvil.rpc("eth_getTransactionByHash", second_tx)
            limit, used = int(tx["gas"], 16), int(mined["gasUsed"], 16)
            assert int(mined["status"], 16) == 1, f"reverted: {used} used of {limit}"
            after_first = simulated_after(anvil, [first_sent, tx], int(mined["blockNumber"], 16))
            assert used > after_first, "on chain it paid for the bundle's first policy"
        wait_until(
            lambda: settled(redis_client, [first, second]),
            timeout=90,
            what="both confirmed, the first sent again",
        )
    finally:
        for replica in replicas:  # stopped before the chain is handed on, nothing left pending
            os.kill(replica.pid, signal.SIGCONT)
            replica.kill()
            replica.wait(10)
        anvil.rpc("anvil_dropAllTransactions")
        anvil.mine(1)
    assert dead_letters(redis_client) == {}
    holders = {first_fields["policyHolder"], second_fields["policyHolder"]}
    assert len(real_product.policies_of(holders, 0)) == 2


def simulated_after(anvil, txs: list[dict], block: int) -> int:
    """The gas the last of `txs` uses simulated after the others, at the block before
    `block`: what the processor's simulation saw."""
    calls = [{"from": t["from"], "to": t["to"], "data": t["input"], "gas": t["gas"]} for t in txs]
    answer = anvil.rpc(
        "eth_simulateV1",
        {"blockStateCalls": [{"calls": calls}], "validation": False},
        hex(block - 1),
    )
    return int(answer[0]["calls"][-1]["gasUsed"], 16)
