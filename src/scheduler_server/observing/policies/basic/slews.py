"""Getting from one scan to the next without passing near the sun.

The planner replays the script's timeline (``telescope.TelescopeModel``): after a
scan the telescope rests somewhere on that scan's arc, then moves to the next
scan's start, biases the detectors, waits for the start time, and scans. Every
span of that, the slew rectangles and the waits included, must pass the
``SunGuard``. The original scheduler checked only the scans.

When the direct way is unsafe the planner tries, in order: leaving later (waiting
where it is until just in time), travelling via a safe elevation, and parking
somewhere safe for the wait. If nothing works the next scan is dropped and the
reason is logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler_server.observing.policies.basic.avoidance import Box, SunGuard
from scheduler_server.observing.policies.basic.blocks import Scan, hhmm
from scheduler_server.observing.telescope import TelescopeModel

log = logging.getLogger(__name__)
LEAVE_MARGIN_SECONDS = 60
MIN_SCAN_LEFT_SECONDS = 60
PARK_AZIMUTHS = tuple(range(0, 360, 45))
MAX_PARKINGS_TRIED = 6


@dataclass(frozen=True)
class Move:
    az: float
    el: float


@dataclass(frozen=True)
class Wait:
    until: int


@dataclass(frozen=True)
class Route:
    """What to do before a scan's own ``acu.move_to``: extra waits and moves, and why."""

    steps: tuple[Move | Wait, ...] = ()
    note: str = ""


@dataclass
class _State:
    clock: float
    where: Box | None  # None: unknown (before the first move)


@dataclass
class Plan:
    kept: list[tuple[Scan, Route]] = field(default_factory=list)
    dropped: list[tuple[Scan, str]] = field(default_factory=list)
    states: list[_State] = field(default_factory=list)  # after each kept scan
    # Each scan planned, with the state before it and how many kept and dropped came
    # before it: what lets a later plan take over this one's tail (``plan(earlier=)``).
    steps: list[tuple[Scan, _State, int, int]] = field(default_factory=list)

    def before(self, moment: float) -> Plan:
        """The part of the plan whose scans end before ``moment``."""
        n = 0
        while n < len(self.kept) and self.kept[n][0].t1 < moment:
            n += 1
        end = self.kept[n - 1][0].t1 if n else float("-inf")
        return Plan(self.kept[:n], [d for d in self.dropped if d[0].t1 <= end], self.states[:n])


class Infeasible(Exception):
    """A route that does not work; the reason is worked out only if it is reported."""

    def __init__(
        self,
        guard: SunGuard | None = None,
        box: Box | None = None,
        t_from=0.0,
        t_to=0.0,
        what="",
        reason="",
        ahead=True,
    ):
        super().__init__(what or reason)
        self.guard, self.box, self.span, self.what, self.reason, self.ahead = (
            guard,
            box,
            (t_from, t_to),
            what,
            reason,
            ahead,
        )

    def __str__(self) -> str:
        if self.reason:
            return self.reason
        distance, when = self.guard.closest(
            self.box, self.span[0], self.span[1] + (self.guard.lookahead if self.ahead else 0.0)
        )
        return f"{self.what} would come {distance:.1f} deg from the sun at {hhmm(when)} (limit {self.guard.min_angle:g} deg)"


