"""Fixtures for the observing tests: one sky/master-schedule cache per test run, and constructed skies."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from scheduler_server.observing.sky.cache import ENV_CACHE_DIR
from scheduler_server.observing.sky.ephemerides import ATACAMA, Samples


@pytest.fixture(scope="session", autouse=True)
def observing_cache(request, tmp_path_factory):
    # One cache per test run, shared by its xdist workers (their basetemps have a
    # common parent), so ephemeris tables and generated months are computed once a run.
    # Read from the config, not xdist's worker_id fixture: `-p no:xdist` runs work too.
    base = tmp_path_factory.getbasetemp()
    worker = getattr(request.config, "workerinput", None)
    root = (base.parent if worker is not None else base) / "observing-cache"
    previous = os.environ.get(ENV_CACHE_DIR)
    os.environ[ENV_CACHE_DIR] = str(root)
    yield root
    if previous is None:
        os.environ.pop(ENV_CACHE_DIR, None)
    else:
        os.environ[ENV_CACHE_DIR] = previous


def constructed_sky(
    body: str,
    t0: float,
    hours: float,
    step: int,
    az0: float,
    el0: float,
    daz_per_min: float = 0.0,
    del_per_min: float = 0.0,
) -> Samples:
    """A body moving uniformly in azimuth and elevation: answers can be worked out by hand."""
    t = t0 + np.arange(-3600, hours * 3600 + 4 * 3600, step, dtype=float)
    minutes = (t - t0) / 60.0
    return Samples.of(body, ATACAMA, t, az0 + daz_per_min * minutes, el0 + del_per_min * minutes)


CLI = str(Path(sys.executable).parent / "scheduler-server")  # the installed console script


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """UTC Unix seconds of a calendar moment."""
    import calendar

    return calendar.timegm((year, month, day, hour, minute, second))
