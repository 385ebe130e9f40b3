"""The one rule for integers in paths and query strings: ASCII digits, a documented range per field.

``str.isdigit`` and ``int`` accept other scripts' digits ('٣' is 3) and
superscripts ('³' is a digit that ``int`` refuses); only ``[0-9]`` are digits
here. Every range fits the 32-bit INTEGER columns of PostgreSQL (SQLite
stores 64 bits), so a value that passes is one every store can hold.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

INT32_MAX = 2**31 - 1
#: Pipeline ids: the store's INTEGER primary key.
ID_RANGE = (1, INT32_MAX)
#: A log's byte offset (not stored): 1 TiB, which every Linux file system can seek to.
BYTE_OFFSET_MAX = 2**40 - 1

_ASCII_INTEGER = re.compile(r"-?[0-9]{1,20}")


class IntegerError(ValueError):
    """Not an integer in the field's range: the message says what the field takes."""


def parse_int(raw: str, lo: int, hi: int) -> int:
    """``raw`` as an integer in ``[lo, hi]``; IntegerError otherwise (also for non-ASCII digits and padding)."""
    if not isinstance(raw, str) or not _ASCII_INTEGER.fullmatch(raw):
        raise IntegerError(f"must be an integer from {lo} to {hi} (ASCII digits), not {_shown(raw)}")
    value = int(raw)
    if not lo <= value <= hi:
        raise IntegerError(f"must be an integer from {lo} to {hi}, not {_shown(raw)}")
    return value


def _ascii_integer(value: Any) -> Any:
    # Query strings arrive as text; the Field's ge/le then apply the range.
    if isinstance(value, str):
        if not _ASCII_INTEGER.fullmatch(value):
            raise ValueError(f"must be an integer (ASCII digits), not {_shown(value)}")
        return int(value)
    return value


#: An integer query parameter: ASCII digits only; give the range with Field(ge=..., le=...).
QueryInt = Annotated[int, BeforeValidator(_ascii_integer)]


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."
