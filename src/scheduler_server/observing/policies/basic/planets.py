"""Calibration scans of planets: when a planet drifts through the focal plane.

The telescope holds a fixed elevation while the planet rises (or sets) through the
array's footprint. For a scan starting at time t, with the planet at elevation
e(t): the boresight sits so the planet enters at one edge of the footprint and
leaves at the other, i.e. the scan lasts until the planet has climbed (or sunk)
the footprint's height; the azimuth throw covers the footprint's extent across
the planet's tilted track. Start times where that works form *observing windows*
(``make-source-plan``); one start per window is then picked with a random offset
seeded by the window's date, so a day always gives the same scan whatever window
was asked for (``make-source-scan``).

Windows are found on a 2-minute grid aligned to absolute time, week by week (and
cached per week), so they never depend on where the request's window starts.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

from scheduler_server.observing.policies.basic.blocks import CALIBRATION, Scan
from scheduler_server.observing.sky import ephemerides as sky
from scheduler_server.observing.sky.ephemerides import Site

STEP_SECONDS = 120  # planets move slowly: linear interpolation over 2 min errs by < 0.001 deg
MARGIN_DAYS = 1
WEEK = 7 * 86400


@dataclass(frozen=True)
class Footprint:
    """Detector-array extent on the sky: one (x_lo, x_hi, y_lo, y_hi) box per spec, in deg."""

    bounds: tuple[tuple[float, float, float, float], ...]
    shape: str  # "ellipse" or "box"

    @property
    def height(self) -> float:
        return max(b[3] for b in self.bounds) - min(b[2] for b in self.bounds)

    @property
    def y_center(self) -> float:
        return (max(b[3] for b in self.bounds) + min(b[2] for b in self.bounds)) / 2.0

    def x_extent(self, tan_tilt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boresight cross-elevation offsets (lo, hi) that sweep every detector over a track of this tilt.

        A detector at (dx, dy) sees the planet when the planet's track, offset from
        the boresight, passes it: track x at dy minus dx. Over an ellipse with
        semi-axes (rx, ry) that spans ``cx -/+ sqrt(rx^2 + (ry tan)^2)``; over a box
        ``cx -/+ (rx + ry |tan|)``.
        """
        lo, hi = [], []
        for x0, x1, y0, y1 in self.bounds:
            cx, rx, ry = (x0 + x1) / 2.0, (x1 - x0) / 2.0, (y1 - y0) / 2.0
            half = np.hypot(rx, ry * tan_tilt) if self.shape == "ellipse" else rx + ry * np.abs(tan_tilt)
            lo.append(-cx - half)
            hi.append(-cx + half)
        return np.min(lo, axis=0), np.max(hi, axis=0)


@dataclass(frozen=True)
class Window:
    """Start times t0..t1 at which a scan of ``target`` works, with the scan each start gives."""

    target: str
    mode: str  # "rising" or "setting"
    t: np.ndarray  # grid of start times
    length: np.ndarray  # scan duration from each start (s)
    az: np.ndarray  # scan start azimuth
    el: np.ndarray  # boresight elevation
    throw: np.ndarray

    @property
    def t0(self) -> int:
        return int(self.t[0])

    @property
    def t1(self) -> int:
        return int(self.t[-1])

    def trimmed(self, keep: np.ndarray) -> list[Window]:
        """The runs of start times where ``keep`` holds, each as its own window."""
        out = []
        edges = np.diff(np.concatenate(([0], keep.astype(np.int8), [0])))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            arrays = [arr[a:b] for arr in (self.t, self.length, self.az, self.el, self.throw)]
            for arr in arrays:
                arr.flags.writeable = False  # windows are cached and shared between requests
            out.append(Window(self.target, self.mode, *arrays))
        return out

    def scan_at(self, start: float) -> Scan:
        length, az, el, throw = (
            float(np.interp(start, self.t, arr)) for arr in (self.length, self.az, self.el, self.throw)
        )
        t0 = int(round(start))
        return Scan(
            name=self.target,
            kind=CALIBRATION,
            t0=t0,
            t1=t0 + int(round(length)),
            az=round(az % 360.0, 2),
            el=round(el, 2),
            throw=round(throw, 2),
            drift=self.mode,
        )


