"""Fixtures that start a real redis-server and a real anvil on free ports, deploy the product
test double, and run the processor service in-process (threads) or as a subprocess."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families

from depeg_processor import redaction
from depeg_processor.config import DERIVATION_PATH, Settings
from depeg_processor.inbound.untrusted import REDIS_DECODING
from depeg_processor.service import Service
from depeg_processor.startup import build_runtime
from depeg_processor.wallet.pool import derive_accounts
from devnet.nodes import TEST_MNEMONIC, TEST_PROVIDER_KEY, Anvil, RedisServer
from devnet.product import Product
from devnet.secrets_check import wallet_keys
from devnet.webapp import WebApp
from tests.integration.real_product import real_product  # noqa: F401  (a session fixture)

pytestmark = pytest.mark.integration
Account.enable_unaudited_hdwallet_features()

PROCESSOR = Account.from_mnemonic(TEST_MNEMONIC, account_path=DERIVATION_PATH)
# the product's owner (and the limit's sender) use accounts clear of a pool's first wallets
OWNER = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/9")


@pytest.fixture(scope="session", autouse=True)
def redacted_logs() -> Iterator[None]:
    """This process logs as the entry point does (`__main__.guard_secrets`): the services run
    in-process log here, through any library, with the tests' secrets masked."""
    factory, hook, thread_hook = logging.getLogRecordFactory(), sys.excepthook, threading.excepthook
    redaction.install(
        redaction.Redactor(
            urls=[keyed_url("http://127.0.0.1")], mnemonic=TEST_MNEMONIC, keys=wallet_keys()
        )
    )
    yield
    logging.setLogRecordFactory(factory)
    sys.excepthook, threading.excepthook = hook, thread_hook


def keyed_url(url: str) -> str:
    """`url` as a hosted provider's, with the tests' API key in its path and query."""
    return f"{url}/v3/{TEST_PROVIDER_KEY}?apikey={TEST_PROVIDER_KEY}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, **REDIS_DECODING)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def anvil_args() -> dict:
    """Override in a test module (or with indirect parametrisation) to change the node."""
    return {}


@pytest.fixture
def anvil(anvil_args: dict) -> Iterator[Anvil]:
    with Anvil(**anvil_args) as node:
        yield node


@pytest.fixture
def product(anvil: Anvil) -> Product:
    return Product.deploy(anvil.url, OWNER)


@pytest.fixture
def webapp(redis_client: redis.Redis, anvil: Anvil, product: Product) -> WebApp:
    return WebApp(redis_client, int(anvil.rpc("eth_chainId"), 16), product.message_helper())


def base_settings(redis_url: str, rpc_url: str, product: str, **overrides: object) -> Settings:
    values = dict(
        redis_url=redis_url,
        chain_rpc_url=rpc_url,
        product_address=product,
        mnemonic=TEST_MNEMONIC,
        min_confirmations=1,
        host="127.0.0.1",
        port=0,
        balance_too_low_timeout=0.2,
        error_timeout=0.2,
        read_block_timeout=0.2,
        receipt_poll_interval=0.05,
        min_balance=10**17,
        alert_balance=10**18,
    )
    values.update(overrides)
    return Settings(**values)


@dataclasses.dataclass
class Running:
    """A service running in this process: processor loop in a thread, watcher, monitor."""

    service: Service
    thread: threading.Thread
    port: int

    def get(self, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """A scrape of /metrics: (sample name, sorted labels) -> value."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def stop(self) -> None:
        self.service.shutdown()
        self.thread.join(10)
        assert not self.thread.is_alive(), "processor loop did not stop"


@pytest.fixture
def start_service(redis_server: RedisServer, anvil: Anvil, product: Product):
    started: list[Running] = []

    def start(**overrides: object) -> Running:
        settings = base_settings(redis_server.url, anvil.url, product.address, **overrides)
        client = redis.Redis.from_url(settings.redis_url, **REDIS_DECODING, socket_timeout=10)
        service = Service(  # built as the entry point builds it
            build_runtime(
                settings,
                accounts=derive_accounts(settings.mnemonic, settings.wallets),
                redis_client=client,
            )
        )
        port = service.serve_monitor()
        assert service.prepare()
        thread = threading.Thread(target=service.run, name="processor-under-test", daemon=True)
        thread.start()
        running = Running(service, thread, port)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def application(client: redis.Redis, entity_id: str) -> dict:
    return client.hgetall(f"PendingApplication:{entity_id}")


def dead_letters(client: redis.Redis) -> dict[str, dict]:
    """Dead letters by entity id (or by stream entry id when there is none)."""
    return {
        fields["entityId"] or fields["streamEntryId"]: fields
        for _id, fields in client.xrange("application:signatures:dead")
    }


def wallet_nonce(anvil: Anvil, address: str = PROCESSOR.address, block: str = "latest") -> int:
    return int(anvil.rpc("eth_getTransactionCount", address, block), 16)


def receipt(anvil: Anvil, tx_hash: str) -> dict | None:
    return anvil.rpc("eth_getTransactionReceipt", tx_hash)


LEASE_KEY = f"application:signatures:lease:{PROCESSOR.address}"  # the first wallet's


def holder_pid(redis_client: redis.Redis, lease_key: str = LEASE_KEY) -> int:
    """The process id in the lease's holder (owner@host:pid:nonce), 0 while it is free."""
    holder = redis_client.get(lease_key)
    return int(holder.rsplit(":", 2)[1]) if holder else 0


def cli(
    env: dict, *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """`python -m depeg_processor <args>` with `env`, run to its end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "depeg_processor", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def service_env(redis_url: str, rpc_url: str, product: str, **extra: str) -> dict:
    """The environment of `python -m depeg_processor` against the test parts."""
    from devnet.nodes import clean_env, free_port

    return clean_env() | {
        "REDIS_URL": redis_url,
        "CHAIN_RPC_URL": rpc_url,
        "DEPEG_PRODUCT_ADDRESS": product,
        "PROCESSOR_MNEMONIC": TEST_MNEMONIC,
        "PROCESSOR_MIN_BALANCE": "1",
        "PROCESSOR_ALERT_BALANCE": "1",
        "CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS": "1",
        "RECEIPT_POLL_INTERVAL": "100",
        "ERROR_TIMEOUT": "500",
        "PROCESSOR_LEASE_TTL": "2000",
        "PORT": str(free_port()),
        **extra,
    }


@pytest.fixture
def spawn(tmp_path):
    """Start `python -m depeg_processor` processes; any still running are killed at the end.
    Each one's log goes to a file (`log`, else one in the test's temporary directory), never
    to a pipe that nobody reads: a full pipe would stall a busy processor."""
    processes: list[subprocess.Popen] = []

    def start(env: dict, log: Path | None = None) -> subprocess.Popen:
        log = log or tmp_path / f"processor-{len(processes)}.log"
        with open(log, "w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "depeg_processor"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def http_json(port: int, path: str):
    """(status, body) of a monitor endpoint, or None while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return None
