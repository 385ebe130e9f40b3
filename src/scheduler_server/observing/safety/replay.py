"""Replaying a script's calls into the spans the telescope occupies: the shared part, and the seed's shape.

A replay keeps a clock (unknown until a start time or the first ``wait_until``) and the pointing
(unknown until the first move), and turns every call into time passing somewhere: a slew's az/el
rectangle, a scan's swept arc, a hold at one place. ``SeedReplay`` reads the seed's
``from sorunlib import *`` scripts exactly as the checker always has; ``sat_replay.SatReplay`` the
sequencer's ``import sorunlib as run`` scripts with their hazards.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from datetime import UTC, datetime

from scheduler_server.observing.safety.findings import Report, Span
from scheduler_server.observing.safety.script_reader import Call
from scheduler_server.observing.telescope import TelescopeModel


class Replay(ABC):
    # What each understood call may be given (sorunlib's signatures), how many of those are
    # required, which must be numbers, and which further keywords it passes through.
    SIGNATURES: dict[str, tuple[str, ...]] = {}
    REQUIRED: dict[str, int] = {}
    NUMERIC: dict[str, tuple[str, ...]] = {}
    EXTRA: dict[str, tuple[str, ...]] = {}

    def __init__(self, start: float | None, report: Report):
        self.clock, self.report = start, report
        self.az: tuple[float, float] | None = None
        self.el: tuple[float, float] | None = None
        self.spans: list[Span] = []

    def run(self, calls: list[Call]) -> list[Span]:
        for call in calls:
            self.call(call)
        return self.spans

    @abstractmethod
    def call(self, call: Call) -> None:
        """Advance the clock and the pointing by one call (each script shape reads its own calls)."""

    def unknown(self, call: Call, name: str) -> None:
        self.problem(
            call.line,
            f"unknown command {name or '(expression)'}(); only {', '.join(sorted(self.SIGNATURES))} are understood",
        )

    def arguments(self, call: Call, name: str, shown: str | None = None) -> dict | None:
        """``call``'s arguments by parameter name (``name``'s signature), or None after saying what is wrong
        (naming the call as ``shown``, or ``name``)."""
        line, params = call.line, self.SIGNATURES[name]
        signature, name = name, shown or name
        if len(call.args) > len(params):
            self.problem(line, f"{name}() takes at most {len(params)} positional arguments")
            return None
        values = dict(zip(params, call.args))
        extra = self.EXTRA.get(signature, ())
        for key, value in call.kwargs.items():
            if (key not in params and key not in extra) or key in values:
                self.problem(line, f"{name}() got an unexpected or repeated argument {key!r}")
                return None
            values[key] = value
        required = self.REQUIRED.get(signature, 0)
        if required:
            missing = [p for p in params[:required] if values.get(p) is None]
            if missing:
                self.problem(line, f"{name}() is missing {', '.join(missing)}")
                return None
        for key in self.NUMERIC.get(signature, ()):
            value = values.get(key)
            if key in values and (value is not None or key in params[:required]) and not _number(value):
                finite = isinstance(value, float) and not math.isfinite(value)
                self.problem(line, f"{name}(): {key} must be {'finite' if finite else 'a number'}")
                return None
        return values

    def time(self, value, line: int) -> float | None:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.problem(line, f"{value!r} is not an ISO 8601 time")
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # sorunlib reads naive times as UTC
        elif parsed.utcoffset().total_seconds() != 0:
            self.problem(line, f"{value!r}: sorunlib accepts only UTC times")
            return None
        return parsed.timestamp()

    def move(self, az: float, el: float, line: int, seconds) -> None:
        """Slew to (az, el), taking ``seconds(az_from, el_from, az, el)``; from an unknown place no time."""
        if self.clock is not None and self.az is not None:
            dur = seconds(self.az, self.el, az, el)
            box_az = (min(self.az[0], az), max(self.az[1], az))
            box_el = (min(self.el[0], el), max(self.el[1], el))
            self.spans.append(Span(line, "slew", self.clock, self.clock + dur, box_az, box_el, target=(az, el)))
            self.clock += dur
        self.az, self.el = (az, az), (el, el)

    def sweep(self, width: float, drift: float, stop: float) -> tuple[float, float]:
        """The azimuths a scan from now to ``stop`` covers: its throw, and how far it drifts."""
        lo, hi = self.az[0] + min(0.0, width), self.az[1] + max(0.0, width)
        travel = drift * (stop - self.clock)
        return lo + min(0.0, travel), hi + max(0.0, travel)

    def hold(self, line: int, doing: str, until: float) -> None:
        if self.az is None or until <= self.clock:
            return
        last = self.spans[-1] if self.spans else None
        if (
            last is not None
            and last.doing not in ("slew", "scan")
            and last.t1 == self.clock
            and last.az == self.az
            and last.el == self.el
        ):
            # Consecutive holds at one place are one span (named by the first command).
            self.spans[-1] = Span(last.line, last.doing, last.t0, until, self.az, self.el)
        else:
            self.spans.append(Span(line, doing, self.clock, until, self.az, self.el))

    def problem(self, line: int, text: str) -> None:
        self.report.problems.append(f"line {line}: {text}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class SeedReplay(Replay):
    """The seed's shape, judged as it always was: sun distance only, durations from the telescope model."""

    SIGNATURES = {
        "initialize": ("test_mode",),
        "wait_until": ("timestamp", "tolerance"),
        "acu.move_to": ("az", "el"),
        "seq.scan": ("description", "stop_time", "width", "az_drift", "tag", "subtype", "min_duration"),
        "smurf.uxm_setup": ("concurrent", "settling_time"),
        "smurf.iv_curve": ("tag", "iv_kwargs", "concurrent", "settling_time"),
        "smurf.bias_dets": ("rfrac", "concurrent", "settling_time"),
        "smurf.bias_step": ("tag", "concurrent", "settling_time"),
        "time.sleep": ("seconds",),  # the dummy policy's scripts: ``import time`` and sleeps, nothing points
    }
    REQUIRED = {"wait_until": 1, "acu.move_to": 2, "seq.scan": 3, "time.sleep": 1}
    NUMERIC = {"acu.move_to": ("az", "el"), "seq.scan": ("width", "az_drift"), "time.sleep": ("seconds",)}

    def __init__(self, model: TelescopeModel, start: float | None, report: Report):
        super().__init__(start, report)
        self.model = model

    def call(self, call: Call) -> None:
        name, line = call.name, call.line
        if name not in self.SIGNATURES:
            self.unknown(call, name)
            return
        # Most calls (smurf.bias_step() and the like) have no arguments: nothing to check.
        args = self.arguments(call, name) if call.args or call.kwargs or name in self.REQUIRED else {}
        if args is None:
            return
        if name == "wait_until":
            target = self.time(args["timestamp"], line)
            if target is not None:
                if self.clock is not None:
                    self.hold(line, "waiting", target)
                self.clock = target if self.clock is None else max(self.clock, target)
        elif name == "acu.move_to":
            self.move(float(args["az"]), float(args["el"]), line, self._slew)
        elif name == "seq.scan":
            self._scan(args, line)
        elif name == "time.sleep":
            self._sleep(float(args["seconds"]), line)
        elif name.startswith("smurf."):
            if self.clock is not None:
                self.hold(line, f"{name}()", self.clock + self.model.command_seconds(name))
                self.clock += self.model.command_seconds(name)

    def _sleep(self, seconds: float, line: int) -> None:
        """Time passes where the telescope is (if it is known where)."""
        if seconds < 0:
            self.problem(line, "time.sleep(): a negative time")
        elif self.clock is not None:
            self.hold(line, "time.sleep()", self.clock + seconds)
            self.clock += seconds

    def _slew(self, az0, el0, az, el) -> float:
        m = self.model
        return (
            max(
                max(abs(az - az0[0]), abs(az - az0[1])) / m.az_speed,
                max(abs(el - el0[0]), abs(el - el0[1])) / m.el_speed,
            )
            + m.settle_seconds
        )

    def _scan(self, args: dict, line: int) -> None:
        if self.az is None:
            self.problem(line, "seq.scan() before any acu.move_to(): the pointing is unknown")
            return
        stop = self.time(args["stop_time"], line)
        if stop is None or self.clock is None:
            if self.clock is None:
                self.problem(line, "seq.scan() before any wait_until() or start time: when it runs is unknown")
            return
        if stop <= self.clock:
            return  # sorunlib skips a scan whose stop time has passed
        lo, hi = self.sweep(float(args["width"]), float(args.get("az_drift", 0) or 0), stop)
        self.spans.append(Span(line, "scan", self.clock, stop, (lo, hi), self.el, str(args["description"])))
        self.clock = stop
        self.az = (lo, hi)
