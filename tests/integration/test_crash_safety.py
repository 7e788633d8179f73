"""SIGKILL at each step of the pipeline, then a restart: every application lands exactly once
and no duplicate is paid for."""

from __future__ import annotations

import pytest

from depeg_processor.faults import POINTS
from tests.conftest import wait_until
from tests.integration.conftest import application, dead_letters, receipt, service_env, wallet_nonce


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_step_then_restart_lands_every_application_once(
    point, redis_server, anvil, product, webapp, redis_client, spawn
):
    entity_ids = [webapp.apply() for _ in range(3)]
    env = service_env(redis_server.url, anvil.url, product.address)

    crashed = spawn(env | {"DEPEG_PROCESSOR_FAULT": point})
    assert crashed.wait(timeout=60) == -9, "the fault hook kills the process"
    sent_before_restart = wallet_nonce(anvil, block="pending")

    spawn(env)
    wait_until(
        lambda: not any(application(redis_client, e) for e in entity_ids),
        timeout=60,
        what="every application confirmed and purged",
    )

    assert product.application_count() == 3
    assert wallet_nonce(anvil) == 3, "exactly one transaction per application was mined"
    assert dead_letters(redis_client) == {}
    assert redis_client.zcard("application:signatures:inflight") == 0
    assert (
        redis_client.xpending("application:signatures", "depeg-backend-processor")["pending"] == 0
    )
    if point in ("after-simulate", "after-sign", "after-record"):
        assert sent_before_restart == 0, "nothing was broadcast before the crash"
    if point == "after-broadcast":
        assert sent_before_restart == 3, "the batch was broadcast before the crash"


def test_crash_after_record_resends_the_same_signed_transaction(
    redis_server, anvil, product, webapp, redis_client, spawn
):
    entity_id = webapp.apply()
    env = service_env(redis_server.url, anvil.url, product.address)
    assert spawn(env | {"DEPEG_PROCESSOR_FAULT": "after-record"}).wait(timeout=60) == -9
    recorded = redis_client.hget(f"application:signatures:tx:{entity_id}", "txHash")
    assert recorded and receipt(anvil, recorded) is None, "recorded, never broadcast"

    spawn(env)
    wait_until(lambda: not application(redis_client, entity_id), timeout=60, what="purged")
    assert receipt(anvil, recorded)["status"] == "0x1", "the very same transaction was mined"
    assert wallet_nonce(anvil) == 1
