"""systemd's notify protocol (sd_notify): READY, WATCHDOG and STOPPING over a datagram socket.

A no-op without NOTIFY_SOCKET, so the same code runs under systemd, in Docker and by hand.
WATCHDOG pings come from the processor loop's heartbeat, at most twice per WATCHDOG_USEC, so a
loop that stops beating gets the service restarted by systemd.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(
        self,
        address: str | None,
        *,
        watchdog_usec: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if address and address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self._address = address or None
        self._interval = watchdog_usec / 2e6 if watchdog_usec else None
        self._monotonic = monotonic
        self._last_ping = float("-inf")
        self._lock = threading.Lock()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Notifier:
        usec = environ.get("WATCHDOG_USEC", "")
        return cls(
            environ.get("NOTIFY_SOCKET"), watchdog_usec=int(usec) if usec.isdigit() else None
        )

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, message: str) -> None:
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode())
        except OSError as error:
            log.warning("sd_notify %r failed: %s", message.split("=")[0], error)

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        """Ping the watchdog, rate-limited to half its interval."""
        if self._address is None or self._interval is None:
            return
        now = self._monotonic()
        with self._lock:
            if now - self._last_ping < self._interval:
                return
            self._last_ping = now
        self.notify("WATCHDOG=1")
