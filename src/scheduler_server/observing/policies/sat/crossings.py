"""A source's crossings of a wafer set's footprint: the geometry of a calibration scan, vectorised.

The telescope holds its boresight at the target's elevation and sweeps azimuth while the source rises (or
sets) through the footprint (``focalplane.outline``). For each outline point, at azimuth offset a and
elevation e from the boresight, the source passes elevation e at one time t_e and azimuth A(t_e): the
boresight must then be at azimuth A(t_e) - a. The scan starts when the source reaches the footprint's first
edge and stops at the other; its sweep az0 + v (t - t0) .. az0 + throw + v (t - t0) must hold every such
azimuth. With drift (schedlib's default) v is the az_drift that makes the throw smallest, found on a grid
refined round by round (the throw is convex in v, so the grid cannot settle beside its minimum); without,
v = 0. This is schedlib's ``make_source_ces`` without its Nelder-Mead searches: the boresight azimuth that
puts the centre on the source's track drops out of the answer entirely.

A crossing is a rising or setting stretch of the source above the horizon (schedlib's source blocks), cut
to the schedule's window. One the source does not make whole (cut by the window, or the source never
climbing the footprint's height) is kept only with ``allow_partial``, trimmed to what is covered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from scheduler_server.observing.policies.sat import sources

DAY = 86400
TRACK_STEP = 60.0  # s: a source's elevation curves so little that linear interpolation errs by < 0.001 deg
_DRIFT_GRID = 33
_DRIFT_ROUNDS = 4  # the last grid's step is reach / 16^4: a throw within 0.001 deg of the least
_GRID = np.arange(-(_DRIFT_GRID // 2), _DRIFT_GRID // 2 + 1, dtype=float)


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


def crossings(
    track: tuple[np.ndarray, np.ndarray, np.ndarray],
    outline: tuple[np.ndarray, np.ndarray],
    *,
    drift: bool = True,
    allow_partial: bool = False,
    direction: str | None = None,
    az_branch: float | None = None,
    span: tuple[float, float] | None = None,
    runs: list[tuple[int, int, str]] | None = None,
    memo: dict | None = None,
) -> Iterator[Crossing]:
    """The crossings of the outline (``focalplane.outline``) by a source on ``track`` (t, az unwrapped, el), in
    time order, of the rising or setting stretches that meet ``span`` (all without); computed as they are asked
    for. ``runs`` are ``stretches(el)`` if known; ``memo`` keeps each stretch's crossing for the next target alike."""
    t, az, el = track
    memo = {} if memo is None else memo
    branch = 180.0 if az_branch is None else float(az_branch)
    for a, b, mode in stretches(el) if runs is None else runs:
        if direction is not None and mode != direction:
            continue
        if span is not None and not (t[a] < span[1] and span[0] < t[b]):
            continue
        if a not in memo:
            memo[a] = _crossing(t[a : b + 1], az[a : b + 1], el[a : b + 1], mode, outline, drift, allow_partial)
        crossing = memo[a]
        if crossing is not None:
            shift = (crossing.az - (branch - 180.0)) % 360.0 + (branch - 180.0) - crossing.az
            yield dataclasses.replace(crossing, az=crossing.az + shift) if shift else crossing


def best_drift(x: np.ndarray, y: np.ndarray) -> float:
    """The v minimising max(y - v x) - min(y - v x): a convex function, so a refined grid finds its minimum."""
    span = float(np.ptp(x)) if len(x) else 0.0
    if span <= 0.0:
        return 0.0
    reach = 2.0 * float(np.ptp(y)) / span + 1e-12  # beyond this the width exceeds the width at v = 0
    best, step = 0.0, reach / (_DRIFT_GRID // 2)
    for _ in range(_DRIFT_ROUNDS):
        v = best + step * _GRID
        z = y[None, :] - v[:, None] * x[None, :]
        best = float(v[int(np.argmin(z.max(axis=1) - z.min(axis=1)))])
        step /= _DRIFT_GRID // 2
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


def stretches(el: np.ndarray) -> list[tuple[int, int, str]]:
    """Stretches (first, last sample) where the source is above the horizon and rising, or setting."""
    if len(el) < 2:
        return []
    step = np.diff(el)
    label = np.where((el[:-1] > 0) & (el[1:] > 0), np.sign(step), 0).astype(np.int8)
    edges = np.flatnonzero(np.diff(label)) + 1
    starts, stops = np.concatenate(([0], edges)), np.concatenate((edges, [len(label)]))
    return [(int(a), int(b), "rising" if label[a] > 0 else "setting") for a, b in zip(starts, stops) if label[a] != 0]


def source_track(name, site, t0, t1, ra, dec):
    """The source over [t0, t1]: whole days of positions on a fixed grid (cached between schedules), cut to
    the window, with its ends interpolated in."""
    days = [_day_track(name, ra, dec, site, day) for day in range(int(t0 // DAY), int(t1 // DAY) + 1)]
    t = np.concatenate([d[0][:-1] for d in days[:-1]] + [days[-1][0]])
    az = np.concatenate([d[1][:-1] for d in days[:-1]] + [days[-1][1]])
    el = np.concatenate([d[2][:-1] for d in days[:-1]] + [days[-1][2]])
    az = np.degrees(np.unwrap(np.radians(az)))
    inside = (t > t0) & (t < t1)
    ends = np.array([t0, t1], dtype=float)
    return (
        np.concatenate(([t0], t[inside], [t1])),
        np.concatenate((np.interp(ends[:1], t, az), az[inside], np.interp(ends[1:], t, az))),
        np.concatenate((np.interp(ends[:1], t, el), el[inside], np.interp(ends[1:], t, el))),
    )


@lru_cache(maxsize=1024)
def _day_track(name, ra, dec, site, day: int):
    t = day * DAY + np.arange(0.0, DAY + TRACK_STEP, TRACK_STEP)  # through the next midnight
    az, el = sources.track(name, site, t, ra, dec)
    for array in (t, az, el):
        array.setflags(write=False)
    return t, az % 360.0, el
