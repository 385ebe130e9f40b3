"""Calibration scans of the sat policy: when and where a source drifts through a wafer set.

The telescope holds its boresight at the target's elevation ``el_bore`` and sweeps azimuth while the source
rises (or sets) through the footprint of the chosen wafers (``focalplane.outline``). For each outline point,
at azimuth offset a and elevation e from the boresight, the source passes elevation e at one time t_e and
azimuth A(t_e): the boresight must then be at azimuth A(t_e) - a. The scan starts when the source reaches
the footprint's first edge and stops at the other; its sweep az0 + v (t - t0) .. az0 + throw + v (t - t0)
must hold every such azimuth. With drift (schedlib's default) v is the az_drift that makes the throw
smallest, found exactly (the throw is convex in v); without, v = 0. This is schedlib's ``make_source_ces``
without its optimisers: the boresight azimuth the centre needs drops out of the answer entirely.

A crossing is a rising or setting stretch of the source (above the horizon, as schedlib's source blocks)
within the schedule's window. A crossing the source does not make whole (cut by the window, or the source
never climbing the footprint's height) is kept only with ``allow_partial``, trimmed to what is covered.
A plan row's own window (``target.t0``..``t1``) picks the crossings that overlap it; a row whose start is
outside the schedule's window is not this schedule's (as schedlib). The sun guard then removes a crossing
that comes too near the sun, or, with ``allow_partial``, trims it to its safe pieces of at least
``min_duration``. Targets are planned in order; each takes its earliest option that overlaps no earlier
target's scan (schedlib's rule). A target that gets nothing is returned in ``ScanPlan.dropped`` with why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scheduler_server.observing.policies.basic import blocks
from scheduler_server.observing.policies.basic.avoidance import SunGuard
from scheduler_server.observing.policies.sat import focalplane, sources
from scheduler_server.observing.policies.sat.targets import CalTarget, CmbBlock, SourceScan
from scheduler_server.observing.sky.site import Site
from scheduler_server.observing.types import ScheduleInputError

TRACK_STEP = 60.0  # s: a source's elevation curves so little that linear interpolation errs by < 0.001 deg
SUN_CHUNK = 300.0  # s: a drifting scan is judged in pieces, each by the box its sweep covers in that time
_DRIFT_GRID = 33
_DRIFT_ROUNDS = 6


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


@dataclass(frozen=True)
class Crossing:
    """One way to scan a target: a sweep from t0 to t1 (``az`` is its az_min at t0)."""

    t0: float
    t1: float
    az: float
    throw: float
    drift: float
    direction: str  # "rising" | "setting"
    partial: bool

    def az_at(self, t: float) -> float:
        return self.az + self.drift * (t - self.t0)

    def piece(self, t0: float, t1: float) -> Crossing:
        return dataclasses.replace(self, t0=t0, t1=t1, az=self.az_at(t0), partial=True)


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
) -> ScanPlan:
    """The calibration scans of ``targets`` in [t0, t1], and the targets dropped with their reasons.

    ``cmb`` gives a target without a boresight the nearest CMB block's (the last starting before the target's
    row, else the first after; 0 without any). ``az_speed``/``az_accel`` are the policy's, for targets without
    their own (the sweep's turnarounds count in the sun test). ``az_limits`` (the platform's unwrapped az range)
    moves a sweep by whole turns into it, or drops it. An unknown source or wafer is a ScheduleInputError
    naming ``target.origin`` (a plan's ``"<name>:<line>"``, or a config's ``cal_targets[i]`` + ``.source``).
    """
    offsets = (float(xi_offset), float(eta_offset))
    limits = (site, t0, t1, platform, offsets, sun_guard, float(min_duration), tuple(ignore_wafers), wafer_sets)
    setting = _Setting(*limits, az_speed, az_accel, az_limits)
    tracks: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    planned: list[SourceScan] = []
    dropped: list[Dropped] = []
    for target in targets:
        if target.t0 is not None and not t0 <= target.t0 < t1:
            continue
        outcome = _plan_target(target, cmb, setting, tracks, planned)
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


def _plan_target(target: CalTarget, cmb, setting: _Setting, tracks: dict, planned: list) -> SourceScan | str:
    """The target's scan, or why it has none."""
    name = _source_name(target)
    boresight = target.boresight if target.boresight is not None else nearest_boresight(cmb, target.t0 or setting.t0)
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
    key = (name, target.ra, target.dec)
    if key not in tracks:
        tracks[key] = _track(name, setting.site, setting.t0, setting.t1, target.ra, target.dec)
    speed = target.az_speed if target.az_speed is not None else setting.az_speed
    accel = target.az_accel if target.az_accel is not None else setting.az_accel
    options, reason = _options(target, tracks[key], wafers, boresight, setting.offsets, setting.az_limits)
    if options and setting.sun_guard is not None:
        options = _sun_safe(options, target, setting.sun_guard, speed**2 / accel, setting.min_duration)
        reason = reason if options else "every crossing comes too near the sun"
    options = [c for c in options if c.t1 - c.t0 >= setting.min_duration]
    if not options:
        return reason or f"no crossing lasts the minimum {setting.min_duration:g} s"
    free = [c for c in options if not any(c.t0 < s.t1 and s.t0 < c.t1 for s in planned)]
    if not free:
        return "every crossing overlaps an earlier target's scan"
    return _scan(target, name, min(free, key=lambda c: c.t0), wafers, boresight, speed, accel)


