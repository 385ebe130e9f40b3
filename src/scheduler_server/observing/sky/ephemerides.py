"""Sun, moon and planets as seen from a site, over whole arrays of times.

Positions come from skyfield with the JPL DE421 ephemeris and the IERS table
(finals2000A.all) installed by the ``skyfield-data`` package: nothing is ever
downloaded (the files are opened from that package's directory, where skyfield
finds them present and so never fetches).

Skyfield computes one time per body at a cost too high for 10-second grids over
weeks. So each body's apparent topocentric right ascension and declination (of
date), and the site's local apparent sidereal time, are computed once per 16-day
chunk on an hourly grid, kept in memory and on disk (``cache.py``), and
interpolated with a 4-point cubic (error below 0.0001 deg, checked in the tests).
Hour angle, azimuth and elevation then follow exactly from spherical trigonometry.
Refraction is not applied: elevations are geometric.

All times are UTC Unix seconds (float arrays); angles are degrees; azimuth is
measured from north through east.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from scheduler_server.observing.sky import cache
from scheduler_server.observing.sky.site import ATACAMA, Site  # noqa: F401  (ATACAMA re-exported)

CHUNK_SECONDS = 16 * 86400
STEP_SECONDS = 3600
_BEFORE = 2  # grid points before a chunk's start, for the cubic stencil
_AFTER = 3
_POINTS = CHUNK_SECONDS // STEP_SECONDS + _BEFORE + _AFTER
CACHED_SITES = 8  # sites whose tables stay in the disk cache (most recent first)
TABLE_FORMAT = 1
DENSE_STEP_SECONDS = 60.0
# Mean sidereal rate; the table stores only the small residual from this line,
# which keeps the sidereal time continuous across chunks.
SIDEREAL_DEG_PER_SECOND = 360.98564736629 / 86400.0
J2000_UNIX = 946728000.0

EPHEMERIS_NAMES = {
    "sun": "sun",
    "moon": "moon",
    "mercury": "mercury",
    "venus": "venus",
    "mars": "mars barycenter",
    "jupiter": "jupiter barycenter",
    "saturn": "saturn barycenter",
    "uranus": "uranus barycenter",
    "neptune": "neptune barycenter",
}
BODIES = tuple(EPHEMERIS_NAMES)
# DE421 covers 1899-07-29 to 2053-10-09; windows keep a month clear of either end
# for the margins around them (planet windows, generated months, look-ahead).
COVERED = ("1900-01-01", "2053-09-01")


def altaz(body: str, site: Site, times) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation of ``body`` at ``times``."""
    ha, dec = hadec(body, site, times)
    return hadec_to_altaz(ha, dec, site.lat)


def hadec(body: str, site: Site, times) -> tuple[np.ndarray, np.ndarray]:
    """Apparent topocentric hour angle and declination of ``body`` at ``times``."""
    if body not in EPHEMERIS_NAMES:
        raise ValueError(f"unknown body {body!r}; known: {', '.join(BODIES)}")
    t = np.asarray(times, dtype=float)
    ra = _interpolate(body, site, t, 0)
    dec = _interpolate(body, site, t, 1)
    return sidereal_time(site, t) - ra, dec


def sidereal_time(site: Site, times) -> np.ndarray:
    """Local apparent sidereal time in degrees, continuous (not wrapped) over time."""
    t = np.asarray(times, dtype=float)
    return SIDEREAL_DEG_PER_SECOND * (t - J2000_UNIX) + _interpolate("lst", site, t, 0)


def hadec_to_altaz(ha, dec, lat: float) -> tuple[np.ndarray, np.ndarray]:
    h, d, p = np.radians(ha), np.radians(dec), np.radians(lat)
    sin_d, cos_d, cos_h = np.sin(d), np.cos(d), np.cos(h)
    el = np.degrees(np.arcsin(np.clip(np.sin(p) * sin_d + np.cos(p) * cos_d * cos_h, -1.0, 1.0)))
    az = np.degrees(np.arctan2(-cos_d * np.sin(h), sin_d * np.cos(p) - cos_d * cos_h * np.sin(p))) % 360.0
    return az, el


