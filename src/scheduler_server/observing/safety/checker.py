"""An independent sun-safety check of a command *script*.

It does not look at the blocks or routes that produced a script, only at the
script's text: it reads its calls (``script_reader``), replays them with the
timing model (``telescope.TelescopeModel``), and so reconstructs what the
telescope occupies at every moment: a point while it holds still, the swept arc
during a scan (its whole throw, and the drift), the az/el rectangle spanned by a
slew's two ends (whatever the axis speeds, the path stays inside it). Then it
samples every span and reports every moment the sun is closer than ``min_angle``.

The geometry is done here again, in its own form, rather than borrowed from the
policy's own code. What cannot be known is said, not guessed: before the first
``acu.move_to`` the pointing is unknown and nothing is checked; without a start
time, the timeline begins at the first ``wait_until``. A statement the checker
does not understand makes the script fail, since its effect on the telescope is
unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from scheduler_server.observing.safety.script_reader import Call, read_script
from scheduler_server.observing.sky import ephemerides as sky
from scheduler_server.observing.telescope import TelescopeModel

# What each understood call may be given (sorunlib's signatures).
SIGNATURES = {
    "initialize": ("test_mode",),
    "wait_until": ("timestamp", "tolerance"),
    "acu.move_to": ("az", "el"),
    "seq.scan": ("description", "stop_time", "width", "az_drift", "tag", "subtype", "min_duration"),
    "smurf.uxm_setup": ("concurrent", "settling_time"),
    "smurf.iv_curve": ("tag", "iv_kwargs", "concurrent", "settling_time"),
    "smurf.bias_dets": ("rfrac", "concurrent", "settling_time"),
    "smurf.bias_step": ("tag", "concurrent", "settling_time"),
}
REQUIRED = {"wait_until": 1, "acu.move_to": 2, "seq.scan": 3}
NUMERIC = {"acu.move_to": ("az", "el"), "seq.scan": ("width", "az_drift")}


@dataclass(frozen=True, slots=True)
class Span:
    """The telescope within az x el from t0 to t1, because of the command on ``line``."""

    line: int
    doing: str  # "slew", "scan" or a command's name while holding still
    t0: float
    t1: float
    az: tuple[float, float]
    el: tuple[float, float]
    label: str = ""  # a scan's description
    target: tuple[float, float] = (0.0, 0.0)  # where a slew goes

    @property
    def what(self) -> str:
        if self.doing == "slew":
            return f"slew to az {self.target[0]:g} el {self.target[1]:g}"
        if self.doing == "scan":
            return f"scan {self.label!r} over az {self.az[0]:g}..{self.az[1]:g} el {self.el[0]:g}"
        return f"{self.doing} at az {self.az[0]:g}..{self.az[1]:g} el {self.el[0]:g}"


@dataclass(frozen=True)
class Violation:
    line: int
    what: str
    t0: float
    t1: float
    closest: float
    sun_az: float
    sun_el: float

    def __str__(self) -> str:
        return (
            f"line {self.line}: {self.what} from {_iso(self.t0)} to {_iso(self.t1)} comes {self.closest:.2f} deg"
            f" from the sun (at az {self.sun_az:.1f} el {self.sun_el:.1f})"
        )


@dataclass
class Report:
    min_angle: float
    violations: list[Violation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    spans: int = 0
    closest: float | None = None
    # (POSIX time, least sun distance of what the telescope occupies, deg): one per minute
    # of the replayed timeline (the minute's start, its closest moment), over the whole script.
    sun_samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def limit_deg(self) -> float:
        """The least sun distance the script was held to, deg."""
        return self.min_angle

    @property
    def safe(self) -> bool:
        return not self.violations and not self.problems

    def lines(self) -> list[str]:
        return [*self.problems, *(str(v) for v in self.violations)]


def check_script(
    text: str,
    min_angle: float,
    model: TelescopeModel,
    site: sky.Site,
    start: float | None = None,
    step: int = 10,
    sun: sky.Samples | None = None,
) -> Report:
    """Replay ``text`` and judge every ``step`` seconds of it (and every span's ends).

    ``sun`` may hold sun positions already sampled (on any grid), to save work.
    """
    report = Report(min_angle)
    spans = _Replay(model, start, report).run(text)
    report.spans = len(spans)
    if spans:
        _judge(spans, min_angle, site, step, sun, report)
    return report


class _Replay:
    def __init__(self, model: TelescopeModel, start: float | None, report: Report):
        self.model, self.clock, self.report = model, start, report
        self.az: tuple[float, float] | None = None
        self.el: tuple[float, float] | None = None
        self.spans: list[Span] = []

    def run(self, text: str) -> list[Span]:
        reading = read_script(text)
        self.report.problems.extend(reading.problems)
        for call in reading.calls:
            self._call(call)
        return self.spans

    def _call(self, call: Call) -> None:
        name, line = call.name, call.line
        if name not in SIGNATURES:
            self._problem(
                line, f"unknown command {name or '(expression)'}(); only {', '.join(sorted(SIGNATURES))} are understood"
            )
            return
        # Most calls (smurf.bias_step() and the like) have no arguments: nothing to check.
        args = self._arguments(call) if call.args or call.kwargs or name in REQUIRED else {}
        if args is None:
            return
        if name == "wait_until":
            target = self._time(args["timestamp"], line)
            if target is not None:
                if self.clock is not None:
                    self._hold(line, "waiting", target)
                self.clock = target if self.clock is None else max(self.clock, target)
        elif name == "acu.move_to":
            self._move(float(args["az"]), float(args["el"]), line)
        elif name == "seq.scan":
            self._scan(args, line)
        elif name.startswith("smurf."):
            if self.clock is not None:
                self._hold(line, f"{name}()", self.clock + self.model.command_seconds(name))
                self.clock += self.model.command_seconds(name)

    def _arguments(self, call: Call) -> dict | None:
        name, line, params = call.name, call.line, SIGNATURES[call.name]
        if len(call.args) > len(params):
            self._problem(line, f"{name}() takes at most {len(params)} positional arguments")
            return None
        values = dict(zip(params, call.args))
        for key, value in call.kwargs.items():
            if key not in params or key in values:
                self._problem(line, f"{name}() got an unexpected or repeated argument {key!r}")
                return None
            values[key] = value
        required = REQUIRED.get(name, 0)
        if required:
            missing = [p for p in params[:required] if p not in values]
            if missing:
                self._problem(line, f"{name}() is missing {', '.join(missing)}")
                return None
            for key in NUMERIC.get(name, ()):
                if key in values and (not isinstance(values[key], (int, float)) or isinstance(values[key], bool)):
                    self._problem(line, f"{name}(): {key} must be a number")
                    return None
        return values

    def _time(self, value, line: int) -> float | None:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self._problem(line, f"{value!r} is not an ISO 8601 time")
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # sorunlib reads naive times as UTC
        elif parsed.utcoffset().total_seconds() != 0:
            self._problem(line, f"{value!r}: sorunlib accepts only UTC times")
            return None
        return parsed.timestamp()

    def _move(self, az: float, el: float, line: int) -> None:
        if self.clock is not None and self.az is not None:
            daz = max(abs(az - self.az[0]), abs(az - self.az[1]))
            dur = max(daz / self.model.az_speed, max(abs(el - self.el[0]), abs(el - self.el[1])) / self.model.el_speed)
            dur += self.model.settle_seconds
            box_az = (min(self.az[0], az), max(self.az[1], az))
            box_el = (min(self.el[0], el), max(self.el[1], el))
            self.spans.append(Span(line, "slew", self.clock, self.clock + dur, box_az, box_el, target=(az, el)))
            self.clock += dur
        self.az, self.el = (az, az), (el, el)

    def _scan(self, args: dict, line: int) -> None:
        if self.az is None:
            self._problem(line, "seq.scan() before any acu.move_to(): the pointing is unknown")
            return
        stop = self._time(args["stop_time"], line)
        if stop is None or self.clock is None:
            if self.clock is None:
                self._problem(line, "seq.scan() before any wait_until() or start time: when it runs is unknown")
            return
        if stop <= self.clock:
            return  # sorunlib skips a scan whose stop time has passed
        width, drift = float(args["width"]), float(args.get("az_drift", 0) or 0)
        lo, hi = self.az[0] + min(0.0, width), self.az[1] + max(0.0, width)
        travel = drift * (stop - self.clock)
        lo, hi = lo + min(0.0, travel), hi + max(0.0, travel)
        self.spans.append(Span(line, "scan", self.clock, stop, (lo, hi), self.el, str(args["description"])))
        self.clock = stop
        self.az = (lo, hi)

    def _hold(self, line: int, doing: str, until: float) -> None:
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

    def _problem(self, line: int, text: str) -> None:
        self.report.problems.append(f"line {line}: {text}")


def _judge(
    spans: list[Span], min_angle: float, site: sky.Site, step: int, sun: sky.Samples | None, report: Report
) -> None:
    t, owner = _sample_times(spans, step)
    sun_az, sun_el = _sun(t, site, sun)
    boxes = np.array([(s.az[0], s.az[1], s.el[0], s.el[1]) for s in spans])
    all_dot = _cos_to_box(sun_az, sun_el, boxes[owner])
    report.sun_samples = _per_minute(t, all_dot)
    # The elevation difference bounds the distance from below: only where it does
    # not settle the question is a sample a candidate (the closest approach is
    # reported among those, as before).
    near = np.flatnonzero(boxes[owner, 2] - sun_el < min_angle)
    if len(near) == 0:
        return
    who, dot = owner[near], all_dot[near]
    report.closest = float(np.degrees(np.arccos(min(1.0, dot.max()))))
    bad = dot > np.cos(np.radians(min_angle))
    if not bad.any():
        return
    distance = np.degrees(np.arccos(np.clip(dot, -1.0, 1.0)))
    for i in np.unique(who[bad]):
        sel = np.flatnonzero(bad & (who == i))
        worst = sel[np.argmin(distance[sel])]
        span, moments = spans[i], t[near][sel]
        report.violations.append(
            Violation(
                span.line,
                span.what,
                float(moments.min()),
                float(moments.max()),
                float(distance[worst]),
                float(sun_az[near][worst]),
                float(sun_el[near][worst]),
            )
        )


def _per_minute(t: np.ndarray, dot: np.ndarray) -> list[tuple[float, float]]:
    """The largest cosine (least distance) of each minute the samples ``t`` touch, as (minute, deg)."""
    order = np.argsort(t, kind="stable")  # spans follow each other: already sorted but for equal ends
    t, dot = t[order], dot[order]
    minute = np.floor(t / 60.0)
    starts = np.flatnonzero(np.r_[True, minute[1:] != minute[:-1]])
    best = np.maximum.reduceat(dot, starts)
    degrees = np.degrees(np.arccos(np.clip(best, -1.0, 1.0)))
    return list(zip((minute[starts] * 60.0).tolist(), np.round(degrees, 3).tolist()))


def _sample_times(spans: list[Span], step: int) -> tuple[np.ndarray, np.ndarray]:
    """Each span's start, every multiple of ``step`` inside it, and its end; with the span's index."""
    t0 = np.array([s.t0 for s in spans])
    t1 = np.array([s.t1 for s in spans])
    first = np.ceil(t0 / step) * step
    inner = np.maximum(0, np.ceil((t1 - first) / step)).astype(np.int64)  # grid points in [first, t1)
    counts = inner + 2
    owner = np.repeat(np.arange(len(spans)), counts)
    starts = np.cumsum(counts) - counts
    position = np.arange(len(owner)) - starts[owner]  # 0 .. counts-1 within each span
    t = first[owner] + (position - 1) * step
    t[position == 0] = t0
    last = starts + counts - 1
    t[last] = t1
    return t, owner


def _sun(t: np.ndarray, site: sky.Site, sun: sky.Samples | None) -> tuple[np.ndarray, np.ndarray]:
    """Sun positions at ``t``: from ``sun``'s grid where it covers them (linear in between:
    the sun moves 0.04 deg in 10 s), else computed."""
    if sun is None:
        return sky.altaz("sun", site, t)
    position = (t - sun.t[0]) / sun.step
    i = np.clip(np.floor(position).astype(np.int64), 0, len(sun.t) - 1)
    covered = (position >= 0) & (position <= len(sun.t) - 1)
    # Most sample times are grid times (both are multiples of the step): read them;
    # the others lie between two grid times, the shorter way round in azimuth.
    az, el = sun.az[i], sun.el[i]
    b = np.flatnonzero(covered & (position != i))
    if len(b):
        frac, lo = position[b] - i[b], i[b]
        turn = (sun.az[lo + 1] - az[b] + 180.0) % 360.0 - 180.0
        az[b] = (az[b] + frac * turn) % 360.0
        el[b] = el[b] + frac * (sun.el[lo + 1] - el[b])
    if not covered.all():
        az[~covered], el[~covered] = sky.altaz("sun", site, t[~covered])
    return az, el


def _cos_to_box(az, el, boxes) -> np.ndarray:
    """Cosine of the angle from each direction (az, el) to the nearest point of its box
    (rows of az_lo, az_hi, el_lo, el_hi).

    The nearest azimuth of the box is the one nearest ``az``, ``gap`` away. Along
    that meridian the cosine of the angle to elevation x is
    sin(el) sin(x) + cos(el) cos(gap) cos(x) = R cos(x - x_top), with
    R = hypot(sin el, cos el cos gap) and x_top = atan2(sin el, cos el cos gap):
    its largest value over the box's elevations is R where x_top lies inside them,
    else at one of their two ends (the nearer one, which for a sun behind the
    zenith is not always the one x_top is clamped to).
    """
    az_lo, az_hi, el_lo, el_hi = (np.radians(boxes[:, k]) for k in range(4))
    a, e = np.radians(az), np.radians(el)
    width = az_hi - az_lo
    into = (a - az_lo) % (2 * np.pi)
    inside = (into <= width) | (width >= 2 * np.pi)
    cos_gap = np.cos(np.where(inside, 0.0, np.minimum(into - width, 2 * np.pi - into)))
    sin_e, across = np.sin(e), np.cos(e) * cos_gap
    at_ends = np.maximum(sin_e * np.sin(el_lo) + across * np.cos(el_lo), sin_e * np.sin(el_hi) + across * np.cos(el_hi))
    top = np.arctan2(sin_e, across)
    return np.where((top >= el_lo) & (top <= el_hi), np.hypot(sin_e, across), at_ends)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(round(seconds), tz=UTC).isoformat()
