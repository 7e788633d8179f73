"""What the processor costs a metered provider: an idle minute, and receipts under load.

Every JSON-RPC call goes through a counting proxy in front of anvil. The idle test runs with
the production intervals (RECEIPT_POLL_INTERVAL 2 s, CHAIN_IDLE_POLL_INTERVAL 30 s) and counts
one wall-clock minute: the figure it checks is a rate per minute.
"""

from __future__ import annotations

import threading

import pytest

from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import application, dead_letters, receipt, wallet_nonce

IDLE_BUDGET_PER_MINUTE = 10


def test_an_idle_minute_costs_at_most_ten_calls_and_the_next_application_still_goes_out(
    start_service, anvil, product, webapp, redis_client
):
    with RpcProxy(anvil.url) as proxy:
        running = start_service(
            chain_rpc_url=proxy.url,
            receipt_poll_interval=2.0,
            idle_poll_interval=30.0,
            read_block_timeout=30.0,
        )
        wait_until(lambda: running.get("/api/monitor")[0] == 200, what="healthy")
        proxy.reset_counts()
        threading.Event().wait(60.0)  # the measured minute itself
        calls, by_method = proxy.total_calls(), dict(proxy.calls)
        print(f"\nan idle minute: {calls} JSON-RPC calls {by_method}")
        assert calls <= IDLE_BUDGET_PER_MINUTE, by_method
        assert running.get("/api/monitor")[0] == 200, "the monitor kept what it needs"

        entity_id = webapp.apply()
        # the hash may be gone before a poll here sees its transactionHash: wait for the end
        tx_hash = wait_until(
            lambda: redis_client.get(f"application:signatures:done:{entity_id}"),
            what="sent from idle, confirmed and purged",
        )
    assert not application(redis_client, entity_id)
    assert receipt(anvil, tx_hash)["status"] == "0x1"
    assert wallet_nonce(anvil) == 1


@pytest.mark.parametrize("anvil_args", [{"block_time": 0.5}])
def test_receipts_come_a_block_at_a_time(start_service, anvil, product, webapp, redis_client):
    entity_ids = [webapp.apply() for _ in range(60)]
    with RpcProxy(anvil.url) as proxy:
        start_service(chain_rpc_url=proxy.url, receipt_poll_interval=0.2, read_count=20)
        wait_until(
            lambda: not any(application(redis_client, e) for e in entity_ids),
            what="all confirmed and purged",
        )
        calls = dict(proxy.calls)
    print(f"\n60 applications, blocks every 0.5 s: {calls}")
    assert wallet_nonce(anvil) == 60 and dead_letters(redis_client) == {}
    assert calls.get("eth_getBlockReceipts", 0) > 0
    assert calls.get("eth_getTransactionReceipt", 0) + calls["eth_getBlockReceipts"] < 60


@pytest.mark.parametrize("anvil_args", [{"block_time": 0.5}])
def test_a_node_without_block_receipts_is_asked_per_transaction(
    start_service, anvil, product, webapp, redis_client
):
    entity_ids = [webapp.apply() for _ in range(20)]
    with RpcProxy(anvil.url, missing_methods=("eth_getBlockReceipts",)) as proxy:
        start_service(chain_rpc_url=proxy.url, receipt_poll_interval=0.2)
        wait_until(
            lambda: not any(application(redis_client, e) for e in entity_ids),
            what="all confirmed and purged",
        )
        calls = dict(proxy.calls)
    assert wallet_nonce(anvil) == 20 and dead_letters(redis_client) == {}
    assert calls.get("eth_getBlockReceipts", 0) <= 1, "asked once, then not again"
    assert calls.get("eth_getTransactionReceipt", 0) >= 20
