"""Waiting for a `scheduler-server serve` process started by a test or a tool to answer."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests


def wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Return once ``url`` answers at all (any status); RuntimeError with the log's tail if the
    process exits first or nothing answers within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited {process.returncode}: {log.read_text()[-3000:]}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException as exc:  # refused, or not answered in time (a worker still loading)
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"serve did not answer at {url} within {timeout} s (last: {type(last).__name__})")
