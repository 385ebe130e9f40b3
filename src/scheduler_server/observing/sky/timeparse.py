"""Parsing of the schedule window's times.

The seed writes "YYYY-MM-DD HH:MM"; any ISO 8601 form is accepted too. A time
without an offset is UTC, never the machine's local time: the original server
shifted its results by the host's UTC offset.
"""

from __future__ import annotations

from datetime import UTC, datetime

ACCEPTED_FORMATS = '"YYYY-MM-DD HH:MM" (UTC) or ISO 8601 such as "2022-01-01T12:00:00Z" or "2022-01-01T12:00+02:00"'


class TimeFormatError(ValueError):
    pass


def parse_time(value: object) -> datetime:
    """Return an aware UTC datetime, or raise TimeFormatError saying why."""
    if not isinstance(value, str):
        raise TimeFormatError(f"must be a string in the form {ACCEPTED_FORMATS}, not {type(value).__name__}")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimeFormatError(f"{value!r} is not a date and time; use {ACCEPTED_FORMATS}") from None
    if len(text) <= 10:
        # A bare date parses, but a window of whole days given as dates is almost
        # always a mistake for a schedule; insist on a time of day.
        raise TimeFormatError(f"{value!r} has no time of day; use {ACCEPTED_FORMATS}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
