"""One sender per wallet: an expiring lease in Redis, renewed by its holder.

A second processor with the same wallet and stream finds the lease taken and waits as a hot
standby; when the holder dies the lease expires and the standby takes over. The holder trusts
its lease only until a deadline measured from *before* it was last written, minus a margin, so
it stops sending before Redis could give the lease to another.
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Callable

import redis

log = logging.getLogger(__name__)

SAFETY = 0.8  # trust a lease for this share of its time to live


def owner_id(consumer: str) -> str:
    return f"{consumer}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, client: redis.Redis, *, key: str, owner: str, ttl: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._redis = client
        self.key = key
        self.owner = owner
        self.ttl = ttl
        self._monotonic = monotonic
        self._valid_until = 0.0

    def held(self) -> bool:
        """Whether this process may send now (local view; no I/O)."""
        return self._monotonic() < self._valid_until

    def renew_due(self) -> bool:
        return self._valid_until - self._monotonic() < self.ttl * SAFETY / 2

    def acquire(self) -> bool:
        """Take the lease if it is free or ours, extending it; False if another holds it."""
        started = self._monotonic()
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.watch(self.key)
                holder = pipe.get(self.key)
                if holder is not None and holder != self.owner:
                    pipe.unwatch()
                    self._valid_until = 0.0
                    return False
                pipe.multi()
                pipe.set(self.key, self.owner, px=max(1, int(self.ttl * 1000)))
                pipe.execute()
        except redis.WatchError:
            self._valid_until = 0.0
            return False
        except redis.RedisError:
            self._valid_until = 0.0
            raise
        self._valid_until = started + self.ttl * SAFETY
        return True

    def holder(self) -> str | None:
        return self._redis.get(self.key)

    def release(self) -> None:
        """Give the lease up at a clean stop so a standby takes over at once."""
        self._valid_until = 0.0
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.watch(self.key)
                if pipe.get(self.key) == self.owner:
                    pipe.multi()
                    pipe.delete(self.key)
                    pipe.execute()
                else:
                    pipe.unwatch()
        except redis.RedisError as error:
            log.warning("could not release the lease %s: %s", self.key, error)
