"""The `sat` policy's plans, read and checked: the CMB plan, the calibration-target plan, the wiregrid plan.

The column formats are schedlib's (``instrument.parse_sequence_from_toast_sat``,
``parse_cal_targets_from_toast_sat`` in both its 8- and 9-column forms, ``parse_wiregrid_targets_from_file``),
plus the toast-style SAT file the observatory scheduled its SATp1 from in 2023 (a rotation column; the
bundled ``satp1_baseline_20231031.txt``). Where schedlib is lax this is strict: a row with the wrong number
of columns, a time that does not parse, a stop not after its start, a number that is not one, an unknown
HWP direction, source or scan direction is a ``ScheduleInputError`` naming ``"<plan name>:<line>"``, and
two CMB (or two wiregrid) rows that overlap are refused naming both lines. Rows come back sorted by start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from typing import Protocol, TypeVar

from scheduler_server.observing.policies.sat import plan_columns as col
from scheduler_server.observing.policies.sat.config import AZ_RANGE, BORESIGHT_RANGE, MAX_AZ_ACCEL, MAX_AZ_SPEED
from scheduler_server.observing.policies.sat.targets import CalTarget, CmbBlock, WiregridTarget
from scheduler_server.observing.sky.ephemerides import BODIES
from scheduler_server.observing.types import ScheduleInputError

#: schedlib's SAT CMB plan (``parse_sequence_from_toast_sat``).
SAT_COLUMNS = (
    "start_utc", "stop_utc", "hwp_dir", "rotation", "az_min", "az_max", "el", "speed", "accel",
    "priority", "type", "pass", "sub", "uid", "patch",
)  # fmt: skip
#: The toast-style SAT file with a rotation column (the observatory's 2023 SATp1 baseline).
TOAST_COLUMNS = ("start_utc", "stop_utc", "rotation", "patch", "az_min", "az_max", "el", "pass", "sub")
#: schedlib's calibration-target plan, with and without the boresight rotation column.
CAL_COLUMNS_9 = ("start_utc", "stop_utc", "target", "direction", "rot", "ra", "dec", "el", "uid")
CAL_COLUMNS_8 = ("start_utc", "stop_utc", "target", "direction", "ra", "dec", "el", "uid")
WIREGRID_COLUMNS = ("start_utc", "stop_utc", "az", "el", "type", "uid", "remark")

#: schedlib's fixed calibration sources (``source.FIXED_SOURCES``), ICRS RA and Dec in degrees: a plan row
#: naming one without coordinates gets these.
FIXED_SOURCES = {
    "taua": (5.5755 * 15.0, 22.0167),
    "rcw38": (8.98 * 15.0, -47.5),
    "galcenter": (17.7611 * 15.0, -28.95),
}
#: schedlib's priority for a no-observation row (its NoObsBlock's), whatever the row's priority cell says.
NOOBS_PRIORITY = 20.0
_DIRECTIONS = {"rising": "rising", "setting": "setting", "both": None}

_DATA = "data"
#: The plans shipped with the package, by file name, and what each is.
BUNDLED = {
    "satp1_baseline_20231031.txt": "cmb",
    "sample_cmb.txt": "cmb",
    "sample_cal_targets.txt": "cal",
    "sample_wiregrid.txt": "wiregrid",
}


def read_cmb_plan(text: str, name: str) -> list[CmbBlock]:
    """The rows of a CMB plan in either format (told apart by the first data row's column count)."""
    return list(_read_cmb_cached(text, name))


def read_cal_plan(text: str, name: str) -> list[CalTarget]:
    """The rows of a calibration-target plan (9 columns with ``rot``, or 8 without; one form per file)."""
    return list(_read_cal_cached(text, name))


def read_wiregrid_plan(text: str, name: str) -> list[WiregridTarget]:
    return list(_read_wiregrid_cached(text, name))


class _Timed(Protocol):
    t0: float | None
    t1: float | None


T = TypeVar("T", bound=_Timed)


def plan_window(rows: Sequence[T], t0: float, t1: float, name: str) -> list[T]:
    """The rows touching [t0, t1]; a plan that ends at or before t0 is refused, naming the plan.

    schedlib raises a RuntimeError ("ref plan ends before t0"); here it is the client's 400. A row without
    times (a config's calibration target) touches every window.
    """
    ends = [row.t1 for row in rows if row.t1 is not None]
    if ends and max(ends) <= t0:
        raise ScheduleInputError(
            name, f"the plan ends at {_iso(max(ends))}, at or before the window's start {_iso(t0)}"
        )
    return [row for row in rows if (row.t1 is None or row.t1 > t0) and (row.t0 is None or row.t0 < t1)]


def bundled(name: str, field: str = "plan") -> str:
    """The text of a plan shipped with the package; ``field`` names the input that asked for it."""
    if name not in BUNDLED:
        raise ScheduleInputError(field, f"no bundled plan {name!r}; bundled: {', '.join(sorted(BUNDLED))}")
    return _bundled_text(name)


@lru_cache(maxsize=len(BUNDLED))
def _bundled_text(name: str) -> str:
    return files("scheduler_server.observing.policies.sat").joinpath(_DATA, name).read_text(encoding="utf-8")


@lru_cache(maxsize=16)
def _read_cmb_cached(text: str, name: str) -> tuple[CmbBlock, ...]:
    data = col.rows(text)
    if data and col.is_site_row(data[0]):
        data = data[1:]
    if not data:
        raise ScheduleInputError(name, "the CMB plan has no rows (only comments or blank lines)")
    if len(data[0].cells) == len(TOAST_COLUMNS):
        read, columns, what = _toast_row, TOAST_COLUMNS, "the toast-style SAT plan (its first row's form)"
    else:
        read, columns, what = _sat_row, SAT_COLUMNS, "schedlib's SAT CMB plan"
    return _sorted_without_overlap(data, read, columns, what, name)


def _sorted_without_overlap(data, read: Callable, columns: tuple[str, ...], what: str, name: str) -> tuple:
    parsed = []
    for row in data:
        at = col.where(name, row.line)
        parsed.append((row.line, read(col.expect_columns(row, columns, what, name), at)))
    parsed.sort(key=lambda item: (item[1].t0, item[0]))
    for (line_a, a), (line_b, b) in zip(parsed, parsed[1:], strict=False):
        if b.t0 < a.t1:
            raise ScheduleInputError(
                col.where(name, line_b),
                f"{_iso(b.t0)}..{_iso(b.t1)} overlaps line {line_a} ({_iso(a.t0)}..{_iso(a.t1)})",
            )
    return tuple(item[1] for item in parsed)


def _pointing(cells: dict[str, str], at: str) -> tuple[float, float, float]:
    az_min = col.number(cells["az_min"], "az_min", at, lo=AZ_RANGE[0], hi=AZ_RANGE[1])
    az_max = col.number(cells["az_max"], "az_max", at, lo=AZ_RANGE[0], hi=AZ_RANGE[1])
    if az_max < az_min:
        raise ScheduleInputError(at, f"az_max {cells['az_max']!r} is below az_min {cells['az_min']!r}")
    el = col.number(cells["el"], "el", at, lo=0.0, hi=90.0)
    return az_min, az_max, el


def _sat_row(cells: dict[str, str], at: str) -> CmbBlock:
    shared = _shared_columns(cells, at)  # times and pointing are judged first, as in the toast format
    speed = col.positive(cells["speed"], "speed", at, hi=MAX_AZ_SPEED)
    accel = col.positive(cells["accel"], "accel", at, hi=MAX_AZ_ACCEL)
    kind = col.text_cell(cells["type"], "type", at).lower()
    if kind not in ("cmb", "none", "1"):  # 1: schedlib's scan type 1, the constant-elevation scan planned here
        raise ScheduleInputError(at, f"type {cells['type']!r} is not CMB (or 1: a scan) or None (no observation)")
    noobs = kind == "none"
    return CmbBlock(
        **shared,
        hwp_dir=col.hwp_direction(cells["hwp_dir"], at),
        az_speed=None if noobs else speed,
        az_accel=None if noobs else accel,
        priority=NOOBS_PRIORITY if noobs else col.number(cells["priority"], "priority", at),
        subtype="noobs" if noobs else "cmb",
        tag=cells["uid"],
    )


def _toast_row(cells: dict[str, str], at: str) -> CmbBlock:
    return CmbBlock(**_shared_columns(cells, at))


def _shared_columns(cells: dict[str, str], at: str) -> dict:
    """The fields both CMB formats give: patch, times, pointing, rotation, pass and sub-pass."""
    t0, t1 = col.span(cells, at)
    az_min, az_max, el = _pointing(cells, at)
    return {
        "name": col.text_cell(cells["patch"], "patch", at),
        "t0": t0,
        "t1": t1,
        "az_min": az_min,
        "az_max": az_max,
        "el": el,
        "boresight": col.number(cells["rotation"], "rotation", at, lo=BORESIGHT_RANGE[0], hi=BORESIGHT_RANGE[1]),
        "pass_": col.optional_integer(cells["pass"], "pass", at),
        "sub_pass": col.optional_integer(cells["sub"], "sub", at),
        "origin": at,
    }


@lru_cache(maxsize=16)
def _read_cal_cached(text: str, name: str) -> tuple[CalTarget, ...]:
    data = col.rows(text)
    if not data:
        raise ScheduleInputError(name, "the calibration plan has no rows (only comments or blank lines)")
    columns = CAL_COLUMNS_9 if len(data[0].cells) == len(CAL_COLUMNS_9) else CAL_COLUMNS_8
    what = f"a calibration-target plan of {len(columns)} columns (its first row's form)"
    targets = []
    for row in data:
        at = col.where(name, row.line)
        targets.append(_cal_row(col.expect_columns(row, columns, what, name), at))
    return tuple(sorted(targets, key=lambda target: target.t0))


def _cal_row(cells: dict[str, str], at: str) -> CalTarget:
    t0, t1 = col.span(cells, at)
    source, array_query = _cal_target(cells["target"], at)
    ra = col.optional_number(cells["ra"], "ra", at, lo=-360.0, hi=360.0)
    dec = col.optional_number(cells["dec"], "dec", at, lo=-90.0, hi=90.0)
    if (ra is None) != (dec is None):
        gone, given = ("ra", "dec") if ra is None else ("dec", "ra")
        raise ScheduleInputError(
            at, f"ra and dec go together: {gone} is {cells[gone]!r}, a missing value, but {given} is given"
        )
    if ra is None and source in FIXED_SOURCES:
        ra, dec = FIXED_SOURCES[source]
    if source == "sun":
        raise ScheduleInputError(at, "the Sun is no calibration target (the sun policy keeps the telescope away)")
    if ra is None and source not in BODIES:
        known = ", ".join((*(b for b in BODIES if b != "sun"), *FIXED_SOURCES))
        raise ScheduleInputError(at, f"unknown target {source!r} without ra/dec; known: {known}")
    direction = cells["direction"].lower()
    if direction not in _DIRECTIONS:
        raise ScheduleInputError(at, f"direction {cells['direction']!r} is not one of rising, setting, both")
    rot = cells.get("rot")
    return CalTarget(
        source=source,
        array_query=array_query,
        el_bore=col.number(cells["el"], "el", at, lo=0.0, hi=90.0),
        tag=cells["uid"],
        t0=t0,
        t1=t1,
        ra=ra,
        dec=dec,
        boresight=None if rot is None else col.number(rot, "rot", at, lo=-360.0, hi=360.0),
        source_direction=_DIRECTIONS[direction],
        origin=at,
    )


def _cal_target(text: str, at: str) -> tuple[str, str]:
    """``source;wafers`` (schedlib's target cell, lower-cased): the source and the wafer focus."""
    source, sep, query = (part.strip() for part in text.lower().partition(";"))
    if not source:
        raise ScheduleInputError(at, "target is empty")
    if not sep or not query:
        raise ScheduleInputError(at, f"target {text!r} names no wafers: write 'source;ws0,ws1' (or ';left' ...)")
    wafers = [w.strip() for w in query.split(",")]
    if any(not w or not w.replace("_", "").isalnum() for w in wafers):
        raise ScheduleInputError(at, f"target {text!r}: wafers {query!r} are not a comma-separated list of names")
    return source, ",".join(wafers)


@lru_cache(maxsize=16)
def _read_wiregrid_cached(text: str, name: str) -> tuple[WiregridTarget, ...]:
    data = col.rows(text)
    if not data:
        raise ScheduleInputError(name, "the wiregrid plan has no rows (only comments or blank lines)")
    return _sorted_without_overlap(data, _wiregrid_row, WIREGRID_COLUMNS, "a wiregrid plan", name)


def _wiregrid_row(cells: dict[str, str], at: str) -> WiregridTarget:
    t0, t1 = col.span(cells, at)
    remark = cells["remark"].lower()
    if "gain" in remark:
        kind = "wiregrid_gain"
    elif "time" in remark:
        kind = "wiregrid_time_const"
    else:
        raise ScheduleInputError(
            at, f"remark {cells['remark']!r} says neither 'gain' nor 'time constant' (which wiregrid run)"
        )
    return WiregridTarget(
        kind=kind,
        t0=t0,
        t1=t1,
        az=col.number(cells["az"], "az", at),
        el=col.number(cells["el"], "el", at, lo=0.0, hi=90.0),
        origin=at,
    )


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
