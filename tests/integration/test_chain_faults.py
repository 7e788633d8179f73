"""Chain faults on a real anvil: a base-fee spike, a dropped transaction, a reorg."""

from __future__ import annotations

import logging
import time

from depeg_processor.wallet.lifecycle import Status
from tests.conftest import wait_until
from tests.integration.conftest import application, dead_letters, receipt, wallet_nonce

GWEI = 10**9


def pending_hashes(anvil) -> list[str]:
    return anvil.rpc("eth_getBlockByNumber", "pending", False)["transactions"]


def mine_at_base_fee(anvil, wei: int, blocks: int = 1) -> None:
    for _ in range(blocks):
        anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(wei))
        anvil.mine(1)


def mining_until(anvil, predicate):
    """A predicate for wait_until that mines a block each time it is not yet true: on a real
    chain blocks keep coming while the processor works."""

    def check():
        value = predicate()
        if not value:
            anvil.mine(1)
        return value

    return check


def tx_fee_cap(anvil, tx_hash: str) -> int:
    return int(anvil.rpc("eth_getTransactionByHash", tx_hash)["maxFeePerGas"], 16)


def test_base_fee_spike_replaces_the_transactions_and_all_land(
    start_service, webapp, anvil, product, redis_client
):
    anvil.set_automine(False)
    entity_ids = [webapp.apply() for _ in range(2)]
    running = start_service(
        stuck_blocks=2, max_fee_per_gas=50 * GWEI, max_priority_fee_per_gas=GWEI
    )
    first = wait_until(
        lambda: (
            all(application(redis_client, e).get("transactionHash") for e in entity_ids)
            and {e: application(redis_client, e)["transactionHash"] for e in entity_ids}
        ),
        what="both recorded",
    )
    wait_until(
        lambda: all(anvil.rpc("eth_getTransactionByHash", h) for h in first.values()),
        what="both broadcast",
    )  # recorded first, broadcast from a worker thread
    assert all(tx_fee_cap(anvil, h) < 10 * GWEI for h in first.values())

    mine_at_base_fee(anvil, 10 * GWEI, blocks=3)  # above the offered fee: nothing is mined
    assert all(receipt(anvil, h) is None for h in first.values())

    def replaced_during_spike():  # blocks keep coming at the spiked base fee
        current = {e: application(redis_client, e)["transactionHash"] for e in entity_ids}
        if all(current[e] != first[e] for e in entity_ids):
            return current
        mine_at_base_fee(anvil, 10 * GWEI)
        return None

    replaced = wait_until(replaced_during_spike, what="replacements")
    for entity_id, tx_hash in replaced.items():
        assert tx_fee_cap(anvil, tx_hash) >= 17 * GWEI, "re-priced to the market (2 x base)"
        assert tx_fee_cap(anvil, tx_hash) <= 50 * GWEI, "never above MAX_FEE_PER_GAS"
        record = redis_client.hgetall(f"application:signatures:tx:{entity_id}")
        assert first[entity_id] in record["previousHashes"], "the old hash is still watched"

    mine_at_base_fee(anvil, 10 * GWEI)
    wait_until(
        lambda: not any(application(redis_client, e) for e in entity_ids), what="landed and purged"
    )
    assert product.application_count() == 2
    assert wallet_nonce(anvil) == 2, "the replacements took the original nonces"
    assert all(receipt(anvil, h) is None for h in first.values())
    assert running.metrics()[("depeg_processor_fee_bumps_total", ())] >= 2


def test_fee_cap_too_low_is_reported_by_readiness(
    start_service, webapp, anvil, product, redis_client
):
    anvil.set_automine(False)
    entity_id = webapp.apply()
    running = start_service(stuck_blocks=1, max_fee_per_gas=5 * GWEI, max_priority_fee_per_gas=GWEI)
    wait_until(lambda: application(redis_client, entity_id).get("transactionHash"), what="sent")

    def readiness_names_the_cap():
        mine_at_base_fee(anvil, 10 * GWEI)
        status, body = running.get("/api/monitor/readiness")
        return status == 500 and "MAX_FEE_PER_GAS" in body.get("transactions", "") and body

    body = wait_until(readiness_names_the_cap, what="readiness reporting the fee cap")
    assert "cannot be mined" in body["transactions"]
    record = redis_client.hgetall(f"application:signatures:tx:{entity_id}")
    assert int(record["maxFeePerGas"]) == 5 * GWEI, "bumped up to the cap, not beyond"
    assert application(redis_client, entity_id)["transactionHash"] == record["txHash"]

    def mined_after_spike():  # the spike passes: the capped transaction is resent and mined
        mine_at_base_fee(anvil, GWEI)
        return not application(redis_client, entity_id)

    wait_until(mined_after_spike, what="purged")
    wait_until(lambda: running.get("/api/monitor/readiness")[0] == 200, what="ready again")
    assert product.application_count() == 1


