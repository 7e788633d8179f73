"""How one provider of several is doing, as measured from its own answers.

Every answer teaches something: an answer its latency, an error or a rate limit a backoff, a
head how far the provider lags the best head seen. Nothing here does I/O; the lock lives
beside the data, and the set of providers (`providers.Providers`) reads one `ProviderView` per
provider to choose where a call goes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from .. import errors

FIRST_BACKOFF = 2.0  # s before a failed provider is probed again, doubling per failure
MAX_BACKOFF = 30.0  # s, the longest
SLOW = 1.0  # s: a provider whose answers take this long (on average) is left for a faster one
MAX_LAG = 2  # blocks behind the best head seen beyond which a provider is left for another
PROBE_INTERVAL = 6.0  # s: an idle provider is asked its head at most this often (10 a minute)
SMOOTHING = 0.5  # weight of the newest latency in the running average


@dataclasses.dataclass(frozen=True)
class ProviderView:
    """One provider as of one instant (what `status`, the monitor and the metrics show)."""

    index: int
    name: str  # "#index scheme://host", never the URL
    usable: bool  # not waiting out a failure, and on the right chain
    head: int | None
    lag: int | None  # blocks behind the best head seen, when its head was last seen
    latency: float | None  # s, running average of its answers
    errors: int  # failed calls since start
    why: str | None  # the last failure, while it is not usable
    on_chain: bool = True  # False once it was seen serving another chain id: never used

    @property
    def slow(self) -> bool:
        return self.latency is not None and self.latency >= SLOW

    @property
    def behind(self) -> bool:
        return self.lag is not None and self.lag > MAX_LAG


class Health:
    """The thread-safe record of one provider's answers."""

    def __init__(self, *, index: int, name: str, monotonic: Callable[[], float]) -> None:
        self.index, self.name = index, name
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._head: int | None = None
        self._lag: int | None = None
        self._latency: float | None = None
        self._errors = 0
        self._failures = 0  # in a row
        self._retry_at = 0.0  # monotonic: not tried before this
        self._down = False  # failed to answer: no work until a probe has an answer again
        self._why: str | None = None
        self._wrong_chain: str | None = None  # set for good: it serves another chain
        self._asked_at: float | None = None  # the last answer or failure (a call or a probe)
        self._head_at: float | None = None  # when its head was last seen

    def answered(self, seconds: float) -> None:
        with self._lock:
            self._latency = (
                seconds
                if self._latency is None
                else SMOOTHING * seconds + (1 - SMOOTHING) * self._latency
            )
            self._failures, self._down, self._why = 0, False, None
            self._asked_at = self._monotonic()

    def failed(self, why: str) -> None:
        """A call got no answer: no work goes to it until a probe, after a backoff, has an
        answer (so a provider that does not answer costs the work one try, not one a call)."""
        with self._lock:
            now = self._monotonic()
            self._errors += 1
            self._failures += 1
            backoff = min(FIRST_BACKOFF * 2 ** (self._failures - 1), MAX_BACKOFF)
            self._retry_at = max(self._retry_at, now + backoff)
            self._down, self._why = True, why
            self._asked_at = now

    def limited(self, why: str, *, retry_at: float) -> None:
        """It refused for its rate limit: calls go elsewhere until `retry_at` (monotonic)."""
        with self._lock:
            self._errors += 1
            self._retry_at = max(self._retry_at, retry_at, self._monotonic() + 0.25)
            self._why = why

    def saw_head(self, number: int, best: int) -> None:
        """It answered with `number` as its head while the best head seen was `best`."""
        with self._lock:
            self._head = number
            self._lag = max(0, best - number)
            self._head_at = self._monotonic()

    def wrong_chain(self, why: str) -> None:
        with self._lock:
            self._wrong_chain = why

    @property
    def head(self) -> int | None:
        with self._lock:
            return self._head

    def probe_due(self) -> bool:
        """Idle (no answer or failure for PROBE_INTERVAL) and past its backoff: at most one
        probe a PROBE_INTERVAL, however long it has been down. One that lags is probed as
        often while busy (it gets raw transactions only), so its catching up is seen."""
        with self._lock:
            now = self._monotonic()
            if self._wrong_chain or now < self._retry_at:
                return False
            if self._lag is not None and self._lag > MAX_LAG and self._head_at is not None:
                return now - self._head_at >= PROBE_INTERVAL
            return self._asked_at is None or now - self._asked_at >= PROBE_INTERVAL

    def view(self) -> ProviderView:
        with self._lock:
            waiting = self._down or self._monotonic() < self._retry_at
            usable = not waiting and self._wrong_chain is None
            return ProviderView(
                index=self.index,
                name=self.name,
                usable=usable,
                head=self._head,
                lag=self._lag,
                latency=self._latency,
                errors=self._errors,
                why=None if usable else (self._wrong_chain or self._why),
                on_chain=self._wrong_chain is None,
            )


def preference(view: ProviderView) -> tuple:
    """Sort key of the providers for a call: usable first, then those that keep up, then the
    fast ones, then the order of the list (so the preferred one takes the work back)."""
    return (not view.usable, view.behind, view.slow, view.index)


def none_answered(failures: list[tuple[str, Exception]], *, what: str) -> Exception:
    """Why no provider answered, each by its name: RateLimited when all of them rate-limited
    us, NodeBehind when all were behind, else NodeUnavailable."""
    reasons = "; ".join(f"{name}: {error}" for name, error in failures)
    message = f"no provider answered ({what}): {reasons or 'none is usable'}"
    for kind in (errors.RateLimited, errors.NodeBehind):
        if failures and all(isinstance(error, kind) for _name, error in failures):
            return kind(message)
    return errors.NodeUnavailable(message)
