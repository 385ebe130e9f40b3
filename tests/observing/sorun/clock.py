"""The simulated clock: sorunlib's ``time.sleep`` and ``datetime.now`` read and move it, so waits pass instantly.

sorunlib's modules do ``import time`` and ``import datetime as dt``; while a script runs, those two module
attributes are swapped for stand-ins that answer from this clock (its own code is unchanged), and the harness
checks that every module known to read the clock was swapped. The agents advance the same clock by the
duration of each operation they run.
"""

from __future__ import annotations

import datetime as dt
import time as real_time
import types
from collections.abc import Iterator
from contextlib import contextmanager


class SimClock:
    def __init__(self, start: float):
        self.now = float(start)

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")  # as time.sleep says
        self.now += seconds

    def advance_to(self, moment: float) -> None:
        self.now = max(self.now, moment)

    def datetime_module(self) -> types.SimpleNamespace:
        clock = self

        class SimDatetime(dt.datetime):
            @classmethod
            def now(cls, tz=None):
                return dt.datetime.fromtimestamp(clock.now, tz)

            @classmethod
            def utcnow(cls):
                return dt.datetime.fromtimestamp(clock.now, dt.UTC).replace(tzinfo=None)

        return types.SimpleNamespace(datetime=SimDatetime, timezone=dt.timezone, timedelta=dt.timedelta, UTC=dt.UTC)

    def time_module(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(sleep=self.sleep, time=self.time, monotonic=self.time, strptime=real_time.strptime)


# What a module could hold of the wall clock directly (``from time import time``, ``from datetime import datetime``):
# no stand-in can replace those in place, so a module holding one makes clock_in refuse rather than read real time.
WALL_CLOCK = {id(getattr(real_time, n)): f"time.{n}" for n in
              ("time", "time_ns", "sleep", "monotonic", "monotonic_ns", "perf_counter", "localtime", "gmtime", "ctime")}  # fmt: skip
WALL_CLOCK |= {id(dt.datetime): "datetime.datetime", id(dt.date): "datetime.date"}


class ClockNotSimulated(RuntimeError):
    """A module would read the real clock while a script runs."""


@contextmanager
def clock_in(modules, clock: SimClock, needs: tuple[str, ...] = ()) -> Iterator[None]:
    """Point every ``time`` / ``dt`` / ``datetime`` module attribute of ``modules`` at ``clock``.

    Refuses (``ClockNotSimulated``, naming it) a module that holds a wall-clock function or class itself, and
    a module named in ``needs`` that is missing or in which nothing was swapped.
    """
    held = [
        f"{m.__name__}.{attr} is {WALL_CLOCK[id(v)]}"
        for m in modules
        for attr, v in vars(m).items()
        if id(v) in WALL_CLOCK
    ]
    if held:
        raise ClockNotSimulated(f"the simulated clock cannot replace {'; '.join(held)}")
    fake_dt, fake_time = clock.datetime_module(), clock.time_module()
    saved = []
    for module in modules:
        for attr, value in list(vars(module).items()):
            if value is real_time:
                saved.append((module, attr, value))
                setattr(module, attr, fake_time)
            elif value is dt:
                saved.append((module, attr, value))
                setattr(module, attr, fake_dt)
    try:
        swapped = {module.__name__ for module, _, _ in saved}
        unswapped = [name for name in needs if name not in swapped]
        if unswapped:
            raise ClockNotSimulated(
                f"no time or datetime module found to swap in {unswapped}: they would read the real clock"
            )
        yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)