def test_dropped_transaction_is_resent_from_its_stored_bytes(
    start_service, webapp, anvil, product, redis_client
):
    anvil.set_automine(False)
    entity_id = webapp.apply()
    start_service(stuck_blocks=2)
    tx_hash = wait_until(
        lambda: application(redis_client, entity_id).get("transactionHash"), what="sent"
    )
    wait_until(lambda: pending_hashes(anvil) == [tx_hash], what="broadcast")  # after the record
    anvil.rpc("anvil_dropTransaction", tx_hash)
    assert pending_hashes(anvil) == []
    # unmined for two blocks, the watcher looks for it at the node and resends it
    wait_until(
        mining_until(anvil, lambda: not application(redis_client, entity_id)),
        what="resent, mined and purged",
    )
    assert receipt(anvil, tx_hash)["status"] == "0x1"
    assert product.application_count() == 1 and wallet_nonce(anvil) == 1


def test_reorg_of_the_including_block_neither_loses_nor_double_counts(
    start_service, webapp, anvil, product, redis_client
):
    entity_id = webapp.apply()
    running = start_service(min_confirmations=4, stuck_blocks=2)
    tx_hash = wait_until(
        lambda: application(redis_client, entity_id).get("transactionHash"), what="sent"
    )
    mined = wait_until(lambda: receipt(anvil, tx_hash), what="mined")
    in_flight = running.service.wallets[0].in_flight
    wait_until(
        lambda: (t := in_flight.get(entity_id)) and t.status is Status.MINED,
        what="watcher saw the receipt",
    )
    anvil.set_automine(False)
    anvil.mine(1)  # 2 confirmations
    anvil.rpc("anvil_reorg", 2, [])  # the including block and the next are replaced
    assert (
        anvil.rpc("eth_getBlockByNumber", mined["blockNumber"], False)["hash"] != mined["blockHash"]
    )
    anvil.mine(2)  # the old receipt would now count 4 confirmations

    wait_until(
        mining_until(
            anvil,
            lambda: (
                tx_hash in pending_hashes(anvil)
                or (receipt(anvil, tx_hash) or {}).get("blockHash")
                not in (None, mined["blockHash"])
            ),
        ),
        what="the transaction back in the pool or re-mined",
    )
    assert application(redis_client, entity_id), "not purged on the strength of a dead block"
    remined = wait_until(mining_until(anvil, lambda: receipt(anvil, tx_hash)), what="re-mined")
    wait_until(
        mining_until(anvil, lambda: not application(redis_client, entity_id)),
        what="purged after re-mining",
    )
    assert anvil.block_number() - int(remined["blockNumber"], 16) + 1 >= 4
    assert product.application_count() == 1
    assert wallet_nonce(anvil) == 1 and dead_letters(redis_client) == {}


def test_a_spike_above_the_cap_fails_readiness_within_one_watcher_round(
    start_service, webapp, anvil, product, redis_client, caplog
):
    """The base fee jumps above MAX_FEE_PER_GAS (30 gwei) and no block comes: the node refuses
    the first send below the base fee, and readiness names the cap within one watcher round of
    that refusal (before, only after TX_STUCK_BLOCKS blocks or TX_STUCK_TIMEOUT). It recovers
    once the base fee falls and the transaction is mined."""
    caplog.set_level(logging.WARNING, logger="depeg_processor.wallet.submit")
    poll = 1.0  # RECEIPT_POLL_INTERVAL: one watcher round
    anvil.set_automine(False)
    running = start_service(
        max_fee_per_gas=30 * GWEI, max_priority_fee_per_gas=GWEI, receipt_poll_interval=poll
    )
    wait_until(lambda: running.get("/api/monitor/readiness")[0] == 200, what="ready")
    mine_at_base_fee(anvil, 40 * GWEI)  # the latest block's base fee, which prices the sends
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(40 * GWEI))  # and the pending block's
    spiked_at = anvil.block_number()
    entity_id = webapp.apply()

    def refused_at() -> float | None:
        refusals = [r for r in caplog.records if "base fee" in r.getMessage()]
        return refusals[0].created if refusals else None

    refusal = wait_until(refused_at, what="the first send refused below the base fee")
    status, body = wait_until(
        lambda: (
            (r := running.get("/api/monitor/readiness"))[0] == 500
            and "MAX_FEE_PER_GAS" in r[1].get("transactions", "")
            and r
        ),
        what="readiness naming the fee cap",
    )
    delay = time.time() - refusal
    print(f"readiness failed {delay:.2f}s after the refusal")
    assert delay <= poll + 1.0, f"readiness failed {delay:.1f}s after the refusal"
    assert str(30 * GWEI) in body["transactions"]
    wait_until(
        lambda: "MAX_FEE_PER_GAS" in running.get("/api/monitor/readiness")[1].get("sending", ""),
        what="the wallet holding",
    )
    assert anvil.block_number() == spiked_at, "no block came meanwhile"
    assert receipt(anvil, application(redis_client, entity_id)["transactionHash"]) is None

    def mined_after_spike():
        mine_at_base_fee(anvil, GWEI)
        return not application(redis_client, entity_id)

    wait_until(mined_after_spike, what="resent, mined and purged once the base fee fell")
    wait_until(lambda: running.get("/api/monitor/readiness")[0] == 200, what="ready again")
    assert product.application_count() == 1 and wallet_nonce(anvil) == 1
