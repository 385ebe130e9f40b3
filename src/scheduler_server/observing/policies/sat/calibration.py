"""Calibration scans of the sat policy: which crossing of its wafer set each target gets.

Each target names a source, a wafer set (``focalplane.resolve_wafers``: a focus of the platform's table at the
target's boresight, or wafers), an elevation and how to scan; ``crossings.py`` finds when and where the source
crosses the set. A plan row's own window (``target.t0``..``t1``) picks the crossings that overlap it (schedlib
looks anywhere in the schedule's window and takes the first free one; the row's window is what the plan
asked for); a row whose start is outside the schedule's window is not this schedule's (as schedlib). The
sun guard then removes a crossing that comes too near the sun, or, with ``allow_partial``, trims it to its
safe pieces of at least ``min_duration``. Targets are planned in order; each takes its earliest option that
overlaps no earlier target's scan (schedlib's rule). A target that gets nothing is returned in
``ScanPlan.dropped`` with why. A target without a boresight takes the nearest CMB block's (schedlib's).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scheduler_server.observing.policies.basic import blocks
from scheduler_server.observing.policies.basic.avoidance import SunGuard
from scheduler_server.observing.policies.sat import focalplane, sources
from scheduler_server.observing.policies.sat.crossings import Crossing, crossings, source_track, stretches
from scheduler_server.observing.policies.sat.targets import CalTarget, CmbBlock, SourceScan
from scheduler_server.observing.sky.site import Site
from scheduler_server.observing.types import ScheduleInputError

OVERLAPS = "every crossing overlaps an earlier target's scan"
SUN_CHUNK = 300.0  # s: a drifting scan is judged in pieces, each by the box its sweep covers in that time


@dataclass(frozen=True)
class Dropped:
    """A target that got no scan, and why (for the policy's cuts)."""

    target: CalTarget
    reason: str

    @property
    def origin(self) -> str:
        return self.target.origin


class ScanPlan(list):
    """The planned ``SourceScan``s sorted by start (a list), with ``dropped``: the targets that got none."""

    def __init__(self, scans: Iterable[SourceScan] = (), dropped: Iterable[Dropped] = ()):
        super().__init__(scans)
        self.dropped: list[Dropped] = list(dropped)


def plan_calibration(
    targets: Sequence[CalTarget],
    cmb: Sequence[CmbBlock],
    site: Site,
    t0: float,
    t1: float,
    *,
    platform: str,
    xi_offset: float = 0.0,
    eta_offset: float = 0.0,
    sun_guard: SunGuard | None = None,
    min_duration: float = 600.0,
    ignore_wafers: Iterable[str] = (),
    wafer_sets: Mapping[str, str] | None = None,
    az_speed: float = 0.5,
    az_accel: float = 1.0,
    az_limits: tuple[float, float] | None = None,
    allow_partial_override: bool = False,
) -> ScanPlan:
    """The calibration scans of ``targets`` in [t0, t1], and the targets dropped with their reasons.

    ``cmb`` gives a target without a boresight the nearest CMB block's (the last starting before the target's
    row, else the first after; 0 without any). ``az_speed``/``az_accel`` are the policy's, for targets without
    their own (the sweep's turnarounds count in the sun test). ``az_limits`` (the platform's unwrapped az range)
    moves a sweep by whole turns into it, or drops it. ``allow_partial_override``: a plan row that gets no
    crossing (for any reason but overlapping earlier scans) is tried again with allow_partial. An unknown
    source or wafer is a ScheduleInputError naming ``target.origin`` (a plan's ``"<name>:<line>"``, or a
    config's ``cal_targets.<i>`` with ``.source`` or ``.array_query``); an unknown platform names ``platform``.
    """
    offsets = (float(xi_offset), float(eta_offset))
    limits = (site, t0, t1, platform, offsets, sun_guard, float(min_duration), tuple(ignore_wafers), wafer_sets)
    setting = _Setting(*limits, az_speed, az_accel, az_limits)
    cache: dict[tuple, object] = {}  # tracks, their stretches and crossings, shared by the targets of one call
    planned: list[SourceScan] = []
    dropped: list[Dropped] = []
    for target in targets:
        if target.t0 is not None and not t0 <= target.t0 < t1:
            continue
        outcome = _plan_target(target, cmb, setting, cache, planned)
        if isinstance(outcome, str) and outcome != OVERLAPS and allow_partial_override and _retry(target):
            outcome = _plan_target(dataclasses.replace(target, allow_partial=True), cmb, setting, cache, planned)
        if isinstance(outcome, str):
            dropped.append(Dropped(target, outcome))
        else:
            planned.append(outcome)
    return ScanPlan(sorted(planned, key=lambda s: s.t0), dropped)


@dataclass(frozen=True)
class _Setting:
    site: Site
    t0: float
    t1: float
    platform: str
    offsets: tuple[float, float]
    sun_guard: SunGuard | None
    min_duration: float
    ignore_wafers: tuple[str, ...]
    wafer_sets: Mapping[str, str] | None
    az_speed: float
    az_accel: float
    az_limits: tuple[float, float] | None


def _plan_target(target: CalTarget, cmb, setting: _Setting, cache: dict, planned: list) -> SourceScan | str:
    """The target's scan, or why it has none."""
    name = _source_name(target)
    when = target.t0 if target.t0 is not None else setting.t0
    boresight = target.boresight if target.boresight is not None else nearest_boresight(cmb, when)
    wafers = focalplane.resolve_wafers(
        target.array_query,
        platform=setting.platform,
        boresight=boresight,
        field=_field(target, "array_query"),
        ignore_wafers=setting.ignore_wafers,
        wafer_sets=setting.wafer_sets,
    )
    if not wafers:
        return f"every wafer of {target.array_query!r} is ignored"
    source = (name, target.ra, target.dec)
    if source not in cache:
        track = source_track(name, setting.site, setting.t0, setting.t1, target.ra, target.dec)
        cache[source] = (track, stretches(track[2]))
    track, runs = cache[source]
    shape = (float(boresight), float(target.el_bore), *setting.offsets)
    memo = cache.setdefault((*source, wafers, *shape, bool(target.drift), bool(target.allow_partial)), {})
    speed = target.az_speed if target.az_speed is not None else setting.az_speed
    accel = target.az_accel if target.az_accel is not None else setting.az_accel
    turn = speed**2 / accel  # a sweep's turnarounds overshoot each end by this much
    limits = setting.az_limits and (setting.az_limits[0] + turn, setting.az_limits[1] - turn)
    tally = {"found": 0, "in_row": 0, "in_range": 0}
    options = _candidates(target, track, runs, focalplane.outline(wafers, *shape), memo, limits, tally)
    best, why = _first_free(options, target, setting, turn, planned)
    if best is None:
        return _no_candidate(target, wafers, tally, setting.az_limits) or why
    return _scan(target, name, best, wafers, boresight, speed, accel)


def _first_free(options, target, setting: _Setting, turn: float, planned) -> tuple[Crossing | None, str]:
    """The earliest option (or sun-safe piece of one) long enough and overlapping no planned scan; else why not.

    Options are judged by the sun one at a time, earliest first, only as far as needed."""
    shortest = setting.min_duration
    why = f"no crossing lasts the minimum {shortest:g} s"
    for c in options:
        if c.t1 - c.t0 < shortest:
            continue
        if any(c.t0 < s.t1 and s.t0 < c.t1 for s in planned):
            why = OVERLAPS
            continue
        pieces = [c] if setting.sun_guard is None else _sun_safe(c, target, setting.sun_guard, turn, shortest)
        free = [p for p in pieces if not any(p.t0 < s.t1 and s.t0 < p.t1 for s in planned)]
        if free:
            return free[0], ""
        why = "every crossing comes too near the sun" if not pieces else why
    return None, why


def nearest_boresight(cmb: Sequence[CmbBlock], when: float) -> float:
    """The boresight of the last CMB block starting before ``when``, else of the first after; 0 without any."""
    scans = [b for b in cmb if b.subtype == "cmb"]
    before = [b for b in scans if b.t0 < when]
    if before:
        return max(before, key=lambda b: b.t0).boresight
    after = [b for b in scans if b.t0 > when]
    return min(after, key=lambda b: b.t0).boresight if after else 0.0


def _candidates(target, track, runs, outline, memo, az_limits, tally) -> Iterator[Crossing]:
    """The target's crossings in time order, within its plan row's window and the az range; ``tally`` counts
    how many got past each test, for the reason when none is taken."""
    row = _row(target)
    found = crossings(
        track,
        outline,
        drift=target.drift,
        allow_partial=target.allow_partial,
        direction=target.source_direction,
        az_branch=target.az_branch,
        span=row,
        runs=runs,
        memo=memo,
    )
    for c in found:
        tally["found"] += 1
        if row is not None and not (c.t0 < row[1] and row[0] < c.t1):
            continue
        tally["in_row"] += 1
        c = c if az_limits is None else _into_range(c, az_limits)
        if c is not None:
            tally["in_range"] += 1
            yield c


def _no_candidate(target, wafers, tally, az_limits) -> str:
    way = f"{target.source_direction} " if target.source_direction else ""
    if not tally["found"]:
        whole = "" if target.allow_partial else "whole "
        where = "the plan row's window" if _row(target) else "the window"
        return f"no {whole}{way}crossing of {','.join(wafers)} at el {target.el_bore:g} in {where}"
    if not tally["in_row"]:
        return f"no {way}crossing in the plan row's window"
    if not tally["in_range"]:
        return f"the sweep leaves the az range {az_limits[0]:g}..{az_limits[1]:g}"
    return ""


def _retry(target: CalTarget) -> bool:
    """schedlib retries only a plan's rows (``from_table``) with allow_partial; a row has a window."""
    return not target.allow_partial and target.t0 is not None


def _row(target: CalTarget) -> tuple[float, float] | None:
    return (target.t0, target.t1) if target.t0 is not None and target.t1 is not None else None


def _into_range(c: Crossing, limits: tuple[float, float]) -> Crossing | None:
    travel = c.drift * (c.t1 - c.t0)
    lo, hi = c.az + min(0.0, travel), c.az + c.throw + max(0.0, travel)
    for turns in (0, -1, 1, -2, 2):
        if limits[0] <= lo + 360.0 * turns and hi + 360.0 * turns <= limits[1]:
            return dataclasses.replace(c, az=c.az + 360.0 * turns)
    return None


def _sun_safe(c: Crossing, target, guard: SunGuard, turn: float, min_duration: float) -> list[Crossing]:
    """The crossing if the sun keeps clear of its sweep; with allow_partial its safe pieces (of min_duration)."""
    # The whole sweep's box first (most scans are at night, settled at once), then piece by piece.
    unsafe = guard.unsafe(_box(c, c.t0, c.t1, turn, target.el_bore), c.t0, c.t1)
    if len(unsafe):
        unsafe = blocks.union(np.concatenate([guard.unsafe(box, a, b) for a, b, box in _boxes(c, turn, target)]))
    if len(unsafe) == 0:
        return [c]
    if not target.allow_partial:
        return []
    pieces = blocks.subtract(math.ceil(c.t0), math.floor(c.t1), unsafe)
    return [c.piece(float(a), float(b)) for a, b in pieces if b - a >= min_duration]


def _boxes(c: Crossing, turn: float, target: CalTarget):
    edges = np.append(np.arange(c.t0, c.t1, SUN_CHUNK), c.t1)
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        yield a, b, _box(c, a, b, turn, target.el_bore)


def _box(c: Crossing, a: float, b: float, turn: float, el: float):
    """What the sweep covers from a to b, turnarounds (az_speed^2 / az_accel each side) included."""
    lo, hi = sorted((c.az_at(a), c.az_at(b)))
    return (lo - turn, hi + c.throw + turn, float(el), float(el))


def _scan(target, name, c: Crossing, wafers, boresight, speed, accel) -> SourceScan:
    start, stop = float(round(c.t0)), float(round(c.t1))
    query = ",".join(wafers)
    base = f"{name},{c.direction}"
    parts = [base, target.tag] if query in target.tag else [base, query, target.tag]
    return SourceScan(
        source=name,
        t0=start,
        t1=stop,
        az=c.az_at(start),
        throw=c.throw,
        el=float(target.el_bore),
        boresight=float(boresight),
        az_drift=c.drift,
        az_speed=speed,
        az_accel=accel,
        array_query=query,
        tag=",".join(p for p in parts if p),
        partial=c.partial,
        origin=target.origin,
        direction=c.direction,
    )


def _source_name(target: CalTarget) -> str:
    name = (target.source or "").strip().lower()
    if not sources.is_known(name, target.ra, target.dec):
        problem = f"unknown calibration source {target.source!r}; known: {', '.join(sources.KNOWN)} (or give ra/dec)"
        raise ScheduleInputError(_field(target, "source"), problem)
    return name


def _field(target: CalTarget, key: str) -> str:
    """A plan row is named by its ``"<name>:<line>"``; a config target by its dotted key."""
    origin = target.origin or "cal_targets"
    return origin if ":" in origin else f"{origin}.{key}"
