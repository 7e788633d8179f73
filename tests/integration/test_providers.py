"""Several providers (CHAIN_RPC_URL a list), each an emulator (devnet/proxy.py) in front of one
anvil: the preferred one cut, slow, lagging, every one rate-limiting in turn, and providers
on different chains. Every application lands once and none is set aside."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from devnet.nodes import Anvil
from devnet.proxy import RpcProxy
from tests.conftest import wait_until
from tests.integration.conftest import (
    PROCESSOR,
    application,
    cli,
    dead_letters,
    http_json,
    receipt,
    service_env,
    wallet_nonce,
)
from tests.integration.test_provider import Readiness, post

SEND = "eth_sendRawTransaction"


@pytest.fixture
def proxies(anvil) -> Iterator[list[RpcProxy]]:
    started = [RpcProxy(anvil.url).start() for _ in range(3)]
    yield started
    for proxy in started:
        proxy.stop()


def urls(*proxies: RpcProxy) -> str:
    return ",".join(proxy.url for proxy in proxies)


def all_landed(redis_client, entity_ids: list[str]) -> bool:
    return not any(application(redis_client, e) for e in entity_ids)


def assert_each_landed_once(anvil, product, redis_client, entity_ids: list[str]) -> None:
    assert wallet_nonce(anvil) == len(entity_ids), "one transaction per application, no more"
    assert product.application_count() == len(entity_ids)
    assert dead_letters(redis_client) == {}
    for entity_id in entity_ids:
        tx_hash = redis_client.get(f"application:signatures:done:{entity_id}")
        assert tx_hash and receipt(anvil, tx_hash)["status"] == "0x1", entity_id


def test_the_emulator_lags_as_a_node_behind_would(anvil, proxies):
    lagging = proxies[0]
    lagging.lag = 5
    anvil.mine(10)
    sent = anvil.rpc(
        "eth_sendTransaction",
        {"from": PROCESSOR.address, "to": PROCESSOR.address, "value": "0x1"},
    )
    mined = int(
        wait_until(lambda: receipt(anvil, sent), what="the transfer mined")["blockNumber"], 16
    )

    def ask(method: str, *params: object) -> object:
        return post(lagging.url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})[
            2
        ].get("result")

    assert int(ask("eth_blockNumber"), 16) == mined - 5
    assert int(ask("eth_getBlockByNumber", "latest", False)["number"], 16) == mined - 5
    assert ask("eth_getBlockByNumber", hex(mined), False) is None
    assert ask("eth_getTransactionReceipt", sent) is None
    assert ask("eth_getTransactionByHash", sent) is None
    assert ask("eth_getTransactionCount", PROCESSOR.address, "latest") == anvil.rpc(
        "eth_getTransactionCount", PROCESSOR.address, hex(mined - 5)
    )


@pytest.mark.parametrize("anvil_args", [{"block_time": 1}])
def test_the_preferred_provider_cut_while_two_hundred_flow(
    start_service, anvil, product, webapp, redis_client, proxies
):
    preferred, fallback = proxies[:2]
    entity_ids = [webapp.apply() for _ in range(200)]
    running = start_service(chain_rpc_url=urls(preferred, fallback), max_in_flight=200)
    wait_until(lambda: running.get("/api/monitor/readiness")[0] == 200, what="ready before the cut")
    readiness = Readiness(running)
    try:
        wait_until(lambda: wallet_nonce(anvil, block="pending") >= 50, what="50 sent", timeout=120)
        before = wallet_nonce(anvil, block="pending")
        cut = time.monotonic()
        preferred.stop()
        wait_until(
            lambda: wallet_nonce(anvil, block="pending") > before,
            what="a transaction sent after the cut",
        )
        resumed = time.monotonic() - cut
        wait_until(lambda: all_landed(redis_client, entity_ids), timeout=240, what="all 200 purged")
    finally:
        readiness.stop()
    print(f"\nsending continued {resumed:.2f}s after the preferred provider was cut")

    assert resumed < 2.0, f"sending continued only {resumed:.2f}s after the cut"
    assert_each_landed_once(anvil, product, redis_client, entity_ids)
    assert {status for status, _body in readiness.answers} == {200}, readiness.answers
    named = [body.get("providers", "") for _status, body in readiness.answers]
    assert "not usable: #0 (not answering)" in named, named
    assert not any("127.0.0.1" in text for text in named), "no internal host in readiness"
    metrics = running.metrics()
    assert metrics[("depeg_processor_provider_usable", (("provider", "0"),))] == 0
    assert metrics[("depeg_processor_provider_usable", (("provider", "1"),))] == 1

    preferred.start()  # back on its port: a probe finds it, and it takes the work back
    wait_until(
        lambda: running.service.runtime.chain.views()[0].usable,
        timeout=60,
        what="the preferred provider usable again",
    )
    preferred.reset_counts()
    back = [webapp.apply() for _ in range(10)]
    wait_until(lambda: all_landed(redis_client, back), timeout=60, what="10 more purged")
    assert preferred.calls["eth_simulateV1"] + preferred.calls["eth_estimateGas"] > 0
    assert preferred.calls[SEND] == 10
    assert_each_landed_once(anvil, product, redis_client, entity_ids + back)


def test_a_slow_preferred_provider_gives_the_work_away_and_takes_it_back(
    start_service, anvil, product, webapp, redis_client, proxies
):
    preferred, fallback = proxies[:2]
    running = start_service(chain_rpc_url=urls(preferred, fallback))
    first = [webapp.apply() for _ in range(5)]
    wait_until(lambda: all_landed(redis_client, first), what="5 purged", timeout=60)

    preferred.delay = 3.0
    fallback.reset_counts()
    slow = [webapp.apply() for _ in range(10)]
    wait_until(lambda: all_landed(redis_client, slow), what="10 purged, slowly", timeout=120)
    assert fallback.calls["eth_getTransactionReceipt"] + fallback.calls["eth_simulateV1"] > 0
    wait_until(lambda: running.service.runtime.chain.views()[0].slow, what="the slow one seen")

    preferred.delay = 0.0
    wait_until(
        lambda: not running.service.runtime.chain.views()[0].slow,
        timeout=60,
        what="the preferred one fast again, as its probes show",
    )
    preferred.reset_counts()
    back = [webapp.apply() for _ in range(5)]
    wait_until(lambda: all_landed(redis_client, back), what="5 more purged", timeout=60)
    assert preferred.calls["eth_simulateV1"] + preferred.calls["eth_estimateGas"] > 0, (
        "the work came back to the preferred provider"
    )
    assert_each_landed_once(anvil, product, redis_client, first + slow + back)


class Purges:
    """Samples the head at which each application's hash leaves Redis."""

    def __init__(self, anvil, redis_client, entity_ids: list[str]) -> None:
        self.at: dict[str, int] = {}
        self._anvil, self._redis, self._ids = anvil, redis_client, entity_ids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="purge-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            head = self._anvil.block_number()
            for entity_id in self._ids:
                if entity_id not in self.at and not application(self._redis, entity_id):
                    self.at[entity_id] = head

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.parametrize("anvil_args", [{"block_time": 1}])
def test_a_provider_lagging_five_blocks_fools_nothing(
    start_service, redis_server, anvil, product, webapp, redis_client, proxies
):
    lagging, current = proxies[:2]
    lagging.lag = 5
    anvil.mine(6)  # a head the lagging one can be five behind
    entity_ids = [webapp.apply() for _ in range(30)]
    purges = Purges(anvil, redis_client, entity_ids)
    running = start_service(chain_rpc_url=urls(lagging, current), min_confirmations=2)
    try:
        wait_until(lambda: len(purges.at) == 30, timeout=120, what="30 purged")
    finally:
        purges.stop()
    status = cli(
        service_env(redis_server.url, urls(lagging, current), product.address), "status", "--json"
    )

    assert_each_landed_once(anvil, product, redis_client, entity_ids)
    assert current.calls[SEND] == 30, "each sent once: nothing resent as dropped"
    assert redis_client.xlen("application:signatures") == 30, "nothing put back on the queue"
    for method in ("eth_getTransactionReceipt", "eth_getTransactionByHash", "eth_getBlockReceipts"):
        assert lagging.calls[method] == 0, f"{method} asked of the lagging provider"
    for entity_id in entity_ids:
        mined = int(
            receipt(anvil, redis_client.get(f"application:signatures:done:{entity_id}"))[
                "blockNumber"
            ],
            16,
        )
        due = mined + 1  # two confirmations
        assert due <= purges.at[entity_id] < due + 5, (entity_id, mined, purges.at[entity_id])
    assert running.service.runtime.chain.views()[0].lag >= 4
    metrics = running.metrics()
    assert metrics[("depeg_processor_provider_lag_blocks", (("provider", "0"),))] >= 4
    report = json.loads(status.stdout)
    assert report["wallets"][0]["nonce_latest"] == 30, "read from the provider that keeps up"
    providers = report["providers"]
    assert [p["provider"] for p in providers] == [
        f"#0 http://127.0.0.1:{lagging.port}",
        f"#1 http://127.0.0.1:{current.port}",
    ]
    assert 5 <= providers[0]["lag_blocks"] <= 6 and providers[1]["lag_blocks"] == 0, providers


