"""Fault injection for crash tests: die at a named point of the pipeline.

`DEPEG_PROCESSOR_FAULT=<point>` (read only by the entry point) makes the process SIGKILL itself
the first time it reaches that point, so a test can crash it exactly there instead of by
timing luck. Unset, every hook is a no-op.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

POINTS = ("after-simulate", "after-sign", "after-record", "after-broadcast", "after-ack")


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Faults:
    def __init__(self, point: str | None = None, action: Callable[[], None] = kill_self) -> None:
        if point is not None and point not in POINTS:
            raise ValueError(f"unknown fault point {point!r}; one of {', '.join(POINTS)}")
        self.point = point
        self._action = action

    def hit(self, name: str) -> None:
        if name == self.point:
            self._action()


NO_FAULTS = Faults()
