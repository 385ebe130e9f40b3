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

``basic``'s ``SlewPlanner`` is not reused: it times basic's fixed setup (a bias step, ``bias_dets``) around a
scan, while here the time before a scan is whatever the ops say for the state at that moment (a relock, a
boresight turn with the HWP spun down, a detector setup, a spin-up), and a move can itself spin the HWP down.
The sun test (``SunGuard``) and the slew timing (``TelescopeModel.slew_seconds``) are the same code as basic's.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

from scheduler_server.observing.policies.basic.avoidance import Box, SunGuard
from scheduler_server.observing.policies.sat import operations as operations_
from scheduler_server.observing.policies.sat.merge import CALIBRATION, MASTER, NOOBS, WIREGRID, Item, hhmm
from scheduler_server.observing.policies.sat.steps import Op, SatState, Visit
from scheduler_server.observing.telescope import TelescopeModel

log = logging.getLogger(__name__)
MARGIN_SECONDS = 60  # slack left before a planned start, against small overruns
MIN_SCAN_SECONDS = 60
PARK_AZIMUTHS = tuple(range(0, 360, 45))
MAX_HOPS = 24  # parking moves in one gap at most
SCANNING = ("scan", "wiregrid")  # ops that last until the visit's stop time


class Infeasible(Exception):
    """A way of reaching a visit that does not work, and why: ``where`` says which part failed ("here": the
    wait where the telescope rests, "slew", or anything else, which no other route can mend); the reason's
    text is worked out only if it is reported (``why`` may be a function of nothing)."""

    def __init__(self, why, where: str = ""):
        super().__init__()
        self.why, self.where = why, where

    def __str__(self) -> str:
        return self.why() if callable(self.why) else str(self.why)


@dataclass(frozen=True)
class Route:
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
    note: str = ""  # how it got here, when that is worth a block's cuts (parking)


