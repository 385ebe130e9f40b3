"""Generating master schedules from sky patches, in the spirit of toast's ground scheduler.

For each patch, allowed elevation and direction (rising or setting), every point
of the patch outline crosses the elevation ring at a known local sidereal time and
azimuth (spherical trigonometry on its apparent RA/Dec). A constant-elevation scan
(CES) runs from the first crossing to the last, over the azimuths of the crossings,
so the patch drifts through the scan. These CESes recur every sidereal day. Parts
closer to the sun or moon than the avoidance angles are removed. Then, walking
forward in time, the scheduler starts the available CES (already under way or
starting now) whose patch has the least observing time per unit of priority, and
splits it into sub-scans of at most ``max_scan_seconds``.

Schedules are made one calendar month (UTC) at a time, each month from a fresh
state, so any window of any schedule is the same however it was asked for; months
are cached as numpy archives (``archives.py``) keyed by everything that shaped
them (``sky/cache.py``), and the default config's months for a few years are shipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import UTC, datetime

import numpy as np

from scheduler_server.observing.master import archives
from scheduler_server.observing.master.patches import GeneratorConfig
from scheduler_server.observing.master.toast import MasterScan, MasterSchedule
from scheduler_server.observing.sky import cache
from scheduler_server.observing.sky import ephemerides as sky
from scheduler_server.observing.sky.ephemerides import Site
from scheduler_server.observing.sky.geometry import angular_distance, cos_distance_to_arcs, wrap180

GENERATOR_VERSION = 2
SAMPLE_SECONDS = 120  # the sun and moon move < 0.5 deg in 2 minutes; the policy re-checks finely anyway
ROUND_SECONDS = 10
CACHED_SPECS = 16  # generator configs whose months stay in the disk cache (most recent first)
log = logging.getLogger(__name__)


def generate(start: int, stop: int, spec: GeneratorConfig, site: Site) -> MasterSchedule:
    """The scans that overlap [start, stop), from the (cached) months that hold them."""
    key = spec_key(spec, site)
    scans: list[MasterScan] = []
    for m0, m1 in months(start, stop):
        scans.extend(_month(key, m0, m1, spec, site))
    return MasterSchedule(site, tuple(s for s in scans if s.stop > start and s.start < stop))


def months(start: int, stop: int) -> list[tuple[int, int]]:
    first = datetime.fromtimestamp(start, tz=UTC)
    year, month = first.year, first.month
    out = []
    while True:
        m0 = int(datetime(year, month, 1, tzinfo=UTC).timestamp())
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        m1 = int(datetime(year, month, 1, tzinfo=UTC).timestamp())
        if m0 >= stop:
            return out
        out.append((m0, m1))


def spec_key(spec: GeneratorConfig, site: Site) -> str:
    described = {
        "generator": GENERATOR_VERSION,
        "sky": sky.data_versions(),
        "site": [site.name, site.telescope, site.lat, site.lon, site.elevation],
        "spec": spec.model_dump(mode="json", exclude={"patches"}),
        "patches": [p.model_dump(mode="json") for p in spec.resolved_patches()],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:20]


_MONTHS: dict[tuple[str, int], tuple[MasterScan, ...]] = {}
_MONTHS_KEPT = 64
_MONTHS_LOCK = threading.Lock()  # the server answers from several threads


def _month(key: str, m0: int, m1: int, spec: GeneratorConfig, site: Site) -> tuple[MasterScan, ...]:
    """One month of scans: from memory, else shipped in the package, else from the cache
    file, else generated (and kept in memory and the cache)."""
    scans = _MONTHS.get((key, m0))
    if scans is not None:
        return scans
    scans = archives.shipped(key, _label(m0))
    if scans is None:
        name = f"master/{key}/{_label(m0)}.npz"
        arrays = cache.load_archive(name)
        try:
            scans = archives.from_arrays(arrays) if arrays is not None else None
        except (KeyError, ValueError, TypeError) as exc:  # a foreign archive: made again below
            log.warning("ignoring unreadable cache file %s: %s", name, exc)
        if scans is None:
            scans = tuple(plan_month(m0, m1, spec, site))
            cache.save_archive(name, archives.to_arrays(scans))
            cache.prune("master", keep=CACHED_SPECS)
    with _MONTHS_LOCK:
        if len(_MONTHS) >= _MONTHS_KEPT:
            _MONTHS.pop(next(iter(_MONTHS)))
        _MONTHS[(key, m0)] = scans
    return scans


def _label(m0: int) -> str:
    return datetime.fromtimestamp(m0, tz=UTC).strftime("%Y-%m")


class _Candidates:
    """Every safe CES occurrence of the month, as parallel arrays plus the crossings of each."""

    def __init__(self):
        self.start: list[float] = []
        self.stop: list[float] = []
        self.patch: list[int] = []
        self.el: list[float] = []
        self.rising: list[bool] = []
        self.crossings: list[tuple[np.ndarray, np.ndarray]] = []  # (time offsets from start, az)

    def add(self, start, stop, patch, el, rising, crossings):
        self.start.append(start)
        self.stop.append(stop)
        self.patch.append(patch)
        self.el.append(el)
        self.rising.append(rising)
        self.crossings.append(crossings)


def plan_month(m0: int, m1: int, spec: GeneratorConfig, site: Site) -> list[MasterScan]:
    patches = spec.resolved_patches()
    grid = np.arange(m0 - 86400, m1 + 86400 + SAMPLE_SECONDS, SAMPLE_SECONDS, dtype=float)
    lst = sky.sidereal_time(site, grid)
    outlines = [p.boundary() for p in patches]
    sizes = np.cumsum([0] + [len(r) for r, _ in outlines])
    ra, dec = sky.radec_of_date(
        np.concatenate([r for r, _ in outlines]), np.concatenate([d for _, d in outlines]), (m0 + m1) / 2
    )
    occurrences = _Candidates()
    for index in range(len(patches)):
        lo, hi = sizes[index], sizes[index + 1]
        for el in spec.elevations:
            for rising in (True, False):
                _add_occurrences(occurrences, index, ra[lo:hi], dec[lo:hi], el, rising, site, grid, lst, m0, m1)
    safe = _avoid_sun_and_moon(occurrences, spec, site)
    return _choose(safe, patches, spec, site, m0, m1)


def _add_occurrences(out, index, ra, dec, el, rising, site, grid, lst, m0, m1) -> None:
    lat = np.radians(site.lat)
    d = np.radians(dec)
    cos_h = (np.sin(np.radians(el)) - np.sin(lat) * np.sin(d)) / (np.cos(lat) * np.cos(d))
    if np.any(np.abs(cos_h) > 1):
        return  # part of the patch never crosses this elevation
    hour_angle = np.degrees(np.arccos(cos_h)) * (-1.0 if rising else 1.0)
    crossing = ra + hour_angle
    crossing = crossing[0] + wrap180(crossing - crossing[0])
    az, _ = sky.hadec_to_altaz(hour_angle, dec, site.lat)
    first, last = crossing.min(), crossing.max()
    offsets = (crossing - first) / sky.SIDEREAL_DEG_PER_SECOND
    turns = np.arange(np.ceil((lst[0] - first) / 360.0), np.floor((lst[-1] - last) / 360.0) + 1)
    starts = np.interp(first + 360.0 * turns, lst, grid)
    stops = np.interp(last + 360.0 * turns, lst, grid)
    for start, stop in zip(starts, stops):
        if stop > m0 and start < m1:
            out.add(start, stop, index, el, rising, (offsets, az))


def _az_range(az: np.ndarray) -> tuple[float, float]:
    ref = az[0]
    unwrapped = ref + wrap180(az - ref)
    lo, hi = unwrapped.min(), unwrapped.max()
    return lo % 360.0, lo % 360.0 + (hi - lo)


def _avoid_sun_and_moon(occ: _Candidates, spec: GeneratorConfig, site: Site) -> _Candidates:
    safe = _Candidates()
    if not occ.start:
        return safe
    ranges = np.array([_az_range(az) for _, az in occ.crossings])
    sample_lists = [
        np.arange(np.ceil(a / SAMPLE_SECONDS) * SAMPLE_SECONDS, b, SAMPLE_SECONDS) for a, b in zip(occ.start, occ.stop)
    ]
    owner = np.repeat(np.arange(len(sample_lists)), [len(s) for s in sample_lists])
    t = np.concatenate(sample_lists)
    el = np.asarray(occ.el)[owner]
    ok = np.ones(len(t), dtype=bool)
    for body, angle in (("sun", spec.sun_avoidance_angle), ("moon", spec.moon_avoidance_angle)):
        if angle > 0:
            b_az, b_el = np.radians(sky.altaz(body, site, t))
            trig = (np.cos(b_az), np.sin(b_az), np.sin(b_el), np.cos(b_el))
            ok &= cos_distance_to_arcs(*trig, ranges[owner, 0], ranges[owner, 1], el) <= np.cos(np.radians(angle))
    bounds = np.cumsum([0] + [len(s) for s in sample_lists])
    for i, (start, stop) in enumerate(zip(occ.start, occ.stop)):
        mask = ok[bounds[i] : bounds[i + 1]]
        if mask.all():
            safe.add(start, stop, occ.patch[i], occ.el[i], occ.rising[i], occ.crossings[i])
            continue
        times = sample_lists[i]
        edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            # A safe run spans its safe samples only: a sample step short of the unsafe ones.
            run_start = start if a == 0 else times[a]
            run_stop = stop if b == len(mask) else times[b - 1]
            offsets, az = occ.crossings[i]
            shift = run_start - start
            keep = (offsets >= shift) & (offsets <= run_stop - start)
            if keep.sum() >= 2:
                safe.add(run_start, run_stop, occ.patch[i], occ.el[i], occ.rising[i], (offsets[keep] - shift, az[keep]))
    return safe


def _choose(c: _Candidates, patches, spec: GeneratorConfig, site: Site, m0: int, m1: int) -> list[MasterScan]:
    if not c.start:
        return []
    start, stop = np.asarray(c.start), np.asarray(c.stop)
    patch = np.asarray(c.patch)
    priority = np.array([p.priority for p in patches])
    hits = np.zeros(len(patches))
    passes = np.zeros(len(patches), dtype=int)
    alive = (stop - start) >= spec.min_scan_seconds
    chosen: list[tuple[int, int, int, int, float]] = []  # candidate, start, stop, pass, rotation
    t = float(m0)
    while t < m1:
        avail = alive & (start <= t) & (stop - t >= spec.min_scan_seconds)
        if not avail.any():
            later = alive & (start > t)
            if not later.any():
                break
            t = float(start[later].min())
            continue
        idx = np.flatnonzero(avail)
        pick = int(idx[np.lexsort((patch[idx], hits[patch[idx]] / priority[patch[idx]]))][0])
        s = int(np.ceil(t / ROUND_SECONDS) * ROUND_SECONDS)
        e = int(np.floor(min(stop[pick], m1) / ROUND_SECONDS) * ROUND_SECONDS)
        if e - s < spec.min_scan_seconds:
            alive[pick] = False
            continue
        p = int(patch[pick])
        rotation = spec.boresight_angles[int(passes.sum()) % len(spec.boresight_angles)]
        chosen.append((pick, s, e, int(passes[p]), float(rotation)))
        hits[p] += e - s
        passes[p] += 1
        alive[pick] = False
        t = float(e + spec.gap_seconds)
    return _rows(c, chosen, patches, spec, site)


def _rows(c: _Candidates, chosen, patches, spec: GeneratorConfig, site: Site) -> list[MasterScan]:
    """Split each chosen CES into sub-scans, with the sun and moon at their ends."""
    pieces = []
    for pick, s, e, pass_number, rotation in chosen:
        n = int(np.ceil((e - s) / spec.max_scan_seconds))
        edges = [int(round(x / ROUND_SECONDS) * ROUND_SECONDS) for x in np.linspace(s, e, n + 1)]
        edges[0], edges[-1] = s, e
        pieces += [(pick, edges[k], edges[k + 1], pass_number, rotation, k) for k in range(n)]
    if not pieces:
        return []
    ends = np.array([[a, b] for _, a, b, *_ in pieces], dtype=float).ravel()
    sun_az, sun_el = sky.altaz("sun", site, ends)
    moon_az, moon_el = sky.altaz("moon", site, ends)
    phase = (1.0 - np.cos(np.radians(angular_distance(sun_az, sun_el, moon_az, moon_el)))) / 2.0
    rows = []
    for k, (pick, a, b, pass_number, rotation, sub) in enumerate(pieces):
        offsets, az = c.crossings[pick]
        crossing_times = c.start[pick] + offsets
        inside = (crossing_times >= a) & (crossing_times <= b)
        az_min, az_max = _az_range(az[inside] if inside.sum() >= 2 else az)
        i, j = 2 * k, 2 * k + 1
        rows.append(
            MasterScan(
                start=a,
                stop=b,
                name=patches[c.patch[pick]].name,
                az_min=round(az_min, 2) % 360.0,
                az_max=round(az_max, 2) % 360.0,
                el=float(c.el[pick]),
                rising=bool(c.rising[pick]),
                rotation=rotation,
                sun=tuple(round(float(x), 2) for x in (sun_el[i], sun_az[i], sun_el[j], sun_az[j])),
                moon=tuple(round(float(x), 2) for x in (moon_el[i], moon_az[i], moon_el[j], moon_az[j])),
                phase=round(float(phase[i]), 2),
                pass_number=pass_number,
                sub=sub,
            )
        )
    return rows
