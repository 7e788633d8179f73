"""The wallet's next nonce, owned locally so several transactions can be in flight at once.

It starts from the larger of the chain's pending count and one past the highest nonce of the
stored records, advances locally, and is resynchronised the same way whenever the node says a
nonce is wrong or a send failed halfway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class NonceManager:
    def __init__(
        self, *, chain_pending: Callable[[], int], highest_recorded: Callable[[], int | None]
    ) -> None:
        self._chain_pending = chain_pending
        self._highest_recorded = highest_recorded
        self._lock = threading.Lock()
        self._next: int | None = None

    def sync(self) -> int:
        """Set the next nonce from the chain and the records; returns it."""
        chain = self._chain_pending()
        recorded = self._highest_recorded()
        candidate = max(chain, recorded + 1 if recorded is not None else 0)
        with self._lock:
            if self._next is not None and self._next != candidate:
                log.info(
                    "nonce resynchronised from %s to %s (chain pending %s, highest record %s)",
                    self._next,
                    candidate,
                    chain,
                    recorded,
                )
            self._next = candidate
        return candidate

    def take(self) -> int:
        """The next nonce, reserved for one transaction (synchronised first if unknown)."""
        if self.next is None:
            self.sync()
        with self._lock:
            nonce = self._next
            self._next += 1
            return nonce

    def sync_later(self) -> None:
        """Forget the local nonce (a batch was signed but not recorded, so its nonces are free
        again); the next take synchronises, without I/O here."""
        with self._lock:
            self._next = None

    @property
    def next(self) -> int | None:
        with self._lock:
            return self._next