class Planner:
    def __init__(
        self,
        guard: SunGuard,
        model: TelescopeModel,
        cfg: operations_.OpsConfig,
        park_elevations: tuple[float, ...],
        min_durations: dict[str, float],
        tolerance: float,
        stow: tuple[float, float] | None = None,
    ):
        self.guard, self.model, self.cfg = guard, model, cfg
        in_range = tuple(e for e in park_elevations if cfg.disable_hwp or cfg.min_hwp_el <= e <= cfg.max_hwp_el)
        self.detour_elevations = in_range  # a detour never spins the HWP down
        self.park_elevations = in_range + tuple(e for e in park_elevations if e not in in_range)
        self.min_durations = min_durations
        self.tolerance = tolerance
        self.stow = stow

    def plan(self, items: list[Item], state: SatState, end: float) -> Timeline:
        out = Timeline()
        cur = _Cursor(state, _point(state.az, state.el), state.t)
        opening = operations_.start(state, self.cfg)
        if self._first_unsafe(cur.where, state.t, opening[1].t + MARGIN_SECONDS) is not None:
            self._bridge(cur, opening[1].t + MARGIN_SECONDS)  # it starts too near the sun: away first
            opening = operations_.start(cur.state, self.cfg)
        self._run(cur, opening)
        for i, item in enumerate(items):
            nxt = items[i + 1] if i + 1 < len(items) else None
            try:
                visit = self._unwrapped(item.visit, cur.state.az)
                if visit.kind == NOOBS:
                    visit = self._parked_visit(cur, visit)
                cur = self._bridged(cur, visit)  # parking is kept even if the visit is then dropped
                done, laid = self._visit(cur, item, visit)
                latest = self._latest_end(done, item, nxt)
                if latest is not None and laid.visit.t1 > latest:
                    why = f"ended early for {nxt.visit.kind} {nxt.visit.name} at {hhmm(nxt.visit.t0)}"
                    item = item.trimmed(item.visit.t0, math.floor(latest), why)
                    done, laid = self._visit(cur, item, replace(visit, t1=item.visit.t1))
            except Infeasible as exc:
                out.dropped.append((item, str(exc)))
                continue
            cur = done
            out.laid.append(laid)
        self._finish(cur, end)
        out.timed, out.state = cur.timed, cur.state
        return out

    def _latest_end(self, done: _Cursor, item: Item, nxt: Item | None) -> float | None:
        """When a CMB scan must end for the calibration or wiregrid run after it to be ready on time."""
        if nxt is None or item.visit.kind != MASTER or nxt.visit.kind not in (CALIBRATION, WIREGRID):
            return None
        try:
            after = self._unwrapped(nxt.visit, done.state.az)
        except Infeasible:
            return None  # it cannot be scanned at all: nothing to make room for
        return nxt.visit.t0 - self._lead(done, after) - MARGIN_SECONDS

    # -- one visit ----------------------------------------------------------------------------------------

    def _visit(self, cur: _Cursor, item: Item, visit: Visit) -> tuple[_Cursor, Laid]:
        """Direct, or for a slew that would pass the sun, via another elevation."""
        try:
            return self._lay(cur, item, visit, Route(note=cur.note))
        except Infeasible as exc:
            if exc.where != "slew":
                raise
            first = exc
        detours = self.detour_elevations if cur.state.hwp_spinning else self.park_elevations
        for el in dict.fromkeys((cur.where[2], *detours)):
            if el != visit.el:
                note = ", ".join(n for n in (cur.note, f"slewed via elevation {el:g} (sun)") if n)
                try:
                    return self._lay(cur, item, visit, Route(((cur.where[0], el), (visit.az, el)), note))
                except Infeasible:
                    continue
        raise first

    def _bridged(self, cur: _Cursor, visit: Visit) -> _Cursor:
        """The cursor kept clear of the sun until it must leave for ``visit`` (parked when the wait is not)."""
        if self.guard.safe(cur.where, cur.state.t, visit.t0):  # safe until the visit starts: no need to know more
            return _Cursor(cur.state, cur.where, cur.since, cur.timed)
        until = visit.t0 - self._lead(cur, visit) - MARGIN_SECONDS
        if self._first_unsafe(cur.where, cur.state.t, until) is None:
            return _Cursor(cur.state, cur.where, cur.since, cur.timed)
        c = _Cursor(cur.state, cur.where, cur.since, list(cur.timed))
        spots = self._bridge(c, until, (visit.az, visit.el))
        if spots:
            c.note = "waited clear of the sun at " + ", ".join(f"az {az:g} el {el:g}" for az, el in spots)
        return c

    def _bridge(self, c: _Cursor, until: float, target: tuple[float, float] | None = None) -> list[tuple[float, float]]:
        """Keep clear of the sun until ``until``: wait while it is safe, then move to the spot that stays safe
        longest (from which the slew on to ``target`` is clear then, when one is given), as often as needed.
        Returns the spots used (none: nothing was needed, or nothing helps)."""
        used: list[tuple[float, float]] = []
        for _ in range(MAX_HOPS):
            bad = self._first_unsafe(c.where, c.state.t, until)
            if bad is None:
                return used
            best = self._best_spot(c, bad, until, target)
            if best is None or (best[0][1] <= bad + MARGIN_SECONDS and best[0][1] != math.inf):
                return used  # no spot gains time
            _, spot, depart = best
            if depart > c.state.t + 1:
                self._run(c, operations_.wait(c.state, math.floor(depart), self.tolerance))
            self._move(c, *spot, check=False)
            used.append(spot)
        return used

    def _best_spot(self, c: _Cursor, bad: float, until: float, target: tuple[float, float] | None):
        """((exit clear, safe until), spot, departure) of the best spot to go to before ``bad``, or None."""
        best = None
        # already too near the sun (a starting state can be): any way out is better than staying
        escaping = not self.guard.safe(c.where, c.state.t, c.state.t, look_ahead=False)
        for spot in self._spots(c.where):
            slew = self.model.slew_seconds(c.where[:2], c.where[2], *spot)
            if c.state.hwp_spinning and not self.cfg.min_hwp_el <= spot[1] <= self.cfg.max_hwp_el:
                slew += self.cfg.hwp_spin_down  # spun down where it is, before it goes
            depart = max(c.state.t, bad - slew - MARGIN_SECONDS)
            if not escaping and not self.guard.safe(_hull(c.where, spot), depart, depart + slew, look_ahead=False):
                continue
            horizon = self._first_unsafe(_point(*spot), depart + slew, until)
            exit_clear = target is None or self.guard.safe(
                _hull(_point(*spot), target), until, until + self.model.slew_seconds(spot, spot[1], *target), False
            )
            score = (exit_clear, math.inf if horizon is None else horizon)
            if best is None or score > best[0]:
                best = (score, spot, depart)
            if score == (True, math.inf):
                break
        return best

    def _first_unsafe(self, box: Box, t_from: float, t_to: float) -> float | None:
        if t_to <= t_from or self.guard.safe(box, t_from, t_to):
            return None
        found = self.guard.unsafe(box, t_from, t_to)
        return float(found[0][0]) if len(found) else None

    def _spots(self, where: Box) -> list[tuple[float, float]]:
        lo, hi = self.model.az_limits
        spots = []
        for el in self.park_elevations:
            for az in PARK_AZIMUTHS:
                near = min((a for a in (az - 360.0, az, az + 360.0) if lo <= a <= hi), key=lambda a: abs(a - where[0]))
                spots.append((float(near), float(el)))
        rank = {el: i for i, el in enumerate(self.park_elevations)}
        low = len(self.detour_elevations)
        spots.sort(key=lambda s: (rank[s[1]] >= low, self.model.slew_seconds(where[:2], where[2], *s)))
        return spots

    def _lay(self, cur: _Cursor, item: Item, visit: Visit, route: Route) -> tuple[_Cursor, Laid]:
        c = _Cursor(cur.state, cur.where, cur.since, list(cur.timed))
        leave = visit.t0 - self._lead(c, visit, route.post) - MARGIN_SECONDS
        self._hold(c.where, c.since, max(leave, c.state.t), "waiting", "here")
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
            raise Infeasible(f"{late}{visit.t1 - start:g} s would be left, at least {least:g} s needed", "short")
        self._hold(c.where, arrived, start, "getting ready", "target")
        box = _sweep(visit, start)
        if not self.guard.safe(box, start, visit.t1):
            raise Infeasible(self._closest(box, start, visit.t1, "the scan"), "scan")
        if visit.kind != NOOBS:  # seq.scan starts at the block's start, never before (its wait_until)
            self._run(c, operations_.wait(c.state, start, self.tolerance))
        run = replace(visit, t0=start, az=visit.az + visit.az_drift * (start - visit.t0))
        scanned = operations_.scan(c.state, run, self.cfg)
        for op in scanned[0]:
            if op.name == "skip":
                raise Infeasible(f"it would not run: {op.detail.get('why', '')}", "skip")
        self._run(c, scanned, stop=visit.t1)
        # where it rests: anywhere in the swept box (the ACU stops where its triangle has got to; the checker
        # assumes the whole box, and so does the planner, so the two agree on what the sun may see next)
        c.where, c.since = box, c.state.t
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
            self._hold(c.where, c.since, t0, "spinning the HWP down", "here")
            area = _hull(c.where, (az, el))
            if not self.guard.safe(area, t0, state.t, look_ahead=False):
                what = f"the slew to az {az:g} el {el:g}"
                raise Infeasible(self._closest(area, t0, state.t, what, ahead=False), "slew")
        self._run(c, (ops, state))
        c.where, c.since = _point(az, el), c.state.t

    def _hold(self, where: Box, t_from: float, t_to: float, doing: str, part: str) -> None:
        if t_to > t_from and not self.guard.safe(where, t_from, t_to):
            raise Infeasible(self._closest(where, t_from, t_to, f"{doing} at az {where[0]:g} el {where[2]:g}"), part)

    def _parked_visit(self, cur: _Cursor, visit: Visit) -> Visit:
        """A no-observation block is spent at a parking spot clear of the sun for its whole length."""
        if self.guard.safe(_point(visit.az, visit.el), visit.t0, visit.t1):
            return visit
        for az, el in self._spots(cur.where):
            if self.guard.safe(_point(az, el), visit.t0, visit.t1):
                return replace(visit, az=az, el=el)
        return visit

    def _finish(self, c: _Cursor, end: float) -> None:
        """Wrap up, and keep clear of the sun until the window's end (parking, hopping if need be)."""
        self._run(c, operations_.wrap_up(c.state, self.cfg))
        if self.stow is not None:  # schedlib's stow_position, when the move there and the stay are clear of the sun
            moved = _Cursor(c.state, c.where, c.since, list(c.timed))
            try:
                self._move(moved, *self.stow)
                self._hold(moved.where, moved.since, max(end, moved.state.t), "stowed", "stow")
                c.state, c.where, c.since, c.timed = moved.state, moved.where, moved.since, moved.timed
            except Infeasible as exc:
                log.info("not stowed at az %g el %g: %s", *self.stow, exc)
        self._bridge(c, max(end, c.state.t))

    def _unwrapped(self, visit: Visit, near: float) -> Visit:
        lo, hi = self.model.az_limits
        drift = visit.az_drift * (visit.t1 - visit.t0)
        low, high = min(0.0, drift), visit.throw + max(0.0, drift)
        base = visit.az % 360.0
        fits = [a for a in (base - 360.0, base, base + 360.0) if a + low >= lo and a + high <= hi]
        if not fits:
            raise Infeasible(f"its sweep az {visit.az:g}..{visit.az + high:g} does not fit in az {lo:g}..{hi:g}", "az")
        return replace(visit, az=min(fits, key=lambda a: abs(a - near)))

    def _closest(self, box: Box, t_from: float, t_to: float, what: str, ahead: bool = True):
        """The reason a span is unsafe, as a function: it is worked out only when reported."""

        def why() -> str:
            distance, when = self.guard.closest(box, t_from, t_to + (self.guard.lookahead if ahead else 0.0))
            limit = self.guard.min_angle
            return f"{what} would come {distance:.1f} deg from the sun at {hhmm(when)} (limit {limit:g} deg)"

        return why

    def _run(self, c: _Cursor, result: tuple[list[Op], SatState], stop: float | None = None) -> None:
        """Append ops at their times; an op that scans lasts until ``stop``."""
        ops, state = result
        clock = c.state.t
        for op in ops:
            if stop is not None and op.name in SCANNING and op.duration != max(0.0, stop - clock):
                op = replace(op, duration=max(0.0, stop - clock))
            if op.name == "wait" and "until" in op.detail:
                op = replace(op, duration=max(0.0, float(op.detail["until"]) - clock))
            c.timed.append((clock, op))
            clock += op.duration
        c.state = state.at(t=max(clock, state.t) if stop is None else clock)


def _hull(box: Box, spot: tuple[float, float]) -> Box:
    return (min(box[0], spot[0]), max(box[1], spot[0]), min(box[2], spot[1]), max(box[3], spot[1]))


def _point(az: float, el: float) -> Box:
    return (az, az, el, el)


def _sweep(visit: Visit, start: float) -> Box:
    """The az/el box a scan from ``start`` to the visit's end sweeps, its drift included."""
    az0 = visit.az + visit.az_drift * (start - visit.t0)
    az1 = visit.az + visit.az_drift * (visit.t1 - visit.t0)
    return (min(az0, az1), max(az0, az1) + visit.throw, visit.el - visit.el_amp, visit.el + visit.el_amp)
