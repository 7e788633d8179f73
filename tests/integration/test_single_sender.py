"""Two processors on one wallet and one stream, the node answering slowly: one sends, the other
waits as a hot standby and takes over when the first is killed; nothing is paid for twice."""

from __future__ import annotations

import os
import signal

import pytest

from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import (
    application,
    dead_letters,
    holder_pid,
    http_json,
    service_env,
    wallet_nonce,
)


@pytest.mark.parametrize(
    "consumers",
    [("same", "same"), ("first", "second")],
    ids=["one-consumer-name", "two-consumer-names"],
)
def test_one_sends_the_other_takes_over_after_a_kill(
    consumers, redis_server, anvil, product, webapp, redis_client, spawn
):
    with RpcProxy(anvil.url, delay=0.05) as slow_node:
        envs = [
            service_env(
                redis_server.url, slow_node.url, product.address, REDIS_QUEUE_CONSUMER_ID=name
            )
            for name in consumers
        ]
        processes = {p.pid: (p, int(env["PORT"])) for p, env in ((spawn(env), env) for env in envs)}

        pid = wait_until(
            lambda: holder_pid(redis_client) in processes and holder_pid(redis_client),
            what="one processor holding the lease",
        )
        active, active_port = processes[pid]
        ((standby, standby_port),) = [v for k, v in processes.items() if k != pid]
        ready = wait_until(
            lambda: (
                (r := http_json(standby_port, "/api/monitor/readiness")) and "role" in r[1] and r
            ),
            what="standby readiness",
        )
        assert ready[0] == 200 and ready[1]["role"].startswith("standby")
        assert "sending" not in ready[1], "a standby is ready: it can take over at once"
        assert http_json(standby_port, "/api/monitor/liveness")[0] == 200

        entity_ids = [webapp.apply() for _ in range(8)]
        wait_until(
            lambda: (
                sum(
                    1
                    for e in entity_ids
                    if application(redis_client, e).get("transactionHash")
                    or not application(redis_client, e)
                )
                >= 2
            ),
            what="the active processor sending",
        )
        os.kill(active.pid, signal.SIGKILL)
        active.wait(10)

        wait_until(lambda: holder_pid(redis_client) == standby.pid, what="standby took over")
        wait_until(
            lambda: not any(application(redis_client, e) for e in entity_ids),
            timeout=60,
            what="every application confirmed and purged",
        )
        assert product.application_count() == 8
        assert wallet_nonce(anvil) == 8, "no application was paid for twice"
        assert dead_letters(redis_client) == {}
        wait_until(
            lambda: (
                http_json(standby_port, "/api/monitor")
                == (200, {"balance": "ok", "processor": "ok", "nonAckPendingTx": "ok"})
            ),
            what="the new sender healthy",
        )


def test_standby_resends_what_the_dead_sender_recorded_but_never_broadcast(
    redis_server, anvil, product, webapp, redis_client, spawn
):
    env = service_env(redis_server.url, anvil.url, product.address)
    active = spawn(env | {"DEPEG_PROCESSOR_FAULT": "after-record"})
    wait_until(lambda: holder_pid(redis_client) == active.pid, what="first one holding the lease")
    standby = spawn(service_env(redis_server.url, anvil.url, product.address))
    entity_ids = [webapp.apply() for _ in range(4)]
    assert active.wait(30) == -9, "killed between the write-ahead record and the broadcast"
    assert wallet_nonce(anvil, block="pending") == 0

    wait_until(lambda: holder_pid(redis_client) == standby.pid, what="standby took over")
    wait_until(
        lambda: not any(application(redis_client, e) for e in entity_ids),
        timeout=60,
        what="every application confirmed and purged",
    )
    assert product.application_count() == 4 and wallet_nonce(anvil) == 4
    assert dead_letters(redis_client) == {}
