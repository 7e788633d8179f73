"""The signing policy against real Redis and anvil: records of stuck transactions changed in
Redis (their `gas`, their `data`, a `to` written in) while the processor was stopped are never
signed again when it runs again, are reported and
kept; the untouched one beside them is replaced as usual, and all land with what was signed."""

from __future__ import annotations

import logging

from depeg_processor.keys import record_key
from tests.conftest import wait_until
from tests.integration.conftest import application, receipt
from tests.integration.test_chain_faults import GWEI, mine_at_base_fee

STREAM = "application:signatures"
ATTACKER = "0x000000000000000000000000000000000000dEaD"
TRANSFER = "0xa9059cbb" + "00" * 12 + ATTACKER[2:].lower() + "ff" * 32  # an ERC-20 transfer


def test_tampered_records_of_stuck_transactions_are_never_signed(
    start_service, webapp, anvil, product, redis_client, caplog
):
    anvil.set_automine(False)
    entity_ids = [webapp.apply() for _ in range(4)]
    running = start_service(
        stuck_blocks=2, max_fee_per_gas=50 * GWEI, max_priority_fee_per_gas=GWEI
    )
    first = wait_until(
        lambda: (
            all(application(redis_client, e).get("transactionHash") for e in entity_ids)
            and {e: application(redis_client, e)["transactionHash"] for e in entity_ids}
        ),
        what="all recorded",
    )
    wait_until(
        lambda: all(anvil.rpc("eth_getTransactionByHash", h) for h in first.values()),
        what="all broadcast",
    )
    # Stopped and started again, the processor reads every record from Redis: the tampered
    # ones are what the replacements would sign (a running one may hold a record read before).
    running.stop()
    gas, data, to, untouched = entity_ids
    redis_client.hset(record_key(STREAM, gas), "gas", str(30_000_000))
    redis_client.hset(record_key(STREAM, data), "data", TRANSFER)
    redis_client.hset(record_key(STREAM, to), "to", ATTACKER)
    tampered = {e: redis_client.hgetall(record_key(STREAM, e)) for e in (gas, data)}
    running = start_service(
        stuck_blocks=2, max_fee_per_gas=50 * GWEI, max_priority_fee_per_gas=GWEI
    )

    with caplog.at_level(logging.ERROR):

        def replaced() -> bool:  # blocks keep coming at a base fee above every offer
            mine_at_base_fee(anvil, 10 * GWEI)
            current = {e: application(redis_client, e)["transactionHash"] for e in entity_ids}
            refusals = running.metrics().get(("depeg_processor_signing_refused_total", ()), 0)
            return (
                current[untouched] != first[untouched]
                and current[to] != first[to]
                and (refusals >= 2)
            )

        wait_until(replaced, what="the untouched records replaced, the tampered refused")

    for entity_id in (gas, data):
        assert redis_client.hgetall(record_key(STREAM, entity_id)) == tampered[entity_id], (
            "kept as it is stored"
        )
        assert application(redis_client, entity_id)["transactionHash"] == first[entity_id]
    assert any("signing refused" in r.getMessage() and "MAX_GAS_PER_TRANSACTION" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert any("signing refused" in r.getMessage() and "does not call" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    replaced_to = application(redis_client, to)["transactionHash"]
    assert (
        anvil.rpc("eth_getTransactionByHash", replaced_to)["to"].lower() == product.address.lower()
    )
    pool = anvil.rpc("txpool_content")["pending"]
    sent = [tx for by_nonce in pool.values() for tx in by_nonce.values()]
    assert all(int(tx["gas"], 16) < 30_000_000 for tx in sent), "no transaction at the tampered gas"
    assert all(not tx["input"].startswith("0xa9059cbb") for tx in sent), "no transfer signed"
    assert all(tx["to"].lower() == product.address.lower() for tx in sent)

    mine_at_base_fee(anvil, GWEI, blocks=3)  # the base fee falls: what was signed is mined
    anvil.set_automine(True)
    wait_until(lambda: not any(application(redis_client, e) for e in entity_ids), what="all purged")
    assert product.application_count() == 4
    for entity_id in (gas, data):  # each with the transaction signed before the tampering
        assert receipt(anvil, first[entity_id])["status"] == "0x1"
