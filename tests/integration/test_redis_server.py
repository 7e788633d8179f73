"""The Redis requirements checked against real redis-servers configured each way: the start-up
log, `check-config`'s output and exit code, and the refusal of a server below the minimum."""

from __future__ import annotations

import logging
import subprocess
import threading

import pytest
import redis

from depeg_processor import redis_server as server_check
from depeg_processor.chain.rpc import NodeClient
from depeg_processor.cli import command_check_config
from depeg_processor.durable import Durability, DurableWait
from depeg_processor.errors import StartupError
from depeg_processor.service import Service
from depeg_processor.startup import build_runtime
from devnet.forward import TcpForwarder
from devnet.nodes import RedisServer
from tests.conftest import wait_until
from tests.integration.conftest import PROCESSOR, base_settings, cli, service_env

SAFE = ("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction")
EVICTING = ("--maxmemory-policy", "allkeys-lru", "--appendonly", "no")
NO_CONFIG = ("--rename-command", "CONFIG", "")  # as many hosted Redis services do


@pytest.fixture
def server(request):
    with RedisServer(extra_args=request.param) as started:
        yield started


def check_config(redis_url: str, anvil, product) -> subprocess.CompletedProcess:
    return cli(service_env(redis_url, anvil.url, product.address), "check-config")


def service_on(redis_url: str, anvil, product) -> Service:
    """The service, built but not started, against this Redis server."""
    return Service(
        build_runtime(
            base_settings(redis_url, anvil.url, product.address),
            accounts=[PROCESSOR],
            redis_client=redis.Redis.from_url(redis_url, decode_responses=True),
            chain=NodeClient(url=anvil.url, timeout=10),
            stop=threading.Event(),
        )
    )


@pytest.mark.parametrize("server", [SAFE], indirect=True)
def test_a_server_as_the_readme_asks_passes_without_warnings(server, anvil, product) -> None:
    result = check_config(server.url, anvil, product)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "redis ok" in result.stdout and "maxmemory-policy noeviction" in result.stdout
    assert "WARNING" not in result.stdout and "NOT CHECKED" not in result.stdout
    # the append-only file waited for needs Redis 7.2 (WAITAOF); this one is older
    assert "redis durability: no wait before a broadcast" in result.stdout


@pytest.mark.parametrize("server", [EVICTING], indirect=True)
def test_eviction_and_no_aof_are_warned_about_at_start_and_by_check_config(
    server, anvil, product, caplog
) -> None:
    result = check_config(server.url, anvil, product)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "redis WARNING: maxmemory-policy is 'allkeys-lru'" in result.stdout
    assert "redis WARNING: appendonly is 'no'" in result.stdout

    service = service_on(server.url, anvil, product)
    with caplog.at_level(logging.WARNING, logger="depeg_processor.startup"):
        assert service.prepare()
    warned = [r.getMessage() for r in caplog.records if r.name == "depeg_processor.startup"]
    assert any("maxmemory-policy is 'allkeys-lru'" in m for m in warned), warned
    assert any("appendonly is 'no'" in m for m in warned), warned


@pytest.mark.parametrize("server", [NO_CONFIG], indirect=True)
def test_config_disabled_is_reported_as_not_checked_and_does_not_fail(
    server, anvil, product
) -> None:
    result = check_config(server.url, anvil, product)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "redis NOT CHECKED: maxmemory-policy, appendonly, appendfsync: CONFIG GET refused"
        in result.stdout
    )
    assert "WARNING: maxmemory" not in result.stdout


def test_a_server_below_the_minimum_refuses_to_start_and_fails_check_config(
    redis_server, anvil, product, monkeypatch, capsys
) -> None:
    # No older redis-server is at hand: raise the floor above the real server's version.
    monkeypatch.setattr(server_check, "MIN_VERSION", (99, 0, 0))
    service = service_on(redis_server.url, anvil, product)
    settings = service.settings
    with pytest.raises(StartupError, match=r"Redis 6\.\d+\.\d+ is too old.*99\.0\.0 or later"):
        service.prepare()
    assert command_check_config(settings) == 1
    assert "redis FAILED: Redis" in capsys.readouterr().out


def test_with_a_replica_a_write_waits_for_it_before_the_broadcast(
    redis_server, anvil, product
) -> None:
    """A real replica (through a link that can be cut): the server offers WAIT, check-config
    says so, the wait is reached while the replica follows and times out, counted, once the
    link is cut (the broadcast then goes on)."""
    with TcpForwarder(redis_server.port) as link:
        replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(link.port))).start()
        try:
            client = redis.Redis.from_url(redis_server.url, decode_responses=True)
            wait_until(
                lambda: client.info("replication").get("connected_slaves") == 1,
                what="the replica connected",
            )
            result = check_config(redis_server.url, anvil, product)
            assert "redis durability: writes reach 1 replica before a broadcast (WAIT" in (
                result.stdout
            ), result.stdout
            durability = Durability.of(client, timeout=0.3)
            assert (durability.kind, durability.replicas) == ("replica", 1)
            timeouts = []
            wait = DurableWait(
                client, durability, stream="s", on_timeout=lambda: timeouts.append(1)
            )
            client.set("written-ahead", "1")
            assert wait("0xaa") is True and timeouts == []
            assert redis.Redis(port=replica.port).get("written-ahead") == b"1"
            link.cut()
            wait_until(
                lambda: client.info("replication").get("connected_slaves") == 0,
                what="the replica cut off",
            )
            assert wait("0xbb") is False and timeouts == [1]
            assert Durability.of(client, timeout=0.3).kind == "none", "learnt at start"
            client.close()
        finally:
            replica.stop()