class SlewPlanner:
    def __init__(
        self,
        guard: SunGuard,
        model: TelescopeModel,
        routing_elevations: tuple[float, ...],
        start: int,
        min_durations: Mapping[str, float] | None = None,
    ):
        self.guard, self.model = guard, model
        lo, hi = model.el_limits
        self.elevations = tuple(e for e in routing_elevations if lo <= e <= hi)
        self.start = start
        self.min_durations = dict(min_durations or {})  # by scan kind: what a scan late for its setup must keep

    def plan(self, scans: list[Scan], prefix: Plan | None = None, earlier: Plan | None = None) -> Plan:
        """Routes to the scans that can be reached safely; the others dropped, with why.

        ``prefix`` is the start of an earlier plan to continue from (its state is kept).
        ``earlier`` is a plan of scans that end the same way as ``scans``: once the
        planner reaches that common tail in the same state as ``earlier`` did, every
        decision from there on would be the same, so ``earlier``'s are taken as they are.
        """
        plan = Plan(list(prefix.kept), list(prefix.dropped), list(prefix.states)) if prefix else Plan()
        state = (
            plan.states[-1]
            if plan.states
            else _State(self.start + self.model.uxm_setup_seconds + self.model.iv_curve_seconds, None)
        )
        tail = _common_tail(scans, [step[0] for step in earlier.steps]) if earlier else 0
        for k, scan in enumerate(scans):
            if k >= len(scans) - tail:
                _, before, n_kept, n_dropped = earlier.steps[len(earlier.steps) - (len(scans) - k)]
                if before == state:
                    plan.kept += earlier.kept[n_kept:]
                    plan.dropped += earlier.dropped[n_dropped:]
                    plan.states += earlier.states[n_kept:]
                    plan.steps += earlier.steps[len(earlier.steps) - (len(scans) - k) :]
                    return plan
            plan.steps.append((scan, state, len(plan.kept), len(plan.dropped)))
            found = self._route(state, scan)
            if isinstance(found, str):
                log.info("%s scan %s %s to %s dropped: %s", scan.kind, scan.name, hhmm(scan.t0), hhmm(scan.t1), found)
                plan.dropped.append((scan, found))
                continue
            route, state, start = found
            if route.note:
                log.info("%s scan %s at %s: %s", scan.kind, scan.name, hhmm(scan.t0), route.note)
            plan.kept.append((_started(scan, start), route))
            plan.states.append(state)
        return plan

    def _route(self, state: _State, scan: Scan):
        try:
            return Route(), *self._replay(state, Route(), scan)
        except Infeasible as exc:
            first_problem = exc
        try:
            self._replay(state, Route(), scan, check=False)
        except Infeasible as exc:
            return str(exc)  # too late whichever way: no other route can help
        for route in self._candidates(state, scan):
            try:
                return route, *self._replay(state, route, scan)
            except Infeasible:
                continue
        return str(first_problem)

    def _candidates(self, state: _State, scan: Scan):
        leave = self._latest_departure(state.where, Move(scan.az, scan.el), scan)
        if leave > state.clock:
            yield Route((Wait(leave),), "left late to avoid waiting near the sun")
        if state.where is not None:
            for el in self.elevations:
                via = (Move(state.where[0], el), Move(scan.az, el))
                yield Route(via, f"slewed via elevation {el:g} to keep clear of the sun")
                leave = self._latest_departure(state.where, Move(scan.az, scan.el), scan, via)
                if leave > state.clock:
                    yield Route(
                        (Wait(leave), *via), f"left late and slewed via elevation {el:g} to keep clear of the sun"
                    )
        for park in self._parkings(state, scan):
            leave = self._latest_departure(_point(park), Move(scan.az, scan.el), scan)
            if leave > state.clock:
                yield Route((park, Wait(leave)), f"waited at az {park.az:g} el {park.el:g}, clear of the sun")

    def _parkings(self, state: _State, scan: Scan):
        """Parking spots clear of the sun for the whole wait, nearest first."""
        here = state.where
        spots = [Move(float(az), el) for el in self.elevations for az in PARK_AZIMUTHS]
        if here is not None:
            spots.sort(key=lambda m: self.model.slew_seconds(here[:2], here[2], m.az, m.el))
        # Sorted first (stably), then tested in that order until enough are found: the
        # same spots as testing all and sorting the safe ones, for a fraction of the tests.
        safe = []
        for spot in spots:
            if len(safe) == MAX_PARKINGS_TRIED:
                break
            if self.guard.safe(_point(spot), state.clock, scan.t0):
                safe.append(spot)
        return safe

    def _latest_departure(self, where: Box | None, target: Move, scan: Scan, via: tuple[Move, ...] = ()) -> int:
        travel = 0.0
        at = where
        for move in (*via, target):
            if at is not None:
                travel += self.model.slew_seconds(at[:2], at[2], move.az, move.el)
            else:
                travel += self.model.longest_slew_seconds()
            at = _point(move)
        return int(scan.t0 - self.model.bias_dets_seconds - travel - LEAVE_MARGIN_SECONDS)

    def _replay(self, state: _State, route: Route, scan: Scan, check: bool = True) -> tuple[_State, int]:
        clock, where = state.clock, state.where
        for step in (*route.steps, Move(scan.az, scan.el)):
            if isinstance(step, Wait):
                if clock > step.until:  # e.g. a parking spot reached after the time to leave it
                    raise Infeasible(reason=f"a wait until {hhmm(step.until)} would be reached late")
                if check:
                    self._hold(where, clock, step.until, "waiting")
                clock = step.until
                continue
            if where is not None:
                duration = self.model.slew_seconds(where[:2], where[2], step.az, step.el)
                area = _hull(where, step)
                if check and not self.guard.safe(area, clock, clock + duration, look_ahead=False):
                    raise Infeasible(
                        self.guard,
                        area,
                        clock,
                        clock + duration,
                        f"the slew to az {step.az:g} el {step.el:g}",
                        ahead=False,
                    )
                clock += duration
            else:  # the script's first move, from wherever the telescope is
                clock += self.model.longest_slew_seconds()
            where = _point(step)
        # Ready once the detectors are biased; a scan that cannot start on time starts when
        # ready (its wait_until is never in the past) and loses that time, if it keeps enough.
        start = max(scan.t0, math.ceil(clock + self.model.bias_dets_seconds))
        if check:
            self._hold(where, clock, start, "waiting for the start")
        # What is observed is seq.scan's span, after the opening bias step: that is what must
        # keep the scan kind's min-duration (and the block reported, policy.py).
        least = max(MIN_SCAN_LEFT_SECONDS, self.min_durations.get(scan.kind, 0.0))
        observed = scan.t1 - start - self.model.bias_step_seconds
        if observed < least:
            left = f"{observed:g} s of it" if observed > 0 else "nothing of it"
            why = f"the telescope cannot be there in time: ready at {hhmm(start)}" if start > scan.t0 else "too short"
            raise Infeasible(reason=f"{why}, leaving {left} after the bias step (at least {least:g} s needed)")
        clock = scan.t1 + self.model.bias_step_seconds
        return _State(clock, (scan.az, scan.az_hi, scan.el, scan.el)), start

    def _hold(self, where: Box | None, t_from: float, t_to: float, doing: str) -> None:
        if where is not None and t_to > t_from and not self.guard.safe(where, t_from, t_to):
            raise Infeasible(self.guard, where, t_from, t_to, f"{doing} at az {where[0]:g} el {where[2]:g}")


def _started(scan: Scan, start: int) -> Scan:
    """The scan as run: when setup makes it start late, the lost time is taken from it and said."""
    if start <= scan.t0:
        return scan
    note = f"setup: start moved from {hhmm(scan.t0)} to {hhmm(start)} (bias step, slew and detector bias)"
    log.info("%s scan %s: %s", scan.kind, scan.name, note)
    return scan.replace(t0=start, cuts=(*scan.cuts, note))


def _common_tail(a: list[Scan], b: list[Scan]) -> int:
    """How many scans at the end of ``a`` and ``b`` are the same."""
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _point(move: Move) -> Box:
    return (move.az, move.az, move.el, move.el)


def _hull(box: Box, move: Move) -> Box:
    return (min(box[0], move.az), max(box[1], move.az), min(box[2], move.el), max(box[3], move.el))
