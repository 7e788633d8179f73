"""Health facts the threads record and the monitor reads.

The lock lives here, beside the data; writers call one short method, readers take a frozen
snapshot. Nothing in here does I/O.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

STANDBY = "standby"
AT_CAP = "at the in-flight cap"  # back-pressure: the wallet waits for its transactions mined


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the threads last saw, as of one instant."""

    processor_beat: float | None = None
    watcher_beat: float | None = None
    balance: int | None = None
    non_ack_pending: int | None = None
    node_error: str | None = None
    rate_limited: str | None = None
    redis_error: str | None = None
    holding: str | None = None
    in_flight: int = 0
    head: int | None = None
    stuck: str | None = None
    spent_last_hour: int | None = None
    reverts: str | None = None  # why the revert budget holds every wallet, while it does
    providers: tuple = ()  # chain.health.ProviderView of each provider, with several

    @property
    def standby(self) -> bool:
        """Waiting because another processor holds the wallet's lease: the processor records
        this as a hold whose reason starts with STANDBY."""
        return self.holding is not None and self.holding.startswith(STANDBY)

    @property
    def at_cap(self) -> bool:
        """Reading no new entries because the wallet has PROCESSOR_MAX_IN_FLIGHT transactions
        unmined: the processor records this as a hold whose reason starts with AT_CAP."""
        return self.holding is not None and self.holding.startswith(AT_CAP)


class SharedState:
    """Thread-safe store of the latest health facts."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._data = Snapshot()
        self._errors: dict[tuple[str, str], str] = {}  # (dependency, reporting thread) -> why

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._data = dataclasses.replace(self._data, **changes)

    def processor_beat(self) -> None:
        self._update(processor_beat=self._monotonic())

    def watcher_beat(self) -> None:
        self._update(watcher_beat=self._monotonic())

    def set_balance(self, wei: int) -> None:
        self._update(balance=wei)

    def set_non_ack_pending(self, count: int) -> None:
        self._update(non_ack_pending=count)

    def set_in_flight(self, count: int, head: int | None = None) -> None:
        self._update(in_flight=count, head=head)

    def _dependency(self, dependency: str, source: str, reason: str | None) -> None:
        """Each thread reports what it saw; the dependency is down while any thread's last
        call failed (one thread's success does not hide another's failure)."""
        with self._lock:
            if reason is None:
                self._errors.pop((dependency, source), None)
            else:
                self._errors[(dependency, source)] = reason
            failing = {dep: why for (dep, _src), why in sorted(self._errors.items())}
            self._data = dataclasses.replace(
                self._data, node_error=failing.get("node"), redis_error=failing.get("redis")
            )

    def node_ok(self, source: str = "main") -> None:
        self._dependency("node", source, None)

    def node_failed(self, reason: str, source: str = "main") -> None:
        self._dependency("node", source, reason)

    def set_providers(self, views: list) -> None:
        """How each of several providers is doing (`chain.health.ProviderView`)."""
        self._update(providers=tuple(views))

    def set_rate_limited(self, reason: str | None) -> None:
        """Why the node refuses calls for its rate limit now, or None once it answers again."""
        self._update(rate_limited=reason)

    def redis_ok(self, source: str = "main") -> None:
        self._dependency("redis", source, None)

    def redis_failed(self, reason: str, source: str = "main") -> None:
        self._dependency("redis", source, reason)

    def set_holding(self, reason: str | None) -> None:
        """Why the processor is deliberately not sending (low balance, product inactive)."""
        self._update(holding=reason)

    def set_stuck(self, reason: str | None) -> None:
        """Why transactions cannot be mined (the fee cap is reached), or None."""
        self._update(stuck=reason)

    def set_reverts(self, reason: str | None) -> None:
        """Why the pool's revert budget holds sending (MAX_REVERTED_GAS_PER_HOUR), or None."""
        self._update(reverts=reason)

    def set_spent_last_hour(self, wei: int) -> None:
        self._update(spent_last_hour=wei)

    def add_spent(self, wei: int) -> None:
        """Count a transaction just sent (at its worst-case cost) until the receipt watcher
        next publishes the authoritative figure."""
        with self._lock:
            spent = (self._data.spent_last_hour or 0) + wei
            self._data = dataclasses.replace(self._data, spent_last_hour=spent)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._data

    def now(self) -> float:
        return self._monotonic()
