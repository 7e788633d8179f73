"""The one clock of the service: wall time for what is stored or shown, monotonic time for
intervals. Passed in, so tests set the time instead of patching `time`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Clock:
    """`now()` is seconds since the epoch (timestamps in Redis, latencies against the web
    app's); `monotonic()` never goes back (timeouts, heartbeats, schedules)."""

    now: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


SYSTEM = Clock()  # the real time, the default wherever a clock is taken
