"""One process at a time changes the schema: a file lock beside an SQLite file, an advisory lock on PostgreSQL.

Several gunicorn workers (and later several hosts) start at once; without the
lock two of them create or migrate the same tables and one dies ("database is
locked", "relation already exists"). The lock is held while the schema is
checked, created or migrated, so the others wait and then find it done.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

from scheduler_server.pipelines.storage.errors import StoreUnavailable, file_system_hint

#: The PostgreSQL advisory lock key of schema changes (any fixed 64-bit number, not ASSIGNMENT_LOCK).
SCHEMA_LOCK = 0x5C4E3A01
#: How long a start waits for another process's migration before giving up with a clear line.
WAIT_SECONDS = 300.0


def lock_file_of(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` (created if absent) for the block; released if the process dies."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        try:  # flock needs no write access: an existing lock file of another user or on a read-only mount will do
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            hint = file_system_hint(path)
            raise StoreUnavailable(f"schema lock {path}: cannot create it ({hint or exc.strerror})") from None
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"schema lock {path}: held by another process for {WAIT_SECONDS:.0f} s"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def advisory_lock(connection: Connection) -> Iterator[None]:
    """PostgreSQL's session-level advisory lock SCHEMA_LOCK on ``connection`` for the block (no transaction left open)."""
    # Session-level, not transaction-level: the migrations commit inside the block.
    deadline = time.monotonic() + WAIT_SECONDS
    while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": SCHEMA_LOCK}).scalar():
        connection.commit()
        if time.monotonic() > deadline:
            raise StoreUnavailable(
                f"schema lock: advisory lock {SCHEMA_LOCK} held by another session for {WAIT_SECONDS:.0f} s"
            )
        time.sleep(0.05)
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK})
        connection.commit()
