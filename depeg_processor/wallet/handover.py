"""A standby hears at once that a lease was given up.

The lease keeper renews or tries to take a lease every third of its time to live (at most
every 5 s): a standby that only tried on that schedule would leave a deploy's gap of up to 5 s
after the old process released its wallet. The releasing process announces each release on
the pool's channel (`keys.lease_released_channel`, in the transaction that deletes the lease),
and the keeper waits on that subscription instead of sleeping, so it tries for the wallet
within milliseconds of its release.

Listening costs no Redis command while nothing happens: one connection subscribed once, read
with a timeout. If it fails (Redis restarting), the keeper sleeps its interval as before and
subscribes again on its next wait: a missed notice only means the renewal schedule's delay.

The new holder then adopts the wallet as after any take-over (`Wallet.take_over`: the records
in flight, the nonces) and, in the same round, the entries its consumer left
(`claim_entries_left`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from ..inbound.stream import StreamQueue

log = logging.getLogger(__name__)

STOP_CHECK = 0.1  # s: the longest a wait on the channel delays a stop request (no I/O)


class Releases:
    """The pool's release notices, for the lease keeper thread (one thread uses it)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        channel: str,
        stop: threading.Event,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self.channel = channel
        self._stop = stop
        self._monotonic = monotonic
        self._pubsub: redis.client.PubSub | None = None
        self._failed = False  # said once per outage

    def wait(self, timeout: float) -> list[tuple[str, str]]:
        """Wait up to `timeout` seconds (less if stopped) for release notices; returns the
        (lease key, owner) of each one heard, [] when the time ran out."""
        deadline = self._monotonic() + timeout
        while not self._stop.is_set():
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return []
            try:
                heard = self._listen(min(remaining, STOP_CHECK))
            except redis.RedisError as error:
                self._lost(error)
                self._stop.wait(remaining)
                return []
            if heard:
                return heard
        return []

    def _listen(self, timeout: float) -> list[tuple[str, str]]:
        if self._pubsub is None:
            self._pubsub = self._redis.pubsub()
            self._pubsub.subscribe(self.channel)
            if self._failed:
                log.info("listening for lease releases on %s again", self.channel)
            self._failed = False
        heard = []
        message = self._pubsub.get_message(timeout=timeout)
        while message is not None:
            key, _, owner = str(message.get("data", "")).partition(" ")
            if message.get("type") == "message" and owner:
                heard.append((key, owner))
            message = self._pubsub.get_message(timeout=0)
        return heard

    def _lost(self, error: Exception) -> None:
        if not self._failed:
            log.warning(
                "not listening for lease releases (%s: %s); taking a released wallet at the "
                "next renewal round instead",
                type(error).__name__,
                error,
            )
        self._failed = True
        self.close()

    def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except redis.RedisError:
                pass


def claim_entries_left(client: redis.Redis, queue: StreamQueue, consumer: str | None) -> int:
    """After taking a wallet whose holder released it cleanly (`Lease.handed_over`): that
    holder's consumer's unacknowledged entries become this consumer's at once, however briefly
    idle. It stopped with nothing in hand (it acknowledges an entry with its transaction's
    write-ahead, and its batch went out before the release), so nobody works on them; waiting
    for them to be idle a lease TTL, as for a consumer that died, would only delay them. Under
    the same consumer name (a deploy of the same settings) they are this consumer's already."""
    if consumer is None or consumer == queue.consumer:
        return 0
    rows = client.xpending_range(
        queue.stream, queue.group, min="-", max="+", count=10_000, consumername=consumer
    )
    ids = [row["message_id"] for row in rows]
    if ids:
        client.xclaim(
            queue.stream, queue.group, queue.consumer, min_idle_time=0, message_ids=ids, justid=True
        )
        log.info("took over %s unacknowledged entries of %s, which stopped", len(ids), consumer)
        queue.rewind()
    return len(ids)
