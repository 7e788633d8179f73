"""What operators use: /metrics moving with real events, the spending guard, the `status` and
`check-config` commands, sd_notify under a fake systemd socket."""

from __future__ import annotations

import json
import signal
import socket

import pytest

from depeg_processor.wallet import pool as wallets
from devnet.nodes import TEST_MNEMONIC
from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import (
    PROCESSOR,
    application,
    cli,
    dead_letters,
    http_json,
    service_env,
)

P = "depeg_processor_"
W = PROCESSOR.address


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((P + name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_follow_submissions_dead_letters_and_confirmations(
    start_service, webapp, anvil, product, redis_client
):
    product.close_bundle(3)
    anvil.set_automine(False)
    good = [webapp.apply(), webapp.apply()]
    bad = webapp.apply(bundleId="3")  # signed for bundle 2: the local signature check fails
    running = start_service()
    wait_until(
        lambda: (
            all(application(redis_client, e).get("transactionHash") for e in good)
            and bad in dead_letters(redis_client)
        ),
        what="sent and set aside",
    )

    scrape = wait_until(
        lambda: (
            (m := running.metrics()) and value(m, "transactions_in_flight", wallet=W) == 2 and m
        ),
        what="in flight",
    )
    assert value(scrape, "applications_submitted_total") == 2
    assert value(scrape, "applications_dead_lettered_total", reason="signature_invalid") == 1
    assert value(scrape, "applications_confirmed_total") == 0
    assert value(scrape, "nonce", source="local", wallet=W) == 2
    assert value(scrape, "wallet_balance_wei", wallet=W) > 0
    assert value(scrape, "oldest_in_flight_seconds", wallet=W) >= 0
    assert value(scrape, "enqueue_to_submit_seconds_count") == 2

    anvil.mine(1)
    wait_until(lambda: not any(application(redis_client, e) for e in good), what="purged")
    scrape = wait_until(
        lambda: (
            (m := running.metrics()) and value(m, "transactions_in_flight", wallet=W) == 0 and m
        ),
        what="settled",
    )
    assert value(scrape, "applications_confirmed_total") == 2
    assert value(scrape, "enqueue_to_confirmation_seconds_count") == 2
    assert value(scrape, "nonce", source="chain", wallet=W) == 2
    assert value(scrape, "gas_spent_wei_total") > 0
    assert value(scrape, "stream_unacknowledged") == 0
    assert running.get("/api/monitor")[0] == 200  # the JSON monitor answers beside it


def test_liveness_judges_this_consumers_entries_not_the_groups(start_service, webapp, redis_client):
    running = start_service(max_non_ack_pending=2)
    wait_until(lambda: running.get("/api/monitor/liveness")[0] == 200, what="alive")
    # another replica's consumer holds five entries it has not acknowledged yet: added and
    # read in one transaction, so this service never sees them
    pipe = redis_client.pipeline(transaction=True)
    for n in range(5):
        pipe.xadd("application:signatures", {"entityId": f"01HOTHERREPLICA{n:011d}"})
    pipe.xreadgroup(
        "depeg-backend-processor", "another-replica", {"application:signatures": ">"}, count=5
    )
    pipe.execute()
    entity_id = webapp.apply()  # and this one is this service's own
    wait_until(  # (mined at once and maybe purged before a poll here sees its transactionHash)
        lambda: redis_client.get(f"application:signatures:done:{entity_id}"),
        what="sent and confirmed",
    )
    scrape = wait_until(
        lambda: (m := running.metrics()) and value(m, "stream_unacknowledged") == 5 and m,
        what="the group's figure",
    )
    assert value(scrape, "consumer_unacknowledged") == 0
    status, checks = running.get("/api/monitor/liveness")
    assert (status, checks["nonAckPendingTx"]) == (200, "ok")
    assert running.get("/api/monitor")[1]["nonAckPendingTx"] == "ok"


def test_spending_guard_pauses_sending_and_says_why(
    start_service, webapp, anvil, product, redis_client
):
    first = webapp.apply()
    # one application costs roughly 100k gas at ~2 gwei: a ceiling of 0.0001 ether is one
    running = start_service(max_gas_spend_per_hour=10**14)
    wait_until(lambda: not application(redis_client, first), what="first one sent")
    second = webapp.apply()
    ready = wait_until(
        lambda: (
            (r := running.get("/api/monitor/readiness"))[0] == 500
            and "spending guard" in r[1].get("sending", "")
            and r[1]
        ),
        what="readiness naming the spending guard",
    )
    assert "MAX_GAS_SPEND_PER_HOUR" in ready["sending"]
    assert "transactionHash" not in application(redis_client, second)
    assert product.application_count() == 1


@pytest.fixture
def one_in_flight(redis_server, anvil, product, webapp, redis_client, spawn):
    """A processor whose one application is sent and not mined (automine off):
    (its env, its process, the transaction's hash)."""
    env = service_env(redis_server.url, anvil.url, product.address)
    anvil.set_automine(False)
    process = spawn(env)
    entity_id = webapp.apply()
    tx_hash = wait_until(
        lambda: application(redis_client, entity_id).get("transactionHash"), what="sent"
    )
    return env, process, tx_hash


def test_status_and_check_config_commands(anvil, one_in_flight):
    env, process, tx_hash = one_in_flight
    result = cli(env, "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [wallet] = report["wallets"]
    assert wallet["address"] == PROCESSOR.address and wallet["balance_wei"] > 0
    assert wallet["nonce_pending"] == 1 and wallet["nonce_latest"] == 0
    assert wallet["in_flight_count"] == 1 and [f["txHash"] for f in wallet["in_flight"]] == [
        tx_hash
    ]
    assert report["dead_letters"] == 0 and str(process.pid) in wallet["lease_holder"]
    table = cli(env, "status")
    assert table.returncode == 0 and tx_hash in table.stdout and "balance wei" in table.stdout

    ok = cli(env, "check-config")
    assert ok.returncode == 0 and PROCESSOR.address in ok.stdout, ok.stdout
    assert "node simulates each batch in one eth_simulateV1 call" in ok.stdout, ok.stdout
    with RpcProxy(anvil.url, missing_methods=("eth_simulateV1",)) as lacking:
        without = cli(env | {"CHAIN_RPC_URL": lacking.url}, "check-config")
    assert without.returncode == 0 and "node NOTE: eth_simulateV1 failed" in without.stdout, (
        without.stdout
    )
    down = cli(env | {"CHAIN_RPC_URL": "http://127.0.0.1:9"}, "check-config")
    assert down.returncode == 1 and "node FAILED" in down.stdout
    nothing = cli(env | {"DEPEG_PRODUCT_ADDRESS": PROCESSOR.address}, "check-config")
    assert nothing.returncode == 1 and "no contract" in nothing.stdout


def test_status_lists_every_wallet_of_the_pool(redis_client, one_in_flight):
    env, process, tx_hash = one_in_flight
    third = wallets.pool(
        wallets.derive_accounts(TEST_MNEMONIC, 3), stream="application:signatures", consumer="c"
    )[2]
    # the third wallet's own keys: two transactions in its in-flight set, its lease held
    redis_client.zadd(
        f"{third.prefix}:inflight",
        {"01HTHIRDWALLET0000000000A1": 4, "01HTHIRDWALLET0000000000A2": 5},
    )
    redis_client.set(third.lease_key, "another-replica@host:1:abc")

    report = json.loads(cli(env | {"PROCESSOR_WALLETS": "3"}, "status", "--json").stdout)
    rows = report["wallets"]
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert [r["address"] for r in rows] == [
        a.address for a in wallets.derive_accounts(TEST_MNEMONIC, 3)
    ]
    assert [r["in_flight_count"] for r in rows] == [1, 0, 2]
    assert [r["nonce_pending"] - r["nonce_latest"] for r in rows] == [1, 0, 0]
    assert all(r["balance_wei"] > 0 for r in rows)
    assert str(process.pid) in rows[0]["lease_holder"]
    assert rows[1]["lease_holder"] is None
    assert rows[2]["lease_holder"] == "another-replica@host:1:abc"
    assert [f["txHash"] for f in rows[0]["in_flight"]] == [tx_hash]
    assert rows[0]["consumer"] != rows[1]["consumer"] != rows[2]["consumer"]

    table = cli(env | {"PROCESSOR_WALLETS": "3"}, "status")
    assert table.returncode == 0
    lines = {
        line.split()[1]: line
        for line in table.stdout.splitlines()
        if line[:1].isdigit() and len(line.split()) > 1
    }
    assert set(lines) == {r["address"] for r in rows}
    assert "another-replica@host:1:abc" in lines[rows[2]["address"]]


def test_status_says_which_part_cannot_be_reached(redis_server, redis_client, anvil, product):
    env = service_env(redis_server.url, anvil.url, product.address, PROCESSOR_WALLETS="2")
    no_node = cli(env | {"CHAIN_RPC_URL": "http://127.0.0.1:9"}, "status", "--json")
    report = json.loads(no_node.stdout)
    assert no_node.returncode == 1 and "node_error" in report and "redis_error" not in report
    assert [r["in_flight_count"] for r in report["wallets"]] == [0, 0]  # redis still answered
    no_redis = cli(env | {"REDIS_URL": "redis://127.0.0.1:9"}, "status", "--json")
    report = json.loads(no_redis.stdout)
    assert no_redis.returncode == 1 and "redis_error" in report and "node_error" not in report
    assert all(r["balance_wei"] > 0 for r in report["wallets"])  # the node still answered
    table = cli(env | {"REDIS_URL": "redis://127.0.0.1:9"}, "status")
    assert table.returncode == 1 and "redis error" in table.stdout


def test_systemd_notify_ready_watchdog_and_stopping(redis_server, anvil, product, tmp_path, spawn):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        env = service_env(
            redis_server.url, anvil.url, product.address, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000"
        )
        process = spawn(env)
        received: list[str] = []

        def got(word: str) -> bool:
            while not any(word in message for message in received):
                received.append(sock.recv(4096).decode())
            return True

        assert got("READY=1")
        assert http_json(int(env["PORT"]), "/api/monitor") is not None, "ready means serving"
        for _ in range(2):  # pinged again and again from the loop's heartbeat
            received.clear()
            assert got("WATCHDOG=1")
        process.send_signal(signal.SIGTERM)
        assert got("STOPPING=1")
        assert process.wait(10) == 0
