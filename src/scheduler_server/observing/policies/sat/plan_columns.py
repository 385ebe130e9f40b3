"""Line-level reading shared by the sat plan readers: ``|``-separated rows with their line numbers, and
field parsers whose errors name the plan and the line (``"<plan name>:<line>"``).

schedlib reads these files with pandas (``comment='#'``, columns by position, whatever pandas makes of a
cell); here each cell is parsed on its own and a cell that is not what its column holds is refused, naming
the column and the text. Lines whose first non-blank character is ``#`` are comments; blank lines are
skipped; a ``#`` inside a row is part of the row's text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from scheduler_server.observing.types import ScheduleInputError

#: Cells that mean "not given" where a column allows it (pandas' own spellings of a missing value).
MISSING = frozenset({"", "none", "nan", "null", "-"})
MAX_CELL = 128  # characters of one cell: names (patch, uid, target, remark) go into the script, once a scan
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Row:
    """One data line of a plan: its 1-based line number in the text and its stripped cells."""

    line: int
    cells: tuple[str, ...]


def where(name: str, line: int) -> str:
    return f"{name}:{line}"


def rows(text: str) -> list[Row]:
    """Every non-comment, non-blank line of ``text``, split on ``|``."""
    found = []
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):  # a UTF-8 BOM is no cell
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        found.append(Row(number, tuple(map(str.strip, raw.split("|")))))
    return found


def is_site_row(row: Row) -> bool:
    """The toast-style file's site line: ``name | telescope | lat | lon | elevation``."""
    return len(row.cells) == 5 and all(_is_finite(cell) for cell in row.cells[2:])


def expect_columns(row: Row, columns: tuple[str, ...], what: str, name: str) -> dict[str, str]:
    """The row's cells by column name, or an error saying how many there are and which were expected."""
    if len(row.cells) != len(columns):
        raise ScheduleInputError(
            where(name, row.line),
            f"has {len(row.cells)} '|'-separated columns, expected {len(columns)} for {what}: {' | '.join(columns)}",
        )
    for column, cell in zip(columns, row.cells, strict=True):
        if len(cell) > MAX_CELL:
            raise ScheduleInputError(
                where(name, row.line), f"{column} is {len(cell):,} characters long; at most {MAX_CELL} are allowed"
            )
    return dict(zip(columns, row.cells, strict=True))


def time(text: str, column: str, at: str) -> float:
    """POSIX seconds of a UTC time written ``YYYY-MM-DD HH:MM[:SS]`` (or ISO 8601; no offset means UTC)."""
    seconds = _posix(text)
    if seconds is None:
        raise ScheduleInputError(at, f"{column} {text!r} is not a time 'YYYY-MM-DD HH:MM:SS' (UTC)")
    return seconds


@lru_cache(maxsize=8192)
def _posix(text: str) -> float | None:
    """Cached: a plan's stop times are mostly the next rows' start times."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if len(text) <= 10:  # a bare date parses, but a plan row's times have a time of day
        return None
    if parsed.tzinfo is None:
        return (parsed - _EPOCH).total_seconds()
    return parsed.timestamp()


def span(cells: dict[str, str], at: str, start: str = "start_utc", stop: str = "stop_utc") -> tuple[float, float]:
    """A row's (start, stop), stop after start."""
    t0 = time(cells[start], start, at)
    t1 = time(cells[stop], stop, at)
    if t1 <= t0:
        raise ScheduleInputError(at, f"{stop} {cells[stop]!r} is not after {start} {cells[start]!r}")
    return t0, t1


def number(text: str, column: str, at: str, *, lo: float | None = None, hi: float | None = None) -> float:
    """A finite number, within [lo, hi] when given."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ScheduleInputError(at, f"{column} {text!r} is not a number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        low = "-inf" if lo is None else f"{lo:g}"
        high = "inf" if hi is None else f"{hi:g}"
        raise ScheduleInputError(at, f"{column} {text!r} is outside [{low}, {high}]")
    return value


def optional_number(text: str, column: str, at: str, *, lo: float | None = None, hi: float | None = None):
    """``number``, or None for an empty cell or pandas' spellings of a missing value."""
    if text.lower() in MISSING:
        return None
    return number(text, column, at, lo=lo, hi=hi)


def positive(text: str, column: str, at: str, hi: float | None = None) -> float:
    value = number(text, column, at, hi=hi)
    if value <= 0:
        raise ScheduleInputError(at, f"{column} {text!r} is not a positive number")
    return value


def optional_integer(text: str, column: str, at: str) -> int | None:
    if text.lower() in MISSING:
        return None
    try:
        return int(text)
    except ValueError:
        raise ScheduleInputError(at, f"{column} {text!r} is not an integer") from None


def hwp_direction(text: str, at: str) -> bool:
    """schedlib's ``hwp_dir`` column: 1 is counter-clockwise seen from the sky (positive frequency, True);
    -1 (or 0) clockwise (False). schedlib takes anything but 1 as clockwise; any other value is refused here."""
    value = number(text, "hwp_dir", at) if _is_finite(text) else None
    if value == 1:
        return True
    if value in (-1, 0):
        return False
    raise ScheduleInputError(at, f"hwp_dir {text!r} is not a HWP direction: 1 (ccw, positive frequency) or -1 (cw)")


def text_cell(text: str, column: str, at: str) -> str:
    if not text:
        raise ScheduleInputError(at, f"{column} is empty")
    return text


def _is_finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
