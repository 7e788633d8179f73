"""A slow node on real redis and anvil: the lease is kept however long the node takes, writes of
a process that lost it are refused, and a fee spike with many transactions in flight is
handled in a few batch requests while liveness stays green."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from eth_account import Account
from prometheus_client import CollectorRegistry
from web3 import Web3

from depeg_processor.faults import Faults
from depeg_processor.metrics import Metrics
from depeg_processor.service import Service
from depeg_processor.startup import build_runtime
from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import (
    LEASE_KEY,
    PROCESSOR,
    Running,
    application,
    base_settings,
    dead_letters,
    receipt,
    wallet_nonce,
)

GWEI = 10**9
STREAM = "application:signatures"


class RequestLog:
    """A pass-through in front of the node that keeps the methods of every HTTP request the
    service makes (a JSON-RPC batch is one request)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[list[str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> RequestLog:
        log = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                message = json.loads(body)
                with log._lock:
                    log.requests.append(
                        [
                            m.get("method")
                            for m in (message if isinstance(message, list) else [message])
                        ]
                    )
                request = urllib.request.Request(
                    log.upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=60) as response:
                    status, payload = response.status, response.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="request-log", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def carrying(self, method: str, since: int = 0) -> list[int]:
        """How many calls of `method` each request since the `since`-th carried (if any)."""
        with self._lock:
            return [r.count(method) for r in self.requests[since:] if method in r]


def build_service(
    redis_server, rpc_url: str, product, *, faults: Faults | None = None, **overrides: object
) -> Service:
    overrides.setdefault("rpc_timeout", 30.0)
    settings = base_settings(redis_server.url, rpc_url, product.address, **overrides)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=10)
    service = Service(  # built as the entry point builds it, with a slower node's timeout
        build_runtime(
            settings,
            accounts=[PROCESSOR],
            redis_client=client,
            metrics=Metrics(CollectorRegistry()),
            faults=faults or Faults(),
        )
    )
    return service


@pytest.fixture
def services():
    """Services run in threads by a test; stopped at the end."""
    running: list[Running] = []

    def run(service: Service) -> Running:
        port = service.serve_monitor()
        assert service.prepare()
        thread = threading.Thread(target=service.run, name="processor-under-test", daemon=True)
        thread.start()
        running.append(Running(service, thread, port))
        return running[-1]

    yield run
    for item in running:
        item.stop()


def pool_hashes(anvil) -> set[str]:
    """Every transaction hash in the node's pool, mineable now or not."""
    content = anvil.rpc("txpool_content")
    return {
        tx["hash"]
        for part in ("pending", "queued")
        for by_nonce in content.get(part, {}).values()
        for tx in by_nonce.values()
    }


def lease_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "lease" in r.getMessage().lower()
    ]


def test_a_node_answering_in_3s_costs_no_lease_and_every_application_lands_once(
    redis_server, anvil, product, webapp, redis_client, services, caplog
):
    entity_ids = [webapp.apply() for _ in range(20)]
    with RpcProxy(anvil.url, delay=3.0) as slow_node:
        service = build_service(
            redis_server,
            slow_node.url,
            product,
            read_count=50,
            lease_ttl=15.0,
            max_priority_fee_per_gas=GWEI,
        )
        running = services(service)
        owner = service.wallets[0].lease.owner
        wait_until(lambda: redis_client.get(LEASE_KEY) == owner, what="the lease taken")
        holders = set()

        def all_landed() -> bool:
            holders.add(redis_client.get(LEASE_KEY))
            return not any(application(redis_client, e) for e in entity_ids)

        wait_until(all_landed, timeout=300, what="all 20 confirmed and purged")
        assert product.application_count() == 20
        assert wallet_nonce(anvil) == 20, "each exactly once"
        assert dead_letters(redis_client) == {}
        assert holders == {owner}, "the lease never changed hands nor lapsed in Redis"
        assert service.wallets[0].lease.held() and service.wallets[0].lease.generation == 1, (
            "gained once: never lost and taken again"
        )
        assert lease_warnings(caplog) == [], "no LeaseLost, no lost lease"
        assert slow_node.calls["eth_sendRawTransaction"] == 20, "one send each, no resends"
        assert running.get("/api/monitor/liveness")[0] == 200


