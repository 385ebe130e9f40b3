"""The database cannot serve now: ``StoreUnavailable``, and what a driver error means to an operator.

A read-only file or file system, a full disk, a corrupt file, a database server
that is down or refuses writes: none of these is a bug or a client mistake, so
the web layer answers 503 with the reason, and start-up stops with it on one line.
Anything else a driver raises stays what it was (a bug: a 500 with a request id).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

#: SQLite result codes (and extended-code prefixes) that mean the database, not the statement, is at fault.
_SQLITE_UNAVAILABLE = {
    "SQLITE_READONLY": "read-only",
    "SQLITE_FULL": "disk full",
    "SQLITE_CORRUPT": "corrupt (database disk image is malformed)",
    "SQLITE_NOTADB": "not a database (corrupt, or not an SQLite file)",
    "SQLITE_CANTOPEN": "cannot be opened",
    "SQLITE_IOERR": "I/O error",
    "SQLITE_PERM": "permission denied",
    "SQLITE_BUSY": "locked by another process for too long",
}

#: PostgreSQL SQLSTATE classes and codes with the same meaning.
_POSTGRES_UNAVAILABLE = {
    "08": "connection lost or refused",
    "53": "out of resources (disk full, memory or connections)",
    "57P": "the server is shutting down or not accepting connections",
    "25006": "read-only (a hot standby or default_transaction_read_only)",
    "55P03": "a lock held elsewhere for too long (a process frozen inside a transaction?)",
    "XX001": "corrupt data",
    "XX002": "corrupt index",
}


class StoreUnavailable(Exception):
    """The pipeline database cannot take this request now; ``reason`` says why, on one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def database_name(url: str) -> str:
    """How messages name the database: the SQLite file's path, or the URL without its password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(Path(parsed.database or ":memory:"))
    return parsed.render_as_string(hide_password=True)


def unavailable_reason(exc: DBAPIError, url: str) -> str | None:
    """``pipelines database <name>: <problem>`` if ``exc`` means the database is unusable, else None."""
    problem = _sqlite_problem(exc, url) if url.startswith("sqlite") else _postgres_problem(exc)
    if problem is None:
        return None
    return f"pipelines database {database_name(url)}: {problem}"


def file_system_hint(path: Path) -> str | None:
    """Why files under ``path``'s directory cannot be written, when the file system says so."""
    try:
        info = os.statvfs(path.parent)
    except OSError:
        return None
    if info.f_flag & os.ST_RDONLY:
        return f"{path.parent} is on a read-only file system"
    if info.f_bavail * info.f_frsize < 64 * 1024:
        return f"no space left on the device of {path.parent}"
    return None


def _sqlite_problem(exc: DBAPIError, url: str) -> str | None:
    name = getattr(exc.orig, "sqlite_errorname", "") or ""
    problem = next((text for code, text in _SQLITE_UNAVAILABLE.items() if name.startswith(code)), None)
    if problem is None:
        return None
    database = make_url(url).database
    hint = file_system_hint(Path(database)) if database and database != ":memory:" else None
    if hint:
        return f"{problem} ({hint})"
    # Otherwise SQLite's own words help (a read-only or unopenable file is its, or its directory's, mode),
    # except where they only repeat the problem.
    return problem if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_FULL")) else f"{problem} ({exc.orig})"


def is_lock_wait(exc: BaseException) -> bool:
    """PostgreSQL gave up a lock wait (lock_timeout): contention, not a database that cannot take writes."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "55P03"


def _postgres_problem(exc: DBAPIError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)
    if state is None:
        # No SQLSTATE: the driver never reached the server (refused, DNS, timeout).
        return f"cannot connect ({_first_line(exc.orig)})" if isinstance(exc, OperationalError) else None
    for prefix in sorted(_POSTGRES_UNAVAILABLE, key=len, reverse=True):
        if state.startswith(prefix):
            return f"{_POSTGRES_UNAVAILABLE[prefix]} ({_first_line(exc.orig)})"
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
