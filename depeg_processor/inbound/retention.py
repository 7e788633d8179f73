"""Stream retention: acknowledged entries older than `REDIS_STREAM_RETENTION` are trimmed.

The web app appends to the stream and nothing else ever removes an entry, so without this the
stream grows for as long as the deployment lives. The trim (`XTRIM <stream> MINID <id>`, exact)
removes only entries below all of:
- the retention cut-off (now minus the retention, as a stream id);
- the oldest pending (delivered, unacknowledged) entry of every consumer group on the stream;
- the entry after every group's last-delivered-id, so entries not yet delivered to a group
  are kept.
A stream no group reads is left alone. Entries only move out of these bounds (acknowledged,
delivered), never back in, so a bound read a moment before the trim is still safe when the trim
runs. The dead-letter stream has a retention of its own (REDIS_DEAD_LETTER_RETENTION): no group
reads it, so its letters older than that simply go, in the same round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from .dead_letters import DeadLetters
from .stream_ids import id_after, id_key

log = logging.getLogger(__name__)

TRIM_INTERVAL = 300.0  # seconds between trims: the retention is days, a few minutes is plenty


class StreamRetention:
    """Trims one stream and, with `letters`, its dead letters; `trim()` is one step, `run()`
    repeats it every `interval` seconds."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        stream: str,
        retention: float,
        interval: float = TRIM_INTERVAL,
        clock: Callable[[], float] = time.time,
        letters: DeadLetters | None = None,
        letter_retention: float = 0.0,
    ) -> None:
        self._redis = client
        self.stream = stream
        self.retention = retention
        self.interval = interval
        self._clock = clock
        self._letters = letters if letter_retention > 0 else None
        self._letter_retention = letter_retention

    def bound(self) -> str | None:
        """The lowest id to keep, or None when there is nothing the rules allow to trim."""
        cutoff_ms = int((self._clock() - self.retention) * 1000)
        if cutoff_ms <= 0:
            return None
        keep = [f"{cutoff_ms}-0"]
        try:
            groups = self._redis.xinfo_groups(self.stream)
        except redis.ResponseError as error:
            if "no such key" in str(error).lower():
                return None  # no stream yet
            raise
        if not groups:
            return None  # nobody has read anything: nothing is acknowledged
        for group in groups:
            keep.append(id_after(str(group["last-delivered-id"])))
            if int(group.get("pending") or 0):
                summary = self._redis.xpending(self.stream, group["name"])
                if summary.get("pending") and summary.get("min"):
                    keep.append(str(summary["min"]))
        lowest = min(keep, key=id_key)
        return None if id_key(lowest) <= (0, 1) else lowest

    def trim(self) -> int:
        """Remove what the rules allow now; returns how many entries went."""
        if self.retention <= 0:
            return 0
        bound = self.bound()
        if bound is None:
            return 0
        removed = int(self._redis.xtrim(self.stream, minid=bound, approximate=False))
        if removed:
            log.info(
                "trimmed %s entries below id %s from %s (retention %.0fs)",
                removed,
                bound,
                self.stream,
                self.retention,
            )
        return removed

    def trim_letters(self) -> int:
        """Remove the dead letters older than their retention; returns how many went."""
        if self._letters is None:
            return 0
        removed = self._letters.trim(self._letter_retention)
        if removed:
            log.info(
                "trimmed %s dead letters older than %.0fs from %s",
                removed,
                self._letter_retention,
                self._letters.key,
            )
        return removed

    def run(self, stop: threading.Event) -> None:
        """Trim now and then every `interval` until `stop`; a failure is logged and retried at
        the next turn (trimming late loses nothing)."""
        if self.retention <= 0:
            log.info("stream retention off: %s is never trimmed", self.stream)
        if self.retention <= 0 and self._letters is None:
            return
        while not stop.is_set():
            for step, key in ((self.trim, self.stream), (self.trim_letters, None)):
                try:
                    step()
                except redis.RedisError as error:
                    log.warning("could not trim %s: %s", key or "the dead letters", error)
            stop.wait(self.interval)