def test_writes_after_a_lost_lease_are_refused(
    redis_server, anvil, product, webapp, redis_client, caplog
):
    """The holder has not noticed yet that its lease expired and another took it: the fence
    refuses its replacement and its requeue; the next holder's state stays as it was."""
    anvil.set_automine(False)
    armed = []

    def use_the_nonce_and_lose_the_lease() -> None:  # between the record and the broadcast
        if not armed:
            return
        nonce = wallet_nonce(anvil, block="pending")
        transfer = Account.sign_transaction(
            {
                "chainId": int(anvil.rpc("eth_chainId"), 16),
                "nonce": nonce,
                "to": PROCESSOR.address,
                "value": 0,
                "gas": 21_000,
                "maxFeePerGas": 10 * GWEI,
                "maxPriorityFeePerGas": GWEI,
            },
            PROCESSOR.key,
        )
        anvil.rpc("eth_sendRawTransaction", Web3.to_hex(transfer.raw_transaction))
        redis_client.set(LEASE_KEY, "the-next-holder", px=60_000)

    service = build_service(
        redis_server,
        anvil.url,
        product,
        stuck_blocks=1,
        lease_ttl=60.0,
        max_priority_fee_per_gas=GWEI,
        faults=Faults("after-record", action=use_the_nonce_and_lose_the_lease),
    )
    assert service.prepare()
    assert service.wallets[0].lease.acquire()  # what the keeper does; driven here step by step
    first = webapp.apply()
    assert service.consumers[0].run_once() == 1
    tx_hash = application(redis_client, first)["transactionHash"]
    wait_until(lambda: tx_hash in pool_hashes(anvil), what="in the pool")
    record = redis_client.hgetall(f"{STREAM}:tx:{first}")

    # replace: the transaction is stuck under a base fee spike
    assert service.wallets[0].watch_now() == 0  # seen unmined
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))
    anvil.mine(1)
    redis_client.set(LEASE_KEY, "the-next-holder", px=60_000)
    assert service.wallets[0].lease.held(), "this process has not noticed"
    service.wallets[0].watch_now()
    assert redis_client.hgetall(f"{STREAM}:tx:{first}") == record, "not overwritten"
    assert application(redis_client, first)["transactionHash"] == tx_hash
    assert pool_hashes(anvil) <= {tx_hash}, "no replacement was sent"

    # the control: holding the lease, the next round replaces it
    redis_client.set(LEASE_KEY, service.wallets[0].lease.owner, px=60_000)
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))
    anvil.mine(1)
    service.wallets[0].watch_now()
    replaced = redis_client.hgetall(f"{STREAM}:tx:{first}")
    assert replaced["txHash"] != tx_hash and tx_hash in replaced["previousHashes"]

    # requeue: the next transaction's nonce is used on chain before it is broadcast
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))
    anvil.mine(1)
    anvil.set_automine(True)

    def first_purged() -> bool:
        service.wallets[0].watch_now()
        return not application(redis_client, first)

    wait_until(first_purged, what="the first one mined and purged")
    assert service.wallets[0].lease.acquire()
    second = webapp.apply()
    stream_length = redis_client.xlen(STREAM)
    armed.append(True)
    assert service.consumers[0].run_once() == 1  # recorded (fenced, while still held)
    wait_until(
        lambda: any("not enqueued again" in r.getMessage() for r in caplog.records),
        what="the requeue refused",
    )
    assert redis_client.xlen(STREAM) == stream_length, "not enqueued again"
    kept = redis_client.hgetall(f"{STREAM}:tx:{second}")
    assert kept and application(redis_client, second)["transactionHash"] == kept["txHash"]
    assert receipt(anvil, kept["txHash"]) is None


def test_a_fee_spike_with_many_in_flight_is_replaced_in_a_few_requests(
    redis_server, anvil, product, webapp, redis_client, services
):
    count = 120
    anvil.set_automine(False)
    entity_ids = [webapp.apply() for _ in range(count)]
    with RpcProxy(anvil.url, delay=0.25) as slow_node, RequestLog(slow_node.url) as requests_log:
        service = build_service(
            redis_server,
            requests_log.url,
            product,
            read_count=200,
            max_in_flight=count,  # all of them in flight at once, then the spike
            stuck_blocks=2,
            max_fee_per_gas=50 * GWEI,
            max_priority_fee_per_gas=GWEI,
            loop_max_timeout=10.0,
            max_non_ack_pending=10_000,
        )
        assert service.limits.watcher_max_age == 10.0
        running = services(service)
        first = wait_until(
            lambda: (
                all(application(redis_client, e).get("transactionHash") for e in entity_ids)
                and {e: application(redis_client, e)["transactionHash"] for e in entity_ids}
            ),
            timeout=120,
            what="all recorded",
        )
        wait_until(
            lambda: pool_hashes(anvil) >= set(first.values()), timeout=120, what="all broadcast"
        )
        wait_until(
            lambda: service.state.snapshot().in_flight == count,
            what="the watcher watching them all",
        )

        since = len(requests_log.requests)
        proxied = slow_node.requests
        for _ in range(3):  # above the offered fees: nothing is mined
            anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))
            anvil.mine(1)
        liveness = []

        def all_replaced() -> bool:
            status, body = running.get("/api/monitor/liveness")
            liveness.append((status, body["processor"]))
            return all(
                application(redis_client, e)["transactionHash"] != first[e] for e in entity_ids
            )

        wait_until(all_replaced, timeout=120, what="every transaction replaced")
        sends = requests_log.carrying("eth_sendRawTransaction", since)
        print(
            f"replacement phase: {sum(sends)} transactions sent in {len(sends)} request(s) "
            f"{sends}; {slow_node.requests - proxied} requests through the proxy in all"
        )
        assert sum(sends) >= count
        assert len(sends) <= 10, "replacements go out in batches, not one request each"
        fee_lookups = requests_log.carrying("eth_getBlockByNumber", since)
        assert len(fee_lookups) <= 2 * len(sends), "one fee lookup per round"
        assert set(liveness) == {(200, "ok")}, "the watcher's heartbeat stayed fresh"

        def landed() -> bool:
            anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))
            anvil.mine(1)
            return not any(application(redis_client, e) for e in entity_ids)

        wait_until(landed, timeout=120, what="all mined and purged")
        assert product.application_count() == count and wallet_nonce(anvil) == count
        assert running.get("/api/monitor/liveness")[0] == 200
