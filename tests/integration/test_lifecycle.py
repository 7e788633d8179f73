"""An application written the web app's way ends on chain exactly once, carries its transaction
hash while it waits, and is purged after the required confirmations."""

from __future__ import annotations

import pytest

from tests.conftest import wait_until
from tests.integration.conftest import application, receipt, wallet_nonce


def test_transaction_hash_is_written_and_purge_waits_for_confirmations(
    start_service, webapp, anvil, product, redis_client
):
    anvil.set_automine(False)  # blocks only when the test mines them
    entity_ids = [webapp.apply() for _ in range(3)]
    start_service(min_confirmations=3)

    hashes = wait_until(
        lambda: (
            all(application(redis_client, e).get("transactionHash") for e in entity_ids)
            and [application(redis_client, e)["transactionHash"] for e in entity_ids]
        ),
        what="transactionHash on every application",
    )
    assert len(set(hashes)) == 3
    assert (
        redis_client.xpending("application:signatures", "depeg-backend-processor")["pending"] == 0
    )
    pending = anvil.rpc("eth_getBlockByNumber", "pending", False)["transactions"]
    assert sorted(pending) == sorted(hashes)

    anvil.mine(1)  # one confirmation: still waiting
    wait_until(lambda: all(receipt(anvil, h) for h in hashes), what="receipts")
    anvil.mine(1)  # two
    assert all(application(redis_client, e) for e in entity_ids), "purged too early"

    anvil.mine(1)  # three: purged
    wait_until(
        lambda: not any(application(redis_client, e) for e in entity_ids),
        what="applications purged",
    )
    assert product.application_count() == 3
    assert wallet_nonce(anvil) == 3
    assert redis_client.zcard("application:signatures:inflight") == 0
    assert redis_client.keys("application:signatures:tx:*") == []


@pytest.mark.parametrize("anvil_args", [{"block_time": 1}])
def test_interval_mining_each_application_on_chain_exactly_once(
    start_service, webapp, anvil, product, redis_client
):
    start_block = anvil.block_number()
    holders = {}
    for _ in range(5):
        fields = webapp.application()
        holders[webapp.submit(fields)] = fields
    start_service(min_confirmations=2)

    wait_until(
        lambda: not any(application(redis_client, e) for e in holders),
        timeout=60,
        what="all applications confirmed and purged",
    )

    events = product.applications_created(from_block=start_block)
    assert sorted(e["policyHolder"] for e in events) == sorted(
        f["policyHolder"] for f in holders.values()
    )
    assert sorted(e["protectedWallet"] for e in events) == sorted(
        f["protectedWallet"] for f in holders.values()
    )
    assert wallet_nonce(anvil) == 5, "one transaction per application, no more"
    assert redis_client.xlen("application:signatures:dead") == 0


def test_entries_written_while_running_are_picked_up(start_service, webapp, redis_client, product):
    start_service()
    first = webapp.apply()
    wait_until(lambda: not application(redis_client, first), what="first purged")
    second = webapp.apply()
    wait_until(lambda: not application(redis_client, second), what="second purged")
    assert product.application_count() == 2
