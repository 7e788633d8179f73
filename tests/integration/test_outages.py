"""The node unreachable for a while, Redis restarted mid-run: the process stays up, the monitor
names the dependency that is down, nothing is lost, and work resumes by itself."""

from __future__ import annotations

import threading

import pytest
import redis

from depeg_processor.chain.rpc import NodeClient
from depeg_processor.inbound.untrusted import REDIS_DECODING
from depeg_processor.service import Service
from depeg_processor.startup import build_runtime
from devnet.nodes import RedisServer
from devnet.proxy import RpcProxy
from devnet.webapp import WebApp
from tests.conftest import wait_until
from tests.integration.conftest import PROCESSOR, Running, application, base_settings


@pytest.fixture
def proxy(anvil):
    with RpcProxy(anvil.url) as node_proxy:
        yield node_proxy


def run_service(settings) -> Running:
    client = redis.Redis.from_url(
        settings.redis_url, **REDIS_DECODING, socket_timeout=5, socket_connect_timeout=2
    )
    service = Service(
        build_runtime(
            settings,
            accounts=[PROCESSOR],
            redis_client=client,
            chain=NodeClient(url=settings.chain_rpc_url, timeout=2),
            stop=threading.Event(),
        )
    )
    port = service.serve_monitor()
    assert service.prepare()
    thread = threading.Thread(target=service.run, name="processor-under-test", daemon=True)
    thread.start()
    return Running(service, thread, port)


def test_node_unreachable_for_a_while(redis_server, proxy, product, webapp, redis_client):
    running = run_service(
        base_settings(redis_server.url, proxy.url, product.address, error_timeout=1.0)
    )
    try:
        before = webapp.apply()
        wait_until(lambda: not application(redis_client, before), what="first processed")
        wait_until(lambda: running.get("/api/monitor")[0] == 200, what="healthy")

        proxy.stop()
        during = webapp.apply()
        status, body = wait_until(
            lambda: (r := running.get("/api/monitor"))[0] == 500 and r, what="monitor failing"
        )
        assert "node" in body["processor"]
        ready = wait_until(
            lambda: (
                (r := running.get("/api/monitor/readiness"))[0] == 500
                and r[1]["node"] != "ok"
                and r[1]
            ),
            what="readiness naming the node",
        )
        assert ready["node"] == "node unavailable (see the log)", "named, no host nor raw error"
        assert running.get("/api/monitor/liveness")[0] == 200, "alive while waiting"
        assert application(redis_client, during), "kept while the node is away"

        proxy.start()
        wait_until(lambda: not application(redis_client, during), what="processed after outage")
        wait_until(lambda: running.get("/api/monitor")[0] == 200, what="healthy again")
        assert running.get("/api/monitor/readiness")[0] == 200
        assert product.application_count() == 2
    finally:
        running.stop()


def test_redis_restarted_mid_run(anvil, product):
    with RedisServer(persistent=True) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        webapp = WebApp(client, 31337, product.message_helper())
        running = run_service(
            base_settings(server.url, anvil.url, product.address, error_timeout=1.0)
        )
        try:
            first = webapp.apply()
            wait_until(lambda: not application(client, first), what="first processed")

            server.halt()
            status, body = wait_until(
                lambda: (r := running.get("/api/monitor"))[0] == 500 and r, what="monitor failing"
            )
            assert "redis" in body["processor"]
            ready = running.get("/api/monitor/readiness")[1]
            assert ready["redis"] == "redis unavailable (see the log)" and ready["node"] == "ok"

            server.start()
            second = webapp.apply()
            wait_until(lambda: not application(client, second), what="processed after restart")
            wait_until(lambda: running.get("/api/monitor")[0] == 200, what="healthy again")
            assert product.application_count() == 2
            assert (
                client.xpending("application:signatures", "depeg-backend-processor")["pending"] == 0
            )
        finally:
            running.stop()