def windows_near(target: str, site: Site, t0: int, t1: int, footprint: Footprint, max_length: float) -> list[Window]:
    """Every window starting between the day before t0 and the day after t1 (and a few more)."""
    first, last = (t0 - MARGIN_DAYS * 86400) // WEEK, (t1 + MARGIN_DAYS * 86400) // WEEK
    out: list[Window] = []
    for week in range(first, last + 1):
        out.extend(_windows_of_week(target, site, week, footprint, max_length))
    return out


@lru_cache(maxsize=256)
def _windows_of_week(target: str, site: Site, week: int, footprint: Footprint, max_length: float) -> tuple[Window, ...]:
    # A rising or setting passage lasts under half a day, so one starting in the week
    # lies wholly within the week and a day on either side.
    start = week * WEEK
    found = windows(target, site, (start - 86400, start + WEEK + 86400), footprint, max_length)
    return tuple(w for w in found if start <= w.t0 < start + WEEK)


def windows(target: str, site: Site, span: tuple[int, int], footprint: Footprint, max_length: float) -> list[Window]:
    t = np.arange(span[0], span[1] + STEP_SECONDS, STEP_SECONDS, dtype=float)
    az, el = sky.altaz(target, site, t)
    az = np.degrees(np.unwrap(np.radians(az)))
    climbing = np.gradient(el) > 0
    out: list[Window] = []
    for mode, wanted in (("rising", True), ("setting", False)):
        selected = (el > 0) & (climbing == wanted)
        edges = np.diff(np.concatenate(([0], selected.astype(np.int8), [0])))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            if a == 0 or b == len(t) or b - a < 3:
                continue  # cut by the search span or too short to interpolate
            out.extend(_plan(target, mode, t[a:b], az[a:b], el[a:b], footprint, max_length))
    out.sort(key=lambda w: (w.t0, w.mode))
    return out


def _plan(target, mode, t, az, el, footprint: Footprint, max_length) -> list[Window]:
    sign = 1.0 if mode == "rising" else -1.0
    # Elevation is monotonic over the segment; np.interp wants it increasing.
    order = slice(None) if sign > 0 else slice(None, None, -1)
    el_inc, t_inc = el[order], t[order]
    h = footprint.height
    alt_center = el + sign * h / 2.0
    alt_stop = el + sign * h
    valid = (alt_stop >= el.min()) & (alt_stop <= el.max())
    t_stop = np.interp(alt_stop, el_inc, t_inc)
    t_center = np.interp(alt_center, el_inc, t_inc)
    length = t_stop - t
    az_center = np.interp(t_center, t, az)
    daz = np.interp(t_center, t, np.gradient(az, t))
    dalt = np.interp(t_center, t, np.gradient(el, t))
    cos_el = np.cos(np.radians(alt_center))
    with np.errstate(divide="ignore", invalid="ignore"):
        tan_tilt = daz * cos_el / dalt
    x_lo, x_hi = footprint.x_extent(tan_tilt)
    throw = (x_hi - x_lo) / cos_el
    az_start = az_center + x_lo / cos_el
    el_bore = alt_center - footprint.y_center
    valid &= np.isfinite(throw) & (length > 0) & (length <= max_length) & (throw < 180.0)
    whole = Window(target, mode, t, length, az_start, el_bore, throw)
    return whole.trimmed(valid)


def pick_scan(window: Window, preferred_length: float, within: tuple[int, int] | None = None) -> Scan:
    """One scan in the window: a start offset drawn at random, seeded by the window's date.

    A scan that misses ``within`` (the request, when the window crosses one of its ends) is drawn
    again from the starts inside it, as schedlib 2023 did by trimming windows to the request first;
    a scan inside the request is the same whatever the request.
    """
    scan = _draw(window, preferred_length)
    if within is None or (scan.t1 > within[0] and scan.t0 < within[1]):
        return scan
    inside = window.trimmed((window.t >= within[0]) & (window.t < within[1]))
    return _draw(inside[0], preferred_length) if inside else scan


def _draw(window: Window, preferred_length: float) -> Scan:
    duration = window.t1 - window.t0
    allowance = duration - min(preferred_length, duration)
    day = datetime.fromtimestamp(window.t0, tz=UTC).strftime("%Y-%m-%d")
    seed = hashlib.sha256(f"{window.target}/{window.mode}/{day}/{window.t0}".encode()).digest()
    offset = random.Random(int.from_bytes(seed[:8], "big")).uniform(0.0, allowance)
    return window.scan_at(window.t0 + offset)
