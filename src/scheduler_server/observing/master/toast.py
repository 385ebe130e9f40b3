"""Master schedules in toast's "ground schedule" text format: read and write.

The format, as toast's ground scheduler writes it::

    #Site  Telescope  Latitude [deg]  Longitude [deg]  Elevation [m]
     ATACAMA  SAT  -22.958  -67.786  5200.0
    #  Start time UTC  Stop time UTC  Start MJD  Stop MJD  Rotation  Patch name  Az min ...
     2023-01-01 00:22:00  2023-01-01 01:09:30  59945.015278  59945.048264  270.00  DEC-050..-030  218.08 ...

One constant-elevation scan per line: start and stop (UTC), optionally the start
and stop MJD and the boresight rotation, the patch name (may contain spaces), az
min, az max, el, R or S (rising or setting), then optionally sun el/az at start
and stop, moon el/az at start and stop, moon phase, pass and sub-scan numbers.
Columns are separated by white space or by ``|``. Errors name the line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from scheduler_server.observing.sky.ephemerides import Site

MJD_UNIX_EPOCH = 40587.0
_EXTRAS = (
    "sun_el1",
    "sun_az1",
    "sun_el2",
    "sun_az2",
    "moon_el1",
    "moon_az1",
    "moon_el2",
    "moon_az2",
    "phase",
    "pass",
    "sub",
)


class MasterScheduleError(ValueError):
    def __init__(self, source: str, line: int | None, problem: str):
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {problem}")
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class MasterScan:
    start: int  # UTC Unix seconds
    stop: int
    name: str
    az_min: float
    az_max: float
    el: float
    rising: bool
    rotation: float = 0.0
    sun: tuple[float, float, float, float] | None = None  # el1, az1, el2, az2
    moon: tuple[float, float, float, float] | None = None
    phase: float | None = None
    pass_number: int | None = None
    sub: int | None = None

    @property
    def throw(self) -> float:
        # A scan that wraps through north (az_max < az_min) sweeps across 0/360.
        return (self.az_max - self.az_min) % 360.0


@dataclass(frozen=True)
class MasterSchedule:
    site: Site
    scans: tuple[MasterScan, ...]

    def __post_init__(self):
        object.__setattr__(self, "_starts", np.array([s.start for s in self.scans], dtype=np.int64))
        object.__setattr__(self, "_stops", np.array([s.stop for s in self.scans], dtype=np.int64))

    def between(self, t0: int, t1: int) -> list[MasterScan]:
        """Scans that overlap (t0, t1), in start order."""
        hi = int(np.searchsorted(self._starts, t1, side="left"))
        # Scans are sorted by start and never overlap much; look back far enough anyway.
        lo = int(np.searchsorted(self._starts, t0 - 2 * 86400, side="left"))
        return [s for s in self.scans[lo:hi] if s.stop > t0]


def parse(text: str, source: str = "master schedule") -> MasterSchedule:
    site: Site | None = None
    scans: list[MasterScan] = []
    saw_site_header = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            saw_site_header = saw_site_header or stripped[1:].lstrip().lower().startswith("site")
            continue
        if site is None:
            if not saw_site_header:
                raise MasterScheduleError(
                    source,
                    number,
                    "not a toast ground schedule: expected a '#Site Telescope Latitude Longitude Elevation' header first",
                )
            site = _parse_site(stripped, source, number)
            continue
        scans.append(_parse_scan(stripped, source, number))
    if site is None:
        raise MasterScheduleError(source, None, "no site line: not a toast ground schedule")
    scans.sort(key=lambda s: (s.start, s.stop))
    return MasterSchedule(site, tuple(scans))


def read(path: str | os.PathLike) -> MasterSchedule:
    """Parse a schedule file; unchanged files are parsed once per process."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise MasterScheduleError(str(path), None, f"cannot read: {exc.strerror or exc}") from None
    return _read_cached(str(resolved), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> MasterSchedule:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MasterScheduleError(path, None, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    return parse(text, path)


def _fields(line: str) -> tuple[str, str, list[str]]:
    if "|" in line:
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        return parts[0], parts[1] if len(parts) > 1 else "", parts[2:]
    tokens = line.split()
    return " ".join(tokens[0:2]), " ".join(tokens[2:4]), tokens[4:]


def _parse_site(line: str, source: str, number: int) -> Site:
    parts = [p.strip() for p in line.strip("|").split("|")] if "|" in line else line.split()
    if len(parts) != 5:
        raise MasterScheduleError(
            source,
            number,
            f"site line needs 5 columns (name, telescope, latitude, longitude, elevation), found {len(parts)}",
        )
    lat, lon, height = (
        _number(p, what, source, number) for p, what in zip(parts[2:], ("latitude", "longitude", "elevation"))
    )
    if not -90 <= lat <= 90:
        raise MasterScheduleError(source, number, f"latitude {lat} is outside -90..90")
    return Site(parts[0], parts[1], lat, lon, height)


def _parse_scan(line: str, source: str, number: int) -> MasterScan:
    start_text, stop_text, rest = _fields(line)
    start = _time(start_text, "start time", source, number)
    stop = _time(stop_text, "stop time", source, number)
    if stop <= start:
        raise MasterScheduleError(source, number, f"stop time {stop_text} is not after start time {start_text}")
    rs = next(
        (i for i in range(4, len(rest)) if rest[i] in ("R", "S") and all(_is_number(x) for x in rest[i - 3 : i])), None
    )
    if rs is None:
        raise MasterScheduleError(
            source, number, "expected the patch name, az min, az max, el and R or S after the times; did not find them"
        )
    head = rest[: rs - 3]
    leading = 0
    while leading < len(head) - 1 and leading < 3 and _is_number(head[leading]):
        leading += 1
    name = " ".join(head[leading:])
    numbers = [float(x) for x in head[:leading]]
    rotation = numbers[-1] if leading in (1, 3) else 0.0
    az_min, az_max, el = (float(x) for x in rest[rs - 3 : rs])
    if not (math.isfinite(az_min) and math.isfinite(az_max)):
        raise MasterScheduleError(source, number, "az min and az max must be finite numbers")
    if not 0.0 <= el <= 90.0:
        raise MasterScheduleError(source, number, f"el {el} is outside 0..90")
    extras = rest[rs + 1 :]
    if len(extras) > len(_EXTRAS):
        raise MasterScheduleError(source, number, f"{len(extras)} columns after R/S, at most {len(_EXTRAS)} expected")
    values = dict(zip(_EXTRAS, (_number(x, col.replace("_", " "), source, number) for x, col in zip(extras, _EXTRAS))))
    sun = tuple(values[k] for k in _EXTRAS[0:4]) if "sun_az2" in values else None
    moon = tuple(values[k] for k in _EXTRAS[4:8]) if "moon_az2" in values else None
    return MasterScan(
        start=start,
        stop=stop,
        name=name,
        az_min=az_min,
        az_max=az_max,
        el=el,
        rising=rest[rs] == "R",
        rotation=rotation,
        sun=sun,
        moon=moon,
        phase=values.get("phase"),
        pass_number=int(values["pass"]) if "pass" in values else None,
        sub=int(values["sub"]) if "sub" in values else None,
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(text: str, what: str, source: str, number: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise MasterScheduleError(source, number, f"{what} {text!r} is not a number") from None


def _time(text: str, what: str, source: str, number: int) -> int:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MasterScheduleError(source, number, f"{what} {text!r} is not 'YYYY-MM-DD HH:MM:SS' (UTC)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(round(parsed.timestamp()))


_SITE_HEADER = f"#{'Site':<16}{'Telescope':<16}{'Latitude [deg]':>15} {'Longitude [deg]':>15} {'Elevation [m]':>15}"
_COLUMNS = (
    f"#{'Start time UTC':>20} {'Stop time UTC':>20} {'Start MJD':>15} {'Stop MJD':>14} {'Rotation':>8} {'Patch name':<35}"
    f" {'Az min':>8} {'Az max':>8} {'El':>8} R/S {'Sun el1':>8} {'Sun az1':>8} {'Sun el2':>8} {'Sun az2':>8}"
    f" {'Moon el1':>8} {'Moon az1':>8} {'Moon el2':>8} {'Moon az2':>8} {'Phase':>5} {'Pass':>5} {'Sub':>3}"
)


def format_schedule(schedule: MasterSchedule) -> str:
    site = schedule.site
    lines = [
        _SITE_HEADER,
        f" {site.name:<15} {site.telescope:<15} {site.lat:15.3f} {site.lon:15.3f} {site.elevation:15.1f}",
        _COLUMNS,
    ]
    lines += [_format_scan(s) for s in schedule.scans]
    return "\n".join(lines) + "\n"


def _format_scan(s: MasterScan) -> str:
    sun = s.sun or (math.nan,) * 4
    moon = s.moon or (math.nan,) * 4
    return (
        f" {_stamp(s.start):>20} {_stamp(s.stop):>20} {mjd(s.start):15.6f} {mjd(s.stop):14.6f} {s.rotation:8.2f} {s.name:<35}"
        f" {s.az_min:8.2f} {s.az_max:8.2f} {s.el:8.2f} {'R' if s.rising else 'S':>3}"
        + "".join(f" {v:8.2f}" for v in (*sun, *moon))
        + f" {s.phase if s.phase is not None else math.nan:5.2f} {s.pass_number or 0:5d} {s.sub or 0:3d}"
    )


def _stamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def mjd(seconds: float) -> float:
    return seconds / 86400.0 + MJD_UNIX_EPOCH