@pytest.mark.parametrize("anvil_args", [{"block_time": 1}])
def test_every_provider_rate_limiting_in_turn(
    start_service, anvil, product, webapp, redis_client, proxies
):
    # one failed attempt would set an application aside at once
    start_service(chain_rpc_url=urls(*proxies), max_deliveries=1, max_in_flight=100)
    entity_ids = []
    for turn in range(2 * len(proxies)):  # each provider refuses everything in its turn
        limited = proxies[turn % len(proxies)]
        refused = limited.rate_limited
        for proxy in proxies:
            proxy.limiting = proxy is limited
        wave = [webapp.apply() for _ in range(15)]
        entity_ids += wave
        wait_until(
            lambda wave=wave: all_landed(redis_client, wave), timeout=120, what="the wave purged"
        )
        assert limited.rate_limited > refused, f"provider {turn % len(proxies)} was not asked"
    for proxy in proxies:
        proxy.limiting = False
    assert_each_landed_once(anvil, product, redis_client, entity_ids)


def test_every_raw_transaction_reaches_every_provider(
    start_service, anvil, product, webapp, redis_client, proxies
):
    entity_ids = [webapp.apply() for _ in range(20)]
    start_service(chain_rpc_url=urls(*proxies))
    wait_until(lambda: all_landed(redis_client, entity_ids), timeout=120, what="20 purged")
    assert_each_landed_once(anvil, product, redis_client, entity_ids)
    assert [proxy.calls[SEND] for proxy in proxies] == [20, 20, 20]


