"""Behind a hosted provider's limits (the emulator in devnet/proxy.py in front of anvil): batches
over a size refused, a rate limit answered with 429 or -32005, or no batches at all. Every
application still lands exactly once, none is set aside, and the monitor says while the node
rate-limits."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import application, dead_letters, receipt, wallet_nonce


def post(url: str, body: object) -> tuple[int, dict, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def call(method: str, i: int = 0) -> dict:
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": []}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_emulator_refuses_as_a_provider_would(anvil):
    clock = Clock()
    with RpcProxy(
        anvil.url, max_batch=3, rate_limit=4, limit_answer="mixed", monotonic=clock
    ) as provider:
        status, _headers, body = post(provider.url, [call("eth_chainId", i) for i in range(4)])
        assert status == 200 and body["error"]["code"] == -32600 and body["id"] is None
        status, _headers, body = post(provider.url, [call("eth_chainId", i) for i in range(3)])
        assert status == 200 and [m["result"] for m in body] == ["0x7a69"] * 3
        assert post(provider.url, call("eth_chainId"))[2]["result"] == "0x7a69"  # 4 of 4 calls

        status, headers, body = post(provider.url, call("eth_chainId"))
        assert status == 429 and headers["Retry-After"] == "1"
        status, _headers, body = post(provider.url, call("eth_chainId"))
        assert status == 200 and body["error"]["code"] == -32005  # "mixed": every other time
        clock.now += 0.5  # two calls' worth
        assert post(provider.url, [call("eth_chainId", i) for i in range(2)])[0] == 200
        assert (provider.refused_batches, provider.rate_limited, provider.rate_limited_json) == (
            1,
            1,
            1,
        )
        assert provider.calls["eth_chainId"] == 6  # what reached the node

    with RpcProxy(anvil.url, batches=False, batch_refusal_status=400) as provider:
        status, _headers, body = post(provider.url, [call("eth_chainId", i) for i in range(2)])
        assert status == 400 and "not supported" in body["error"]["message"]
        assert post(provider.url, call("eth_chainId"))[2]["result"] == "0x7a69"


class Readiness:
    """Samples /api/monitor/readiness in the background; keeps the distinct answers."""

    def __init__(self, running) -> None:
        self.answers: list[tuple[int, dict]] = []
        self._running = running
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="readiness-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            answer = self._running.get("/api/monitor/readiness")
            if answer not in self.answers:
                self.answers.append(answer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.parametrize("anvil_args", [{"block_time": 1}])
def test_two_hundred_applications_land_behind_batch_and_rate_limits(
    start_service, anvil, product, webapp, redis_client
):
    entity_ids = [webapp.apply() for _ in range(200)]
    with RpcProxy(anvil.url, max_batch=10, rate_limit=40, limit_answer="mixed") as provider:
        started = time.monotonic()
        # entries are read 50 at a time, so simulations and sends go out in batches the
        # provider refuses until the client has learned its limit (the wallet's cap on
        # transactions in flight above the 200, so reads are not cut to the room under it)
        running = start_service(
            chain_rpc_url=provider.url, receipt_poll_interval=0.5, read_count=50, max_in_flight=200
        )
        readiness = Readiness(running)
        try:
            wait_until(
                lambda: not any(application(redis_client, e) for e in entity_ids),
                timeout=240,
                what="all 200 applications confirmed and purged",
            )
            took = time.monotonic() - started
            wait_until(
                lambda: running.get("/api/monitor/readiness")[0] == 200,
                what="readiness ok once the limit is no longer hit",
            )
        finally:
            readiness.stop()
        metrics = running.metrics()
        print(
            f"\n200 applications behind the limits in {took:.1f}s; the provider refused "
            f"{provider.rate_limited} requests with HTTP 429, {provider.rate_limited_json} "
            f"with -32005 and {provider.refused_batches} batches as too large; "
            f"{provider.total_calls()} calls reached the node in {provider.requests} "
            f"requests"
        )

    assert wallet_nonce(anvil) == 200, "one transaction per application, no more"
    assert product.application_count() == 200
    assert dead_letters(redis_client) == {}
    for entity_id in entity_ids:
        tx_hash = redis_client.get(f"application:signatures:done:{entity_id}")
        assert tx_hash and receipt(anvil, tx_hash)["status"] == "0x1", entity_id
    assert provider.rate_limited > 0 and provider.refused_batches > 0
    assert running.service.runtime.chain.max_batch <= 10, "the refused size is remembered"
    assert (
        metrics[("depeg_processor_rpc_errors_total", (("kind", "RateLimited"),))]
        >= provider.rate_limited
    )
    limited = [
        body["node"]
        for status, body in readiness.answers
        if status == 500 and body["node"].startswith("rate limited by the node")
    ]
    assert limited, readiness.answers


def test_twenty_applications_land_through_a_provider_without_batches(
    start_service, anvil, product, webapp, redis_client
):
    entity_ids = [webapp.apply() for _ in range(20)]
    with RpcProxy(anvil.url, batches=False, batch_refusal_status=400) as provider:
        running = start_service(chain_rpc_url=provider.url)
        wait_until(
            lambda: not any(application(redis_client, e) for e in entity_ids),
            timeout=120,
            what="all 20 applications confirmed and purged",
        )
        refused = provider.refused_batches

    assert wallet_nonce(anvil) == 20
    assert product.application_count() == 20
    assert dead_letters(redis_client) == {}
    assert not running.service.runtime.chain.batches
    # the processor, its broadcaster and the watcher may each meet a refusal before the size
    # they share drops to one call; after that no batch is tried again
    assert refused <= 3, "after the first refusals no batch is tried again"


@pytest.mark.parametrize("simulates", [True, False], ids=["eth_simulateV1", "without it"])
def test_batches_are_simulated_in_one_call_or_with_eth_call_where_the_node_lacks_it(
    start_service, anvil, product, webapp, redis_client, simulates
):
    entity_ids = [webapp.apply() for _ in range(60)]
    missing = () if simulates else ("eth_simulateV1",)
    with RpcProxy(anvil.url, missing_methods=missing) as provider:
        # batches of 10 (the in-flight cap above the 60, so no read is cut to the room under
        # it, as with automine the watcher sees them mined a round later): the first is
        running = start_service(chain_rpc_url=provider.url, max_in_flight=60)
        wait_until(  # estimated (eth_estimateGas), the five after it simulated
            lambda: not any(application(redis_client, e) for e in entity_ids),
            timeout=120,
            what="all 60 applications confirmed and purged",
        )
        calls = dict(provider.calls)

    assert wallet_nonce(anvil) == 60, "one transaction per application, no more"
    assert product.application_count() == 60
    assert dead_letters(redis_client) == {}
    assert running.service.wallets[0].ctx.shared.simulator.simulates is simulates
    if simulates:
        assert calls["eth_call"] == 1, "the message helper's address at start, no simulation"
        assert 5 <= calls["eth_simulateV1"] <= 6, calls  # one per batch
    else:
        assert calls["eth_simulateV1"] == 3, "asked for three batches, then never again"
        assert calls["eth_call"] >= 1 + 50, calls
