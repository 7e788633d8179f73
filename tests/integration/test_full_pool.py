"""A wallet keeps more than 16 transactions in flight to fill the blocks, unless the node's pool
is full: the node (a proxy playing a full geth pool, `devnet.fullpool`) refuses a send beyond
16 unmined of one account as "txpool is full", and the processor falls back to 16 and still
lands every application, none reverted."""

from __future__ import annotations

import logging

import pytest

from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import application, dead_letters, receipt, wallet_nonce

COUNT = 60


@pytest.mark.parametrize("anvil_args", [{"block_time": 1}])
def test_a_full_pool_brings_the_wallet_back_to_16_in_flight_and_every_application_lands(
    start_service, anvil, product, webapp, redis_client, caplog
):
    caplog.set_level(logging.WARNING, logger="depeg_processor.wallet.block_room")
    anvil.rpc("evm_setBlockGasLimit", hex(2_000_000))  # a block takes a few: a backlog builds
    entity_ids = [webapp.apply() for _ in range(COUNT)]
    with RpcProxy(anvil.url, account_slots=16) as node:
        start_service(chain_rpc_url=node.url, receipt_poll_interval=0.5, read_count=20)
        wait_until(
            lambda: not any(application(redis_client, e) for e in entity_ids),
            what="every application confirmed and purged",
            timeout=180,
        )
        refused = node.pool_full_refusals
    assert refused >= 1, "the wallet went beyond 16 in flight: the full pool refused it"
    assert any("transaction pool is full" in r.getMessage() for r in caplog.records)
    assert not dead_letters(redis_client)
    assert wallet_nonce(anvil) >= COUNT
    hashes = [redis_client.get(f"application:signatures:done:{e}") for e in entity_ids]
    assert all(hashes) and all(receipt(anvil, h)["status"] == "0x1" for h in hashes)
