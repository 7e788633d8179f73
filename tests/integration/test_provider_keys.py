"""A provider whose answers carry one malformed header line, as some load balancers add:
urllib3 warns `Failed to parse headers (url=...)` with the whole URL on every answer. The API
key in that URL appears in no log line of a whole run at DEBUG (JSON lines, as in production),
nor in readiness, /metrics, `status` or `check-config`."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator

import pytest

from devnet.nodes import TEST_PROVIDER_KEY
from devnet.proxy import RpcProxy
from devnet.secrets_check import secrets
from tests.conftest import wait_until
from tests.integration.conftest import (
    application,
    cli,
    http_json,
    keyed_url,
    service_env,
)

HEADER_WARNING = "Failed to parse headers (url="


@pytest.fixture
def malformed(anvil) -> Iterator[RpcProxy]:
    proxy = RpcProxy(anvil.url, malformed_header=True).start()
    yield proxy
    proxy.stop()


def landed(redis_client, entity_ids: list[str]) -> bool:
    return not any(application(redis_client, e) for e in entity_ids)


def test_no_key_in_a_whole_run_against_a_provider_with_a_malformed_header(
    redis_server, product, webapp, redis_client, malformed, spawn, tmp_path
):
    env = service_env(
        redis_server.url,
        keyed_url(malformed.url),
        product.address,
        NODE_ENV="production",
        LOG_LEVEL="DEBUG",
    )
    log = tmp_path / "processor.log"
    process = spawn(env, log)
    entity_ids = [webapp.apply() for _ in range(3)]
    wait_until(lambda: landed(redis_client, entity_ids), timeout=60, what="3 purged")
    port = int(env["PORT"])
    status, readiness = wait_until(
        lambda: (answer := http_json(port, "/api/monitor/readiness")) and answer,
        what="readiness",
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        metrics = answer.read().decode()
    shown = [cli(env, "status"), cli(env, "status", "--json"), cli(env, "check-config")]
    process.terminate()
    assert process.wait(10) == 0
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(line["level"] == "DEBUG" for line in lines), "a DEBUG log"
    warnings = [line for line in lines if line["message"].startswith(HEADER_WARNING)]
    assert warnings, "the provider's malformed header line was warned about"
    assert all(line["logger"] == "urllib3.connection" for line in warnings)
    assert f"(url={malformed.url}***?***)" in warnings[0]["message"]
    assert status == 200 and readiness["node"] == "ok"
    assert all(r.returncode == 0 for r in shown), [r.stderr for r in shown]
    for where, output in [
        ("log", text),
        ("readiness", json.dumps(readiness)),
        ("metrics", metrics),
        *((" ".join(r.args[3:]), r.stdout + r.stderr) for r in shown),
    ]:
        for secret in secrets():
            assert secret.lower() not in output.lower(), f"{where}: {secret[:6]}..."


def test_no_key_in_the_records_of_a_service_run_in_process(
    start_service, webapp, redis_client, malformed, caplog
):
    """The same through this process's own log (the DEBUG log `make test` checks): every
    record of every logger, its traceback included, is masked as it is made."""
    caplog.set_level(logging.DEBUG)
    running = start_service(chain_rpc_url=keyed_url(malformed.url))
    entity_ids = [webapp.apply() for _ in range(2)]
    wait_until(lambda: landed(redis_client, entity_ids), timeout=60, what="2 purged")
    running.stop()
    warned = [r for r in caplog.records if r.getMessage().startswith(HEADER_WARNING)]
    assert warned and warned[0].name == "urllib3.connection"
    for record in caplog.records:
        assert TEST_PROVIDER_KEY not in f"{record.getMessage()} {record.exc_text or ''}"
    assert TEST_PROVIDER_KEY not in caplog.text
