"""One sender per wallet: an expiring lease in Redis, renewed by its holder.

A second processor with the same wallet and stream finds the lease taken and waits as a hot
standby; when the holder dies the lease expires and the standby takes over. The holder trusts
its lease only until a deadline measured from *before* it was last written, minus a margin, so
it stops sending before Redis could give the lease to another.

The lease is kept by its own thread (`LeaseKeeper`), on a schedule of its own: however long the
node takes to answer the processor or the watcher, the lease is renewed every third of its time
to live. The other threads only read `held()` and `generation`; every write of theirs that only
the holder may make is fenced (`check_fence`) so that a process that lost the lease without
noticing cannot overwrite what the next holder wrote.

A clean stop deletes the lease (compare-and-delete: only the owner's own) and announces it on
the pool's release channel in the same transaction, so a standby listening there
(`handover.Releases`) takes the wallet over at once rather than at its next renewal round.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import redis

from ..errors import FenceLost

log = logging.getLogger(__name__)

SAFETY = 0.8  # trust a lease for this share of its time to live
RENEWALS_PER_TTL = 3  # the keeper renews (or tries to take) the lease this often per ttl
MAX_RENEWAL_INTERVAL = 5.0  # seconds; and at least this often, so a standby takes over soon

Fence = tuple[str, str]  # (lease key, owner): a write commits only while that owner holds it


def owner_id(consumer: str) -> str:
    return f"{consumer}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def check_fence(pipe: redis.client.Pipeline, fence: Fence | None) -> None:
    """Inside a transaction that WATCHes the lease key: refuse the write unless the fence's
    owner holds the lease (the WATCH makes the check hold until EXEC)."""
    if fence is not None:
        refuse_unless_held(fence, pipe.get(fence[0]))


def refuse_unless_held(fence: Fence, holder: str | None) -> None:
    """FenceLost unless `holder` (the lease key's value, read after its WATCH) is the fence's
    owner: the check of `check_fence`, for a transaction that reads its keys in one pipeline."""
    if holder != fence[1]:
        raise FenceLost(f"the lease {fence[0]} is not held by this process")


class Lease:
    """The wallet's lease as this process sees it. Thread-safe: one thread writes (acquire,
    release), any thread reads `held()` and `generation` without I/O."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        key: str,
        owner: str,
        ttl: float,
        monotonic: Callable[[], float] = time.monotonic,
        channel: str | None = None,
    ) -> None:
        self._redis = client
        self.key = key
        self.owner = owner
        self.ttl = ttl
        self.channel = channel  # where a release is announced (`keys.lease_released_channel`)
        self._monotonic = monotonic
        self._lock = threading.Lock()  # guards the fields below (no I/O under it)
        self._gained = threading.Condition(self._lock)  # notified when the lease is gained
        self._writing = threading.Lock()  # one write at a time: a release is never undone
        self._valid_until = 0.0
        self._generation = 0
        self._released = False
        self._released_by: str | None = None  # the owner a release notice named, until used
        self._handed_over: str | None = None  # its consumer, if that release handed it to us

    @property
    def fence(self) -> Fence:
        return self.key, self.owner

    def held(self) -> bool:
        """Whether this process may send now (local view; no I/O)."""
        with self._lock:
            return self._monotonic() < self._valid_until

    def wait_held(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for the lease to be held (the keeper thread gains
        it); True once held. A standby's loop waits here, so it sends as soon as it may."""
        with self._gained:
            return self._gained.wait_for(lambda: self._monotonic() < self._valid_until, timeout)

    def note_released(self, owner: str) -> None:
        """A release notice: `owner` gave this lease up cleanly (its batch out, its entries
        acknowledged or left for the next holder)."""
        with self._lock:
            self._released_by = owner

    def handed_over(self) -> str | None:
        """Once, after the lease was gained right after its holder released it cleanly: that
        holder's consumer name, whose unacknowledged entries are the new holder's at once."""
        with self._lock:
            consumer, self._handed_over = self._handed_over, None
            return consumer

    @property
    def generation(self) -> int:
        """Counts the times the lease was gained (taken, or taken back after it ran out): a
        holder that sees it change must adopt what another sender may have left."""
        with self._lock:
            return self._generation

    def acquire(self) -> bool:
        """Take the lease if it is free or ours, extending it; False if another holds it (or
        it was released). Redis errors propagate: the lease then simply runs out."""
        with self._writing:
            started = self._monotonic()
            with self._lock:
                if self._released:
                    return False
                continuous = started < self._valid_until
                noted, self._released_by = self._released_by, None
            try:
                with self._redis.pipeline(transaction=True) as pipe:
                    pipe.watch(self.key)
                    holder = pipe.get(self.key)
                    if holder is not None and holder != self.owner:
                        pipe.unwatch()
                        self._lapse()
                        return False
                    pipe.multi()
                    pipe.set(self.key, self.owner, px=max(1, int(self.ttl * 1000)))
                    pipe.execute()
            except redis.WatchError:
                self._lapse()
                return False
            with self._lock:
                # Ours all along only if still ours in Redis too: a key that had expired may
                # have been held (and released) by another sender meanwhile.
                if not (continuous and holder == self.owner):
                    self._generation += 1
                if holder is None and noted is not None:  # freed by that release, not expired
                    self._handed_over = noted.rsplit("@", 1)[0]
                self._valid_until = started + self.ttl * SAFETY
                self._gained.notify_all()
            return True

    def refused(self) -> None:
        """A write fenced by this lease was refused: Redis does not have this process as its
        holder (the key expired, or Redis lost it: a restart from a snapshot). Not held from
        now until the keeper writes it again (a new generation: taken over afresh), rather
        than until the local deadline, which would have every batch until then refused."""
        self._lapse()

    def _lapse(self) -> None:
        with self._lock:
            self._valid_until = 0.0

    def holder(self) -> str | None:
        return self._redis.get(self.key)

    def release(self, *, for_good: bool = True) -> None:
        """Give the lease up so another process takes over at once. At a clean stop (for
        good) it is not taken again by this object, whatever a late renewal tries; a process
        moving to another wallet of the pool (not for good) may take it again later."""
        with self._lock:
            self._released = self._released or for_good
            self._valid_until = 0.0
        with self._writing:
            try:
                with self._redis.pipeline(transaction=True) as pipe:
                    pipe.watch(self.key)
                    if pipe.get(self.key) == self.owner:
                        pipe.multi()
                        pipe.delete(self.key)
                        if self.channel is not None:
                            pipe.publish(self.channel, f"{self.key} {self.owner}")
                        pipe.execute()
                    else:
                        pipe.unwatch()
            except redis.RedisError as error:
                log.warning("could not release the lease %s: %s", self.key, error)


class LeaseKeeper:
    """Takes and renews the lease every ttl/RENEWALS_PER_TTL (and at least every 5 s) in its
    own thread while this process wants to send (`wanted`: its processor loop is alive), so a
    slow node cannot let it lapse. A Redis error only skips a renewal: the lease then runs out
    on its own."""

    def __init__(
        self, lease: Lease, *, stop: threading.Event, wanted: Callable[[], bool] = lambda: True
    ) -> None:
        self._lease = lease
        self._stop = stop
        self._wanted = wanted
        self.interval = min(lease.ttl / RENEWALS_PER_TTL, MAX_RENEWAL_INTERVAL)
        self._last: str | None = None  # what the last round found, to log changes once

    def run_once(self) -> bool:
        """One renewal (or attempt to take the lease); True while it is held."""
        if not self._wanted():
            self._note(
                "unwanted",
                log.warning,
                "the processor loop is not running; the lease %s is left to run out",
                self._lease.key,
            )
            return False
        try:
            held = self._lease.acquire()
        except redis.RedisError as error:
            self._note(
                "error",
                log.warning,
                "could not renew the lease %s (%s: %s); it runs "
                "out unless a renewal succeeds in time",
                self._lease.key,
                type(error).__name__,
                error,
            )
            return self._lease.held()
        if held:
            self._note(
                "held",
                log.info,
                "holding the lease %s (generation %s)",
                self._lease.key,
                self._lease.generation,
            )
        else:
            self._note("taken", log.info, "the lease %s is held by another sender", self._lease.key)
        return held

    def _note(self, outcome: str, say: Callable[..., None], message: str, *args: object) -> None:
        if outcome != self._last:
            say(message, *args)
        self._last = outcome
