"""Work for instances a pipeline waits for goes before work for spares booted ahead.

When a burst of servers turns ACTIVE together (look-ahead boots one per queued
pipeline), opening SSH to all of them at once makes each handshake slower, and
the servers whose pipelines could start now wait for the spares, which are not
needed before a lane frees. Here a spare's turn waits while any awaited
instance's turn runs, for at most ``max_wait`` seconds, so a spare is never
starved; awaited ones never wait.

An awaited instance's urgency can outlive its turn: after its SSH probe, its
first launch is still to come (staging, the launch message), and spares
connecting meanwhile would slow that down too. ``hold`` keeps spares waiting
until ``release`` (the launch happened, or the instance went) or a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

#: How often a waiting spare asks again whether it has become awaited meanwhile.
RECHECK = 0.25


class UrgentFirst:
    def __init__(self, max_wait: float = 3.0):
        self.max_wait = max_wait
        self._cond = threading.Condition()
        self._urgent = 0
        self._holds: dict[Hashable, float] = {}  # key -> monotonic deadline

    @contextmanager
    def turn(self, awaited: Callable[[], bool]) -> Iterator[bool]:
        """Hold a turn for the block; yields whether it ran as urgent."""
        deadline = time.monotonic() + self.max_wait
        urgent = awaited()
        while not urgent:
            with self._cond:
                left = deadline - time.monotonic()
                busy_until = self._busy_until()
                if busy_until is None or left <= 0:
                    break
                self._cond.wait(min(RECHECK, left, busy_until - time.monotonic()))
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

    def hold(self, key: Hashable, seconds: float) -> None:
        """Keep spares waiting for ``key`` after its turn, until ``release(key)`` or ``seconds`` pass."""
        with self._cond:
            self._holds[key] = time.monotonic() + seconds

    def release(self, key: Hashable) -> None:
        with self._cond:
            if self._holds.pop(key, None) is not None:
                self._cond.notify_all()

    def _busy_until(self) -> float | None:
        """Under the lock: None if nothing urgent is going on, else when to look again at the latest."""
        now = time.monotonic()
        for key in [k for k, deadline in self._holds.items() if deadline <= now]:
            del self._holds[key]
        if self._urgent:
            return now + RECHECK
        return min(self._holds.values()) if self._holds else None