def radec_of_date(ra_icrs, dec_icrs, when: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed ICRS positions (deg) precessed and nutated to the true equator and equinox of
    date, the frame of ``sidereal_time``; annual aberration (< 0.006 deg) is left out.

    Used for the outlines of sky patches; one precession-nutation matrix from skyfield,
    applied to all points at once.
    """
    ts, _ = _skyfield()
    matrix = _skyfield_time(ts, np.array([float(when)]))[0].M
    a, d = np.radians(np.asarray(ra_icrs, float)), np.radians(np.asarray(dec_icrs, float))
    x, y, z = matrix @ np.array([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    return np.degrees(np.arctan2(y, x)) % 360.0, np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))


def _interpolate(body: str, site: Site, t: np.ndarray, row: int) -> np.ndarray:
    if t.size == 0:
        return np.empty_like(t)
    if t.size > 64:
        lo, hi = float(t.min()), float(t.max())
        if t.size > 2 * (hi - lo) / DENSE_STEP_SECONDS:
            # Many times per minute: the cubic on a one-minute grid, then linear in
            # between (the tabulated quantities change too slowly for that to matter).
            grid = (
                np.arange(np.floor(lo / DENSE_STEP_SECONDS), np.ceil(hi / DENSE_STEP_SECONDS) + 1) * DENSE_STEP_SECONDS
            )
            return np.interp(t, grid, _interpolate(body, site, grid, row))
    chunk = np.floor_divide(t, CHUNK_SECONDS).astype(np.int64)
    first, last = int(chunk.min()), int(chunk.max())
    if first == last:
        return _cubic(_table(body, site, first)[row], t - (first * CHUNK_SECONDS - _BEFORE * STEP_SECONDS))
    out = np.empty_like(t)
    for k in range(first, last + 1):
        sel = chunk == k
        if sel.any():
            out[sel] = _cubic(_table(body, site, k)[row], t[sel] - (k * CHUNK_SECONDS - _BEFORE * STEP_SECONDS))
    return out


def _cubic(values: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """4-point Lagrange interpolation on the uniform grid; ``offset`` in seconds from grid point 0."""
    x = offset / STEP_SECONDS
    i = np.floor(x).astype(np.intp)
    u = x - i
    y0, y1, y2, y3 = values[i - 1], values[i], values[i + 1], values[i + 2]
    um1, up1, um2 = u - 1.0, u + 1.0, u - 2.0
    return (
        (-u * um1 * um2 / 6.0) * y0
        + (up1 * um1 * um2 / 2.0) * y1
        - (up1 * u * um2 / 2.0) * y2
        + (up1 * u * um1 / 6.0) * y3
    )


@lru_cache(maxsize=512)
def _table(body: str, site: Site, chunk: int) -> np.ndarray:
    table = cache.load_array(_table_name(body, site, chunk))
    if table is None or table.shape[-1] != _POINTS:
        # Only the body asked for: a schedule needs the sun, the moon, the sidereal
        # time and its calibration targets, and each body costs about as much as
        # the times' shared setup (``_chunk_times``), which is kept for the next one.
        table = _compute(body, site, chunk)
        cache.save_array(_table_name(body, site, chunk), table)
        cache.prune(f"sky/{data_versions()}", keep=CACHED_SITES)
    table.setflags(write=False)
    return table


def _table_name(body: str, site: Site, chunk: int) -> str:
    return f"sky/{data_versions()}/{site.key}/{body}-{chunk}.npy"


@lru_cache(maxsize=1)
def data_versions() -> str:
    """The table format and the skyfield and skyfield-data versions: part of every cached name made from the sky."""
    return f"t{TABLE_FORMAT}-skyfield{cache.package_version('skyfield')}-data{cache.package_version('skyfield-data')}"


def _compute(body: str, site: Site, chunk: int) -> np.ndarray:
    """One chunk's table for ``body`` ("lst" for the sidereal-time residual)."""
    t, when, here = _chunk_times(site, chunk)
    if body == "lst":
        last = when.gast * 15.0 + site.lon
        residual = (last - SIDEREAL_DEG_PER_SECOND * (t - J2000_UNIX) + 180.0) % 360.0 - 180.0
        return np.degrees(np.unwrap(np.radians(residual)))[None, :]
    _, eph = _skyfield()
    ra, dec, _ = here.observe(eph[EPHEMERIS_NAMES[body]]).apparent().radec(epoch="date")
    return np.vstack([np.degrees(np.unwrap(ra.radians)), dec.degrees])


@lru_cache(maxsize=4)
def _chunk_times(site: Site, chunk: int):
    """A chunk's grid times, as skyfield times (whose nutation is computed once and
    kept on the object) and with the site's position at them."""
    from skyfield.api import wgs84

    ts, eph = _skyfield()
    t = chunk * CHUNK_SECONDS + STEP_SECONDS * np.arange(-_BEFORE, _POINTS - _BEFORE, dtype=float)
    when = _skyfield_time(ts, t)
    return t, when, (eph["earth"] + wgs84.latlon(site.lat, site.lon, site.elevation)).at(when)


def _skyfield_time(ts, t: np.ndarray):
    # Whole days plus seconds of day: Unix time has no leap seconds, nor has this split.
    days, seconds = np.divmod(t, 86400.0)
    return ts.utc(1970, 1, 1 + days.astype(int), 0, 0, seconds)


@lru_cache(maxsize=1)
def _skyfield():
    from importlib.resources import files

    from skyfield.api import Loader

    # The directory holds de421.bsp and finals2000A.all; a Loader only downloads a
    # file that is missing, so pointing it there keeps skyfield offline.
    load = Loader(str(files("skyfield_data") / "data"), verbose=False)
    return load.timescale(builtin=False), load("de421.bsp")


class Samples:
    """One body's positions on a regular grid of times (multiples of ``step`` seconds).

    Made once per schedule and sliced by every test that needs the body over some
    span; a span outside the grid is computed on the fly.
    """

    def __init__(self, body: str, site: Site, start: float, stop: float, step: int):
        self.body, self.site, self.step = body, site, int(step)
        first = np.floor(start / step) * step
        self.t = np.arange(first, stop + step, step, dtype=float)
        self.az, self.el = altaz(body, site, self.t)
        self.trig = _trig(self.az, self.el)
        self.max_move = _max_move(self.trig)
        self.t0 = float(self.t[0])

    @classmethod
    def of(cls, body: str, site: Site, t: np.ndarray, az: np.ndarray, el: np.ndarray) -> Samples:
        """Samples with given positions (a constructed sky, for cases with known answers)."""
        self = cls.__new__(cls)
        self.body, self.site, self.step = body, site, int(round(t[1] - t[0]))
        self.t, self.az, self.el = np.asarray(t, float), np.asarray(az, float) % 360.0, np.asarray(el, float)
        self.trig = _trig(self.az, self.el)
        self.max_move = _max_move(self.trig)
        self.t0 = float(self.t[0])
        return self

    def window(self, start: float, stop: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid times in [start, stop] (at least the one nearest ``start``) with az and el."""
        t, az, el, _ = self.window_with_trig(start, stop)
        return t, az, el

    def indices(self, start: float, stop: float) -> tuple[int, int] | None:
        """Grid indices [i0, i1) of the times ``window`` returns, or None when the span
        is not all on the grid."""
        first = self.t0  # plain floats and math: called thousands of times a schedule
        i0 = math.ceil((start - first) / self.step)
        i1 = max(math.floor((stop - first) / self.step) + 1, i0 + 1)
        return (i0, i1) if i0 >= 0 and i1 <= len(self.t) else None

    def window_with_trig(self, start: float, stop: float):
        """As ``window``, plus (cos az, sin az, sin el, cos el) for the fast geometry."""
        i0 = int(np.ceil((start - self.t[0]) / self.step))
        i1 = max(int(np.floor((stop - self.t[0]) / self.step)) + 1, i0 + 1)
        if i0 >= 0 and i1 <= len(self.t):
            return self.t[i0:i1], self.az[i0:i1], self.el[i0:i1], self.trig[:, i0:i1]
        t = self.t[0] + self.step * np.arange(i0, i1, dtype=float)
        az, el = altaz(self.body, self.site, t)
        return t, az, el, _trig(az, el)


def _max_move(trig: np.ndarray) -> float:
    """The largest angle (deg) between consecutive samples, a little rounded up.

    Any two samples k apart are then at most k times this apart (triangle
    inequality), which lets a test of one sample vouch for its neighbours.
    """
    if trig.shape[1] < 2:
        return 0.0
    cos_az, sin_az, sin_el, cos_el = trig
    cos_move = sin_el[1:] * sin_el[:-1] + cos_el[1:] * cos_el[:-1] * (
        cos_az[1:] * cos_az[:-1] + sin_az[1:] * sin_az[:-1]
    )
    return float(np.degrees(np.arccos(np.clip(cos_move.min(), -1.0, 1.0)))) * 1.01 + 1e-6


def _trig(az: np.ndarray, el: np.ndarray) -> np.ndarray:
    a, e = np.radians(az), np.radians(el)
    return np.array([np.cos(a), np.sin(a), np.sin(e), np.cos(e)])
