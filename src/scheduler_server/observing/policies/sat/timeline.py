"""Laying the visits on time: the ops before each, sun-safe moves, waits, parking, and what cannot be done.

For each visit, in time order, the planner replays what the script will do: from where the telescope rests
(the last scan's sweep, or the starting pointing) it waits as long as it can, moves to the visit's start
(``operations.move``: the HWP spun down first when the elevation leaves its range), runs the ops before the
scan there (``operations.before_scan``: relock, boresight, detector setup, HWP spin-up, bias step), waits for
the scan's start and scans. Every span of that is judged by the same ``SunGuard`` (policies/basic/avoidance):
waits and ops with the sun policy's look-ahead, slews over the rectangle they sweep. When the direct way is
unsafe it tries leaving via another elevation, then parking somewhere safe for the wait. A scan the telescope
cannot be ready for on time starts late (its wait_until and block move, and the block's cuts say so); one
left under its kind's minimum, or that no route reaches safely, is dropped with the reason. A CMB scan just
before a calibration or wiregrid run ends early enough for that run's ops and slew (calibration beats CMB).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from scheduler_server.observing.policies.basic.avoidance import Box, SunGuard
from scheduler_server.observing.policies.sat import operations as operations_
from scheduler_server.observing.policies.sat.merge import CALIBRATION, MASTER, NOOBS, WIREGRID, Item, hhmm
from scheduler_server.observing.policies.sat.steps import Op, SatState, Visit
from scheduler_server.observing.telescope import TelescopeModel

MARGIN_SECONDS = 60  # slack left before a planned start, against small overruns
MIN_SCAN_SECONDS = 60
PARK_AZIMUTHS = tuple(range(0, 360, 45))
MAX_PARKINGS = 6
SCANNING = ("scan", "wiregrid")  # ops that last until the visit's stop time


class Infeasible(Exception):
    """A way of reaching a visit that does not work, and why."""


@dataclass(frozen=True)
class Route:
    pre: tuple[tuple[float, float], ...] = ()  # moves made at once (to a parking spot), before the wait
    post: tuple[tuple[float, float], ...] = ()  # moves after the wait, before the one to the visit
    note: str = ""


@dataclass
class Laid:
    item: Item
    visit: Visit  # as run: unwrapped azimuth, t0 = seq.scan's start
    cuts: tuple[str, ...]


@dataclass
class Timeline:
    timed: list[tuple[float, Op]] = field(default_factory=list)
    laid: list[Laid] = field(default_factory=list)
    dropped: list[tuple[Item, str]] = field(default_factory=list)
    state: SatState | None = None


@dataclass
class _Cursor:
    state: SatState
    where: Box  # what the telescope occupies at rest
    since: float  # since when it rests there
    timed: list[tuple[float, Op]] = field(default_factory=list)


class Planner:
    def __init__(
        self,
        guard: SunGuard,
        model: TelescopeModel,
        cfg: operations_.OpsConfig,
        park_elevations: tuple[float, ...],
        min_durations: dict[str, float],
        tolerance: float,
    ):
        self.guard, self.model, self.cfg = guard, model, cfg
        self.park_elevations = park_elevations
        self.min_durations = min_durations
        self.tolerance = tolerance

    def plan(self, items: list[Item], state: SatState) -> Timeline:
        out = Timeline()
        cur = _Cursor(state, _point(state.az, state.el), state.t)
        self._run(cur, operations_.start(state, self.cfg))
        for i, item in enumerate(items):
            nxt = items[i + 1] if i + 1 < len(items) else None
            try:
                done, laid = self._visit(cur, item)
                if nxt is not None and item.visit.kind == MASTER and nxt.visit.kind in (CALIBRATION, WIREGRID):
                    latest = nxt.visit.t0 - self._lead(done, self._unwrapped(nxt.visit, done.state.az)) - MARGIN_SECONDS
                    if laid.visit.t1 > latest:
                        why = f"ended early for {nxt.visit.kind} {nxt.visit.name} at {hhmm(nxt.visit.t0)}"
                        done, laid = self._visit(cur, item.trimmed(item.visit.t0, math.floor(latest), why))
            except Infeasible as exc:
                out.dropped.append((item, str(exc)))
                continue
            cur = done
            out.laid.append(laid)
        self._finish(cur)
        out.timed, out.state = cur.timed, cur.state
        return out

    # -- one visit ----------------------------------------------------------------------------------------

    def _visit(self, cur: _Cursor, item: Item) -> tuple[_Cursor, Laid]:
        visit = self._unwrapped(item.visit, cur.state.az)
        if visit.kind == NOOBS:
            visit = self._parked_visit(cur, visit)
        first: Infeasible | None = None
        for route in self._routes(cur, visit):
            try:
                return self._lay(cur, item, visit, route)
            except Infeasible as exc:
                first = first or exc
        raise first or Infeasible("no route")

    def _routes(self, cur: _Cursor, visit: Visit) -> Iterator[Route]:
        yield Route()
        here_az = cur.state.az
        for el in self.park_elevations:
            if el != visit.el:
                yield Route(post=((here_az, el), (visit.az, el)), note=f"slewed via elevation {el:g} (sun)")
        for spot in self._parkings(cur, visit.t0):
            yield Route(pre=(spot,), note=f"waited at az {spot[0]:g} el {spot[1]:g}, clear of the sun")

    def _lay(self, cur: _Cursor, item: Item, visit: Visit, route: Route) -> tuple[_Cursor, Laid]:
        c = _Cursor(cur.state, cur.where, cur.since, list(cur.timed))
        for az, el in route.pre:
            self._move(c, az, el)
        leave = visit.t0 - self._lead(c, visit, route.post) - MARGIN_SECONDS
        if not route.pre:
            self._hold(c.where, c.since, max(leave, c.state.t), "waiting")
        elif leave > c.state.t:
            self._hold(c.where, c.since, leave, "waiting")
        if leave > c.state.t + 1:
            self._run(c, operations_.wait(c.state, math.floor(leave), self.tolerance))
        for az, el in (*route.post, (visit.az, visit.el)):
            self._move(c, az, el)
        arrived = c.state.t
        self._run(c, operations_.before_scan(c.state, visit, self.cfg))
        start = max(visit.t0, math.ceil(c.state.t))
        least = max(MIN_SCAN_SECONDS, self.min_durations.get(visit.kind, 0.0))
        if visit.t1 - start < least:
            late = f"ready at {hhmm(start)}, " if start > visit.t0 else ""
            raise Infeasible(f"{late}{visit.t1 - start:g} s would be left, at least {least:g} s needed")
        self._hold(c.where, arrived, start, "getting ready")
        box = _sweep(visit, start)
        if not self.guard.safe(box, start, visit.t1):
            raise Infeasible(self._closest(box, start, visit.t1, "the scan"))
        if start > c.state.t + 1 or visit.kind != NOOBS:
            self._run(c, operations_.wait(c.state, start, self.tolerance))
        run = replace(visit, t0=start, az=visit.az + visit.az_drift * (start - visit.t0))
        self._run(c, operations_.scan(c.state, run, self.cfg), stop=visit.t1)
        c.where, c.since = _sweep(visit, start, end_only=True), c.state.t
        self._run(c, operations_.after_scan(c.state, run, self.cfg))
        cuts = item.cuts
        if start > visit.t0:
            cuts = (*cuts, f"started at {hhmm(start)} instead of {hhmm(visit.t0)}: the ops before it and the slew")
        if route.note:
            cuts = (*cuts, route.note)
        return c, Laid(item, run, cuts)

    def _lead(self, cur: _Cursor, visit: Visit, via: tuple[tuple[float, float], ...] = ()) -> float:
        """Seconds from leaving the rest position to being ready to scan ``visit`` (moves and ops), a dry run."""
        c = _Cursor(cur.state, cur.where, cur.since)
        for az, el in (*via, (visit.az, visit.el)):
            self._move(c, az, el, check=False)
        self._run(c, operations_.before_scan(c.state, visit, self.cfg))
        return c.state.t - cur.state.t

    # -- moves, holds, parking ----------------------------------------------------------------------------

    def _move(self, c: _Cursor, az: float, el: float, check: bool = True) -> None:
        duration = self.model.slew_seconds(c.where[:2], c.where[2], az, el)
        ops, state = operations_.move(c.state, az, el, self.cfg, duration=duration, force=True)
        t0 = state.t - duration  # after any HWP spin-down at the old place
        if check:
            self._hold(c.where, c.since, t0, "spinning the HWP down")
            area = (min(c.where[0], az), max(c.where[1], az), min(c.where[2], el), max(c.where[3], el))
            if not self.guard.safe(area, t0, state.t, look_ahead=False):
                raise Infeasible(self._closest(area, t0, state.t, f"the slew to az {az:g} el {el:g}", ahead=False))
        self._run(c, (ops, state))
        c.where, c.since = _point(az, el), c.state.t

    def _hold(self, where: Box, t_from: float, t_to: float, doing: str) -> None:
        if t_to > t_from and not self.guard.safe(where, t_from, t_to):
            raise Infeasible(self._closest(where, t_from, t_to, f"{doing} at az {where[0]:g} el {where[2]:g}"))

    def _parkings(self, cur: _Cursor, until: float) -> list[tuple[float, float]]:
        lo, hi = self.model.az_limits
        spots = []
        for el in self.park_elevations:
            for az in PARK_AZIMUTHS:
                near = min(
                    (a for a in (az - 360.0, az, az + 360.0) if lo <= a <= hi), key=lambda a: abs(a - cur.where[0])
                )
                spots.append((float(near), float(el)))
        spots.sort(key=lambda s: self.model.slew_seconds(cur.where[:2], cur.where[2], *s))
        safe = []
        for spot in spots:
            if len(safe) == MAX_PARKINGS:
                break
            if self.guard.safe(_point(*spot), cur.state.t, until):
                safe.append(spot)
        return safe

    def _parked_visit(self, cur: _Cursor, visit: Visit) -> Visit:
        """A no-observation block is spent at a parking spot clear of the sun for its whole length."""
        if self.guard.safe(_point(visit.az, visit.el), visit.t0, visit.t1):
            return visit
        for az, el in self._parkings(_Cursor(cur.state, cur.where, visit.t0), visit.t1):
            return replace(visit, az=az, el=el)
        return visit

    def _finish(self, c: _Cursor) -> None:
        """Wrap up; the telescope must be left somewhere that stays clear of the sun."""
        end = c.state.t + self.guard.lookahead
        stow = None
        if not self.guard.safe(c.where, c.since, end):
            spots = self._parkings(c, end)
            stow = spots[0] if spots else None
        ops, state = operations_.wrap_up(c.state, self.cfg)
        self._run(c, (ops, state))
        if stow is not None:
            self._move(c, *stow, check=False)

    def _unwrapped(self, visit: Visit, near: float) -> Visit:
        lo, hi = self.model.az_limits
        drift = visit.az_drift * (visit.t1 - visit.t0)
        low, high = min(0.0, drift), visit.throw + max(0.0, drift)
        base = visit.az % 360.0
        fits = [a for a in (base - 360.0, base, base + 360.0) if a + low >= lo and a + high <= hi]
        if not fits:
            raise Infeasible(f"its sweep az {visit.az:g}..{visit.az + high:g} does not fit in az {lo:g}..{hi:g}")
        return replace(visit, az=min(fits, key=lambda a: abs(a - near)))

    def _closest(self, box: Box, t_from: float, t_to: float, what: str, ahead: bool = True) -> str:
        distance, when = self.guard.closest(box, t_from, t_to + (self.guard.lookahead if ahead else 0.0))
        return f"{what} would come {distance:.1f} deg from the sun at {hhmm(when)} (limit {self.guard.min_angle:g} deg)"

    def _run(self, c: _Cursor, result: tuple[list[Op], SatState], stop: float | None = None) -> None:
        """Append ops at their times; an op that scans lasts until ``stop``."""
        ops, state = result
        clock = c.state.t
        for op in ops:
            if stop is not None and op.name in SCANNING:
                op = replace(op, duration=max(0.0, stop - clock))
            if op.name == "wait" and "until" in op.detail:
                op = replace(op, duration=max(0.0, float(op.detail["until"]) - clock))
            c.timed.append((clock, op))
            clock += op.duration
        c.state = state.at(t=max(clock, state.t) if stop is None else clock)


def _point(az: float, el: float) -> Box:
    return (az, az, el, el)


def _sweep(visit: Visit, start: float, end_only: bool = False) -> Box:
    drift = visit.az_drift * (visit.t1 - visit.t0)
    az0 = visit.az + visit.az_drift * (start - visit.t0)
    az1 = visit.az + drift
    lo = az1 if end_only else min(az0, az1)
    hi = az1 + visit.throw if end_only else max(az0, az1) + visit.throw
    return (lo, hi, visit.el - visit.el_amp, visit.el + visit.el_amp)