def nearest_boresight(cmb: Sequence[CmbBlock], when: float) -> float:
    """The boresight of the last CMB block starting before ``when``, else of the first after; 0 without any."""
    scans = [b for b in cmb if b.subtype == "cmb"]
    before = [b for b in scans if b.t0 < when]
    if before:
        return max(before, key=lambda b: b.t0).boresight
    after = [b for b in scans if b.t0 > when]
    return min(after, key=lambda b: b.t0).boresight if after else 0.0


def crossings(
    track: tuple[np.ndarray, np.ndarray, np.ndarray],
    outline: tuple[np.ndarray, np.ndarray],
    *,
    drift: bool = True,
    allow_partial: bool = False,
    direction: str | None = None,
    az_branch: float | None = None,
) -> list[Crossing]:
    """Every crossing of the outline (``focalplane.outline``) by a source on ``track`` (t, az unwrapped, el)."""
    t, az, el = track
    found = []
    for a, b, mode in _runs(el):
        if direction is not None and mode != direction:
            continue
        crossing = _crossing(t[a : b + 1], az[a : b + 1], el[a : b + 1], mode, outline, drift, allow_partial)
        if crossing is not None:
            branch = 180.0 if az_branch is None else float(az_branch)
            shift = (crossing.az - (branch - 180.0)) % 360.0 + (branch - 180.0) - crossing.az
            found.append(dataclasses.replace(crossing, az=crossing.az + shift))
    return found


def best_drift(x: np.ndarray, y: np.ndarray) -> float:
    """The v minimising max(y - v x) - min(y - v x): a convex function, so a refined grid finds its minimum."""
    span = float(np.ptp(x)) if len(x) else 0.0
    if span <= 0.0:
        return 0.0
    reach = 2.0 * float(np.ptp(y)) / span + 1e-12  # beyond this the width exceeds the width at v = 0
    lo, hi, best = -reach, reach, 0.0
    for _ in range(_DRIFT_ROUNDS):
        v = np.linspace(lo, hi, _DRIFT_GRID)
        width = np.ptp(y[None, :] - v[:, None] * x[None, :], axis=1)
        k = int(np.argmin(width))
        best, step = float(v[k]), (hi - lo) / (_DRIFT_GRID - 1)
        lo, hi = best - step, best + step
    return best


