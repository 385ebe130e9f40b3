"""Work for instances a pipeline waits for goes before work for spares booted ahead.

When a burst of servers turns ACTIVE together (look-ahead boots one per queued
pipeline), opening SSH to all of them at once makes each handshake slower, and
the servers whose pipelines could start now wait for the spares, which are not
needed before a lane frees. Here a spare's turn waits while any awaited
instance's turn runs, for at most ``max_wait`` seconds, so a spare is never
starved; awaited ones never wait.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

#: How often a waiting spare asks again whether it has become awaited meanwhile.
RECHECK = 0.25


class UrgentFirst:
    def __init__(self, max_wait: float = 3.0):
        self.max_wait = max_wait
        self._cond = threading.Condition()
        self._urgent = 0

    @contextmanager
    def turn(self, awaited: Callable[[], bool]) -> Iterator[bool]:
        """Hold a turn for the block; yields whether it ran as urgent."""
        deadline = time.monotonic() + self.max_wait
        urgent = awaited()
        while not urgent:
            with self._cond:
                left = deadline - time.monotonic()
                if self._urgent == 0 or left <= 0:
                    break
                self._cond.wait(min(RECHECK, left))
            urgent = awaited()  # a lane may have freed: this spare is now someone's instance
        if urgent:
            with self._cond:
                self._urgent += 1
        try:
            yield urgent
        finally:
            if urgent:
                with self._cond:
                    self._urgent -= 1
                    self._cond.notify_all()
