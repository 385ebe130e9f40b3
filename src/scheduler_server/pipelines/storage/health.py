"""Can the database take writes? What ``GET /`` reports, without writing on every health check.

Every write transaction of the store reports its outcome here. A success in the
last few seconds (the dispatcher renews its lease every few seconds) answers the
question; otherwise, or after a failure, one small probe write decides, and its
answer is kept for a second so a busy health checker costs at most one write a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from scheduler_server.pipelines.storage.errors import StoreUnavailable

#: A successful write this recent means the database takes writes.
FRESH_SECONDS = 5.0
#: How long a probe's answer is reused.
PROBE_CACHE_SECONDS = 1.0


class WriteHealth:
    def __init__(self, probe: Callable[[], None]):
        self._probe = probe
        self._lock = threading.Lock()
        self._last_at = float("-inf")
        self._last_problem: str | None = None
        self._probed_at = float("-inf")

    def succeeded(self) -> None:
        self._last_at, self._last_problem = time.monotonic(), None

    def failed(self, reason: str) -> None:
        self._last_at, self._last_problem = time.monotonic(), reason

    def problem(self) -> str | None:
        """None if the database takes writes, else why not (one line)."""
        now = time.monotonic()
        if self._last_problem is None and now - self._last_at < FRESH_SECONDS:
            return None
        with self._lock:
            if now - self._probed_at >= PROBE_CACHE_SECONDS:
                self._probed_at = now
                try:
                    self._probe()  # reports its own outcome through succeeded() / failed()
                except StoreUnavailable:
                    pass
            return self._last_problem
