"""Durable before the broadcast, where the server allows it: after a batch's write-ahead and
before its transactions are broadcast, wait (bounded by REDIS_DURABLE_WAIT) until the write
reached the append-only file (`WAITAOF`, Redis 7.2 and later with `appendonly yes`) or a
replica (`WAIT`, with replicas connected when the processor started).

What the server offers is learnt once, at start (`Durability.of`), and said by `check-config`.
`WAIT` and `WAITAOF` wait for the offset of the last write of the connection they are sent
on, and the write-ahead's connection goes back to the client's pool: so the wait is sent in one
pipelined round trip with a write of its own (`<stream>:durable`, the batch's first hash,
kept a minute), after the write-ahead and on one connection, which makes the offset waited for
at least the write-ahead's.

A wait that times out (the replica gone or slow, the disk slow) does not hold the broadcast:
the records are written, and should Redis lose them the chain is checked against the records
before the next batch (see wallet.reconcile) and a used signature is looked up (see
wallet.applied), so nothing is paid twice. It is counted (`redis_durable_timeouts_total`)
and logged.
"""

from __future__ import annotations

import dataclasses
import logging

import redis

from .config import Settings
from .metrics import Metrics
from .redis_server import parse_version

log = logging.getLogger(__name__)

WAITAOF_VERSION = (7, 2, 0)
PROBE_TTL = 60  # seconds


@dataclasses.dataclass(frozen=True)
class Durability:
    """How a write-ahead is made durable before the broadcast: `kind` is "aof", "replica" or
    "none"; `replicas` is how many replicas WAIT asks for."""

    kind: str
    timeout: float  # seconds; 0 turns the wait off
    replicas: int = 0

    @classmethod
    def of(cls, client: redis.Redis, *, timeout: float) -> Durability:
        """What this server offers (INFO), "none" when it does not say or `timeout` is 0."""
        if timeout <= 0:
            return cls("none", timeout)
        try:
            info = client.info()
        except redis.ResponseError:  # a hosted Redis that refuses INFO
            return cls("none", timeout)
        version = parse_version(str(info.get("redis_version") or "0"))
        if version >= WAITAOF_VERSION and int(info.get("aof_enabled") or 0) == 1:
            return cls("aof", timeout)
        if str(info.get("role") or "master") == "master":
            replicas = int(info.get("connected_slaves") or 0)
            if replicas >= 1:
                return cls("replica", timeout, replicas=1)
        return cls("none", timeout)

    def describe(self) -> str:
        """The guarantee in one line, for check-config and the start's log."""
        wait = f"bounded by REDIS_DURABLE_WAIT {self.timeout * 1000:.0f} ms"
        if self.kind == "aof":
            return f"writes reach the append-only file before a broadcast (WAITAOF, {wait})"
        if self.kind == "replica":
            return f"writes reach {self.replicas} replica before a broadcast (WAIT, {wait})"
        return (
            "no wait before a broadcast (no append-only file on Redis 7.2+, no replica "
            "connected, or REDIS_DURABLE_WAIT 0): a crash or failover of Redis may lose the "
            "last writes; the chain is checked against the records"
        )

    def command(self) -> tuple | None:
        millis = max(1, int(self.timeout * 1000))
        if self.kind == "aof":
            return ("WAITAOF", 1, 0, millis)
        if self.kind == "replica":
            return ("WAIT", self.replicas, millis)
        return None


class DurableWait:
    """The wait itself, one round trip; `__call__(tx_hash)` returns whether it was reached."""

    def __init__(
        self, client: redis.Redis, durability: Durability, *, stream: str, on_timeout=None
    ) -> None:
        self._client = client
        self.durability = durability
        self._key = f"{stream}:durable"
        self._on_timeout = on_timeout or (lambda: None)

    def __call__(self, tx_hash: str) -> bool:
        command = self.durability.command()
        if command is None:
            return True
        pipe = self._client.pipeline(transaction=False)  # one connection: its offset
        pipe.set(self._key, tx_hash, ex=PROBE_TTL)
        pipe.execute_command(*command)
        try:
            _set, reached = pipe.execute()
            done = _reached(reached, self.durability)
        except redis.RedisError as error:  # written already: the broadcast goes on
            log.warning("waiting for the write-ahead of tx %s to be durable: %s", tx_hash, error)
            done = False
        if not done:
            self._on_timeout()
            log.warning(
                "the write-ahead of tx %s did not reach %s within %.0f ms; broadcast anyway "
                "(the chain is checked against the records should Redis lose it)",
                tx_hash,
                "the append-only file" if self.durability.kind == "aof" else "a replica",
                self.durability.timeout * 1000,
            )
        return done


def wait_of(client: redis.Redis, settings: Settings, metrics: Metrics) -> DurableWait:
    """The wait this server allows (said in the log), counting its timeouts in `metrics`."""
    durability = Durability.of(client, timeout=settings.durable_wait)
    log.info("redis: %s", durability.describe())
    return DurableWait(
        client, durability, stream=settings.stream_key, on_timeout=metrics.durable_timeouts.inc
    )


def _reached(reply, durability: Durability) -> bool:
    """WAIT answers the replicas that have the write; WAITAOF [local fsynced, replicas]."""
    if durability.kind == "aof":
        return int(reply[0]) >= 1
    return int(reply) >= durability.replicas
