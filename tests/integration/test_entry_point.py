"""`python -m depeg_processor` as operators run it: configuration errors, signals, logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from devnet.nodes import TEST_MNEMONIC, clean_env
from tests.conftest import wait_until
from tests.integration.conftest import application, cli, http_json, service_env

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "change, variable",
    [
        ({"CHAIN_RPC_URL": None}, "CHAIN_RPC_URL"),
        ({"DEPEG_PRODUCT_ADDRESS": "0x1234"}, "DEPEG_PRODUCT_ADDRESS"),
        ({"PROCESSOR_ALERT_BALANCE": "1", "PROCESSOR_MIN_BALANCE": "2"}, "PROCESSOR_ALERT_BALANCE"),
        (
            {"PROCESSOR_MNEMONIC": "test test test test test test test test test test test test"},
            "PROCESSOR_MNEMONIC",
        ),
        ({"MAX_FEE_PER_GAS": "lots"}, "MAX_FEE_PER_GAS"),
    ],
)
def test_bad_configuration_stops_with_one_line_naming_the_variable(tmp_path, change, variable):
    env = clean_env() | {
        "CHAIN_RPC_URL": "http://127.0.0.1:1",
        "DEPEG_PRODUCT_ADDRESS": "0x" + "11" * 20,
        "PROCESSOR_MNEMONIC": TEST_MNEMONIC,
    }
    for name, value in change.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    result = cli(env, cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], result.stderr
    assert "junk" not in result.stderr and "test test" not in result.stderr


@pytest.mark.parametrize("command", [(), ("check-config",)])
def test_with_nothing_set_every_required_variable_is_named_on_its_line(tmp_path, command):
    result = cli(clean_env(), *command, cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: CHAIN_RPC_URL: is required but not set",
        "configuration error: DEPEG_PRODUCT_ADDRESS: is required but not set",
        "configuration error: PROCESSOR_MNEMONIC: is required but not set",
    ]


@pytest.mark.parametrize("command", [(), ("check-config",)])
def test_every_bad_variable_is_named_at_once_without_the_secret(tmp_path, command):
    env = clean_env() | {
        "CHAIN_RPC_URL": "http://127.0.0.1:1",
        "DEPEG_PRODUCT_ADDRESS": "0x" + "11" * 20,
        "PROCESSOR_MNEMONIC": "test test test test test test test test test test test test",
        "MAX_FEE_PER_GAS": "abc",
    }
    result = cli(env, *command, cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0] == "configuration error: PROCESSOR_MNEMONIC: is not valid"
    assert lines[1].startswith("configuration error: MAX_FEE_PER_GAS: 'abc' is not valid")
    assert "test test" not in result.stderr and not result.stdout


def test_dot_env_file_is_read_from_the_working_directory(tmp_path):
    (tmp_path / ".env").write_text(
        "CHAIN_RPC_URL=http://127.0.0.1:1\n"
        "DEPEG_PRODUCT_ADDRESS=0x1234\n"
        f"PROCESSOR_MNEMONIC={TEST_MNEMONIC}\n"
    )
    result = cli(clean_env(), cwd=tmp_path, timeout=30)
    assert result.returncode == 2 and "DEPEG_PRODUCT_ADDRESS" in result.stderr


def start_with_piped_logs(env: dict) -> subprocess.Popen:
    """The service with its log on a pipe, read by communicate() once it has stopped (these
    tests send a handful of applications: the pipe does not fill up)."""
    return subprocess.Popen(
        [sys.executable, "-m", "depeg_processor"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_finishes_and_exits_zero_with_json_logs(
    redis_server, anvil, product, webapp, redis_client
):
    env = service_env(redis_server.url, anvil.url, product.address, NODE_ENV="production")
    process = start_with_piped_logs(env)
    try:
        port = int(env["PORT"])
        wait_until(
            lambda: (
                http_json(port, "/api/monitor")
                == (200, {"balance": "ok", "processor": "ok", "nonAckPendingTx": "ok"})
            ),
            what="healthy monitor",
        )
        entity_id = webapp.apply()
        wait_until(lambda: not application(redis_client, entity_id), what="processed")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
    _out, err = process.communicate()
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert records, "the service logged nothing"
    assert {"time", "level", "thread", "logger", "message"} <= set(records[0])
    assert any(entity_id in r["message"] and "confirmed" in r["message"] for r in records)
    assert TEST_MNEMONIC not in err and "junk" not in err


def test_sigterm_with_a_scrapers_kept_alive_connection_stops_every_thread(
    redis_server, anvil, product, redis_client
):
    """A scraper keeps its connection to /metrics open between scrapes: the monitor closes
    it at shutdown instead of waiting out its idle timeout (every thread stops in time)."""
    import http.client

    env = service_env(redis_server.url, anvil.url, product.address, NODE_ENV="production")
    process = start_with_piped_logs(env)
    try:
        port = int(env["PORT"])
        wait_until(lambda: (http_json(port, "/api/monitor") or (0,))[0] == 200, what="monitor up")
        scraper = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        scraper.request("GET", "/metrics")
        answer = scraper.getresponse()
        assert answer.status == 200 and b"depeg" in answer.read()
        assert answer.getheader("Connection", "").lower() != "close", "kept alive"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert scraper.sock is not None and scraper.sock.recv(1) == b"", "closed by the server"
        scraper.close()
    finally:
        if process.poll() is None:
            process.kill()
    _out, err = process.communicate()
    messages = [json.loads(line)["message"] for line in err.splitlines() if line.strip()]
    assert not [m for m in messages if "did not stop" in m], messages[-5:]


def test_readable_logs_outside_production_never_contain_secrets(
    redis_server, anvil, product, webapp, redis_client
):
    env = service_env(redis_server.url, anvil.url, product.address, NODE_ENV="development")
    process = start_with_piped_logs(env)
    fields = webapp.application()
    try:
        entity_id = webapp.submit(fields)
        wait_until(lambda: not application(redis_client, entity_id), what="processed")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    _out, err = process.communicate()
    assert "DEBUG" in err and entity_id in err
    assert fields["signature"][2:] not in err, "the user's signature must not be logged"
    assert "junk" not in err


# Run as `python -m depeg_processor` would, then name the heavy packages loaded by the end.
HEAVY_AT_EXIT = """
import atexit, runpy, sys
def report():
    loaded = {m.split(".")[0] for m in sys.modules}
    heavy = sorted(loaded & {"eth_account", "eth_keyfile", "py_ecc"})
    print("HEAVY=" + ",".join(heavy), file=sys.stderr)
atexit.register(report)
sys.argv = ["depeg_processor"]
runpy.run_module("depeg_processor", run_name="__main__", alter_sys=True)
"""


def test_a_mnemonic_processor_sends_without_eth_account_or_its_keystore_and_bls_code(
    redis_server, anvil, product, webapp, redis_client
):
    """eth-account's import brings eth-keyfile and py_ecc's BLS pairing code, a quarter of a
    second of the start; with a mnemonic nothing of them runs, from start to a confirmed
    application to the stop."""
    env = service_env(redis_server.url, anvil.url, product.address, NODE_ENV="production")
    entity_id = webapp.apply()
    process = subprocess.Popen(
        [sys.executable, "-c", HEAVY_AT_EXIT],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: not application(redis_client, entity_id), what="processed")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    _out, err = process.communicate()
    assert "HEAVY=\n" in err, err[-2000:]