def test_providers_on_different_chains_refuse_the_start(redis_server, anvil, product, proxies):
    with Anvil(chain_id=1337) as other:
        env = service_env(redis_server.url, urls(proxies[0]) + "," + other.url, product.address)
        started = cli(env, timeout=60)
        checked = cli(env, "check-config", timeout=60)
    assert started.returncode == 2
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert (
        "CHAIN_RPC_URL" in lines[0] and "chain id 31337" in lines[0] and "chain id 1337" in lines[0]
    )
    assert f"#1 http://127.0.0.1:{other.port}" in lines[0]
    assert checked.returncode == 1 and "providers FAILED" in checked.stdout, checked.stdout


def test_check_config_reaches_each_provider(redis_server, anvil, product, proxies):
    proxies[1].missing_methods = {"eth_simulateV1", "eth_getBlockReceipts"}
    env = service_env(redis_server.url, urls(*proxies[:2]) + "/v3/SECRET-KEY", product.address)
    checked = cli(env, "check-config", timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    head = anvil.block_number()
    lines = [line for line in checked.stdout.splitlines() if line.startswith("provider ")]
    assert lines == [
        f"provider #0 http://127.0.0.1:{proxies[0].port} ok: chain id 31337, head {head}, "
        "eth_simulateV1 yes, eth_getBlockReceipts yes",
        f"provider #1 http://127.0.0.1:{proxies[1].port} ok: chain id 31337, head {head}, "
        "eth_simulateV1 no, eth_getBlockReceipts no",
    ], checked.stdout
    assert "SECRET" not in checked.stdout + checked.stderr
    assert PROCESSOR.address in checked.stdout


def test_no_provider_key_reaches_a_log_line_an_endpoint_or_a_command(
    redis_server, anvil, product, webapp, redis_client, proxies, spawn, tmp_path
):
    down, serving = proxies[:2]
    down.stop()  # its failures are logged, and named in readiness and /metrics
    keyed = ",".join(
        f"{p.url}/v3/SECRET-KEY-{i}?apikey=SECRET-KEY-{i}" for i, p in enumerate([down, serving])
    )
    env = service_env(redis_server.url, keyed, product.address, NODE_ENV="development")
    log = tmp_path / "processor.log"
    process = spawn(env, log)
    entity_ids = [webapp.apply() for _ in range(5)]
    wait_until(lambda: all_landed(redis_client, entity_ids), timeout=60, what="5 purged")
    port = int(env["PORT"])
    status, readiness = wait_until(
        lambda: (
            (answer := http_json(port, "/api/monitor/readiness"))
            and "providers" in answer[1]
            and answer
        ),
        what="readiness naming the provider that is down",
    )
    assert status == 200 and readiness["providers"] == "not usable: #0 (not answering)"
    assert "127.0.0.1" not in json.dumps(readiness), "no internal host in readiness"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        metrics = answer.read().decode()
    assert 'depeg_processor_provider_usable{provider="0"} 0.0' in metrics
    shown = [cli(env, "status"), cli(env, "status", "--json"), cli(env, "check-config")]
    process.terminate()
    process.wait(10)
    text = log.read_text()
    assert "DEBUG" in text and f"#0 http://127.0.0.1:{down.port}" in text
    for where, output in [
        ("log", text),
        ("readiness", json.dumps(readiness)),
        ("metrics", metrics),
        *((" ".join(r.args[3:]), r.stdout + r.stderr) for r in shown),
    ]:
        assert "SECRET" not in output, where
