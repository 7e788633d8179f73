"""Durable before the broadcast (issue 22): what the server offers, learnt from INFO, and the
command sent after the write-ahead, on one connection with a write of its own. fakeredis knows
neither WAIT nor WAITAOF, so the client here records what it is sent; WAIT runs against a
real replica in tests/integration/test_redis_server.py (this machine's Redis is 6.2: no
WAITAOF)."""

from __future__ import annotations

import redis

from depeg_processor.durable import Durability, DurableWait


class Client:
    """INFO's answer, and a pipeline that records its commands and answers `reply`."""

    def __init__(self, info: dict, reply=None) -> None:
        self._info, self.reply, self.sent = info, reply, []

    def info(self) -> dict:
        return self._info

    def pipeline(self, transaction: bool = True):
        assert transaction is False, "one connection, no MULTI: WAIT would not block in one"
        return self

    def set(self, key, value, ex=None):
        self.sent.append(("SET", key, value, ex))

    def execute_command(self, *args):
        self.sent.append(args)

    def execute(self):
        if isinstance(self.reply, Exception):
            raise self.reply
        return [True, self.reply]


AOF_72 = {"redis_version": "7.2.4", "aof_enabled": 1, "role": "master", "connected_slaves": 0}
REPLICATED = {"redis_version": "6.2.6", "aof_enabled": 1, "role": "master", "connected_slaves": 2}
SNAPSHOTS = {"redis_version": "7.4.0", "aof_enabled": 0, "role": "master", "connected_slaves": 0}


def test_what_the_server_offers() -> None:
    assert Durability.of(Client(AOF_72), timeout=1.0).kind == "aof"
    replica = Durability.of(Client(REPLICATED), timeout=1.0)
    assert (replica.kind, replica.replicas) == ("replica", 1), "6.2: no WAITAOF"
    assert Durability.of(Client(SNAPSHOTS), timeout=1.0).kind == "none"
    assert Durability.of(Client(AOF_72), timeout=0).kind == "none", "REDIS_DURABLE_WAIT 0"
    assert "append-only file" in Durability("aof", 1.0).describe()
    assert "1 replica" in Durability("replica", 1.0, replicas=1).describe()
    assert "may lose the last writes" in Durability("none", 1.0).describe()


def test_waitaof_is_sent_after_a_write_of_its_own_on_one_connection() -> None:
    client = Client(AOF_72, reply=[1, 0])
    timeouts = []
    wait = DurableWait(
        client, Durability("aof", 0.25), stream="s", on_timeout=lambda: timeouts.append(1)
    )
    assert wait("0xaa") is True
    assert client.sent == [("SET", "s:durable", "0xaa", 60), ("WAITAOF", 1, 0, 250)]
    client.reply = [0, 0]  # not fsynced within the timeout
    assert wait("0xbb") is False and timeouts == [1]


def test_wait_counts_replicas_and_an_error_does_not_stop_the_broadcast() -> None:
    client = Client(REPLICATED, reply=1)
    wait = DurableWait(client, Durability("replica", 1.0, replicas=1), stream="s")
    assert wait("0xaa") is True and client.sent[-1] == ("WAIT", 1, 1000)
    client.reply = 0
    assert wait("0xbb") is False
    client.reply = redis.ConnectionError("gone")
    assert wait("0xcc") is False


def test_no_wait_sends_nothing() -> None:
    client = Client(SNAPSHOTS)
    assert DurableWait(client, Durability("none", 1.0), stream="s")("0xaa") is True
    assert client.sent == []
