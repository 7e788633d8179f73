"""Low balance holds sending and fails `balance`; a top-up resumes. The monitor's answers for
the healthy and unhealthy states, over HTTP from the running service."""

from __future__ import annotations

from tests.conftest import wait_until
from tests.integration.conftest import PROCESSOR, application, wallet_nonce


def test_low_balance_holds_sending_then_top_up_resumes(
    start_service, webapp, anvil, product, redis_client
):
    anvil.set_balance(PROCESSOR.address, 5 * 10**16)  # below min 0.1 ether and alert 1 ether
    entity_id = webapp.apply()
    running = start_service()

    status, body = wait_until(
        lambda: (
            (r := running.get("/api/monitor"))[0] == 500
            and "below the alert balance" in r[1]["balance"]
            and r[1]["processor"] == "ok"
            and r
        ),
        what="monitor failing balance only",
    )
    assert body["nonAckPendingTx"] == "ok"
    ready_status, ready = wait_until(
        lambda: (r := running.get("/api/monitor/readiness"))[0] == 500 and "sending" in r[1] and r,
        what="readiness naming the hold",
    )
    assert "PROCESSOR_MIN_BALANCE" in ready["sending"]
    assert wallet_nonce(anvil, block="pending") == 0, "nothing sent while the balance is low"
    assert "transactionHash" not in application(redis_client, entity_id)

    anvil.set_balance(PROCESSOR.address, 2 * 10**18)  # above min and alert
    wait_until(lambda: not application(redis_client, entity_id), what="sent after top-up")
    assert product.application_count() == 1
    wait_until(
        lambda: (
            running.get("/api/monitor")
            == (200, {"balance": "ok", "processor": "ok", "nonAckPendingTx": "ok"})
        ),
        what="healthy again",
    )
    assert running.get("/api/monitor/readiness")[0] == 200


def test_balance_between_min_and_alert_sends_but_alerts(
    start_service, webapp, anvil, product, redis_client
):
    anvil.set_balance(PROCESSOR.address, 5 * 10**17)  # above min 0.1, below alert 1 ether
    entity_id = webapp.apply()
    running = start_service()
    wait_until(lambda: not application(redis_client, entity_id), what="sent")
    status, body = running.get("/api/monitor")
    assert status == 500 and body["balance"] != "ok" and body["processor"] == "ok"


def test_unacknowledged_entries_above_limit_fail_the_monitor(
    start_service, webapp, product, redis_client
):
    product.set_active(False)  # entries are delivered, held, and stay unacknowledged
    for _ in range(3):
        webapp.apply()
    running = start_service(max_non_ack_pending=2)
    status, body = wait_until(
        lambda: (
            (r := running.get("/api/monitor"))[0] == 500
            and "3 stream entries" in r[1]["nonAckPendingTx"]
            and r
        ),
        what="nonAckPendingTx failing",
    )
    assert "limit 2" in body["nonAckPendingTx"]
    live_status, live = running.get("/api/monitor/liveness")
    assert live_status == 500 and set(live) == {"processor", "nonAckPendingTx"}
    ready_status, ready = wait_until(  # entries are delivered before they are simulated
        lambda: (r := running.get("/api/monitor/readiness"))[1].get("sending") and r,
        what="readiness naming the hold",
    )
    assert "ERROR:DP-010:PRODUCT_NOT_ACTIVE" in ready["sending"]

    product.set_active(True)
    wait_until(lambda: running.get("/api/monitor")[0] == 200, what="healthy after reactivation")
    assert product.application_count() == 3


def test_healthy_service_answers_every_endpoint(start_service, product):
    running = start_service()
    wait_until(lambda: running.get("/api/monitor")[0] == 200, what="healthy")
    assert running.get("/api/monitor")[1] == {
        "balance": "ok",
        "processor": "ok",
        "nonAckPendingTx": "ok",
    }
    assert running.get("/api/monitor/liveness") == (
        200,
        {"processor": "ok", "nonAckPendingTx": "ok"},
    )
    assert running.get("/api/monitor/readiness") == (
        200,
        {"balance": "ok", "node": "ok", "redis": "ok"},
    )
    assert running.get("/api/nothing")[0] == 404


def test_processor_loop_stuck_fails_liveness(start_service, product):
    running = start_service(loop_max_timeout=0.5)
    wait_until(lambda: running.get("/api/monitor/liveness")[0] == 200, what="alive")
    running.service.stop_event.set()  # the loop stops; its heartbeat ages
    running.thread.join(10)
    status, body = wait_until(
        lambda: (r := running.get("/api/monitor/liveness"))[0] == 500 and r, what="liveness failing"
    )
    assert "processor loop last ran" in body["processor"]