def _crossing(t, az, el, mode, outline, drift, allow_partial) -> Crossing | None:
    off_az, off_el = outline
    e_lo, e_hi = float(off_el.min()), float(off_el.max())
    s_lo, s_hi = float(el.min()), float(el.max())
    whole = s_lo <= e_lo and e_hi <= s_hi
    if not whole and not allow_partial:
        return None
    inside = (off_el >= s_lo) & (off_el <= s_hi)
    if inside.sum() < 2:
        return None
    order = slice(None) if mode == "rising" else slice(None, None, -1)  # np.interp wants el increasing
    el_up, t_up, az_up = el[order], t[order], az[order]
    t_pt = np.interp(off_el[inside], el_up, t_up)
    y = np.interp(off_el[inside], el_up, az_up) - off_az[inside]
    ends = np.interp([max(e_lo, s_lo), min(e_hi, s_hi)], el_up, t_up)
    start, stop = float(ends.min()), float(ends.max())
    x = t_pt - start
    v = best_drift(x, y) if drift else 0.0
    z = y - v * x
    return Crossing(start, stop, float(z.min()), float(np.ptp(z)), v, mode, not whole)


def _runs(el: np.ndarray) -> list[tuple[int, int, str]]:
    """Stretches (first, last sample) where the source is above the horizon and rising, or setting."""
    if len(el) < 2:
        return []
    step = np.diff(el)
    label = np.where((el[:-1] > 0) & (el[1:] > 0), np.sign(step), 0).astype(np.int8)
    edges = np.flatnonzero(np.diff(label)) + 1
    starts, stops = np.concatenate(([0], edges)), np.concatenate((edges, [len(label)]))
    return [(int(a), int(b), "rising" if label[a] > 0 else "setting") for a, b in zip(starts, stops) if label[a] != 0]


def _options(target, track, wafers, boresight, offsets, az_limits) -> tuple[list[Crossing], str]:
    outline = focalplane.outline(wafers, float(boresight), float(target.el_bore), *map(float, offsets))
    found = crossings(
        track,
        outline,
        drift=target.drift,
        allow_partial=target.allow_partial,
        direction=target.source_direction,
        az_branch=target.az_branch,
    )
    way = f"{target.source_direction} " if target.source_direction else ""
    if not found:
        whole = "" if target.allow_partial else "whole "
        return [], f"no {whole}{way}crossing of {','.join(wafers)} at el {target.el_bore:g} in the window"
    if target.t0 is not None and target.t1 is not None:
        found = [c for c in found if c.t0 < target.t1 and target.t0 < c.t1]
        if not found:
            return [], f"no {way}crossing in the plan row's window"
    if az_limits is not None:
        found = [c for c in (_into_range(c, az_limits) for c in found) if c is not None]
        if not found:
            return [], f"the sweep leaves the az range {az_limits[0]:g}..{az_limits[1]:g}"
    return found, ""


def _into_range(c: Crossing, limits: tuple[float, float]) -> Crossing | None:
    travel = c.drift * (c.t1 - c.t0)
    lo, hi = c.az + min(0.0, travel), c.az + c.throw + max(0.0, travel)
    for turns in (0, -1, 1, -2, 2):
        if limits[0] <= lo + 360.0 * turns and hi + 360.0 * turns <= limits[1]:
            return dataclasses.replace(c, az=c.az + 360.0 * turns)
    return None


def _sun_safe(options, target, guard: SunGuard, turn: float, min_duration: float) -> list[Crossing]:
    kept = []
    for c in options:
        unsafe = blocks.union(np.concatenate([guard.unsafe(box, a, b) for a, b, box in _boxes(c, turn, target)]))
        if len(unsafe) == 0:
            kept.append(c)
        elif target.allow_partial:
            for a, b in blocks.subtract(math.ceil(c.t0), math.floor(c.t1), unsafe):
                if b - a >= min_duration:
                    kept.append(c.piece(float(a), float(b)))
    return kept


def _boxes(c: Crossing, turn: float, target: CalTarget):
    el = float(target.el_bore)
    edges = np.append(np.arange(c.t0, c.t1, SUN_CHUNK), c.t1)
    for a, b in zip(edges[:-1], edges[1:]):
        ends = (c.az_at(a), c.az_at(b))
        yield float(a), float(b), (min(ends) - turn, max(ends) + c.throw + turn, el, el)


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


def _track(name, site, t0, t1, ra, dec):
    grid = np.arange(math.ceil(t0 / TRACK_STEP) * TRACK_STEP, t1, TRACK_STEP)
    t = np.unique(np.concatenate(([float(t0)], grid, [float(t1)])))
    az, el = sources.track(name, site, t, ra, dec)
    return t, az, el


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
