"""Polling until a condition holds, for tests that watch a separate process or thread."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.02, message: str = "condition"):
    """The first truthy value of ``predicate()``; AssertionError naming ``message`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
