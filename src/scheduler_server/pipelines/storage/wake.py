"""Waking the dispatching process from any other: a submission on a follower starts at once.

PostgreSQL: the submitting transaction runs ``pg_notify(CHANNEL, <scheduler id>)`` (delivered when
it commits); the leader holds one ``LISTEN`` connection, on a thread of its own that calls
``on_wake`` for each notification carrying its scheduler id, reconnecting when the connection
drops, closed when leadership ends.

SQLite (one host: every process of one data directory): the leader binds a Unix datagram socket,
``<data_dir>/dispatcher.wake``; other processes send it one byte after their commit. A file left
by a leader that died is replaced by the next one (the lease says whose it is); a path too long
for a socket address (about 100 bytes) uses Linux's abstract namespace, keyed by the path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "scheduler_server_wake"
SOCKET_NAME = "dispatcher.wake"
#: sockaddr_un holds 108 bytes on Linux, 104 on the BSDs; keep a little room.
MAX_SOCKET_PATH = 100
#: How often the listening threads look at their stop flag (seconds).
LISTEN_SLICE = 0.25


class Listener:
    """A thread waiting for wake-ups; ``close()`` stops it."""

    def __init__(self, name: str, loop: Callable[[threading.Event], None]):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=loop, args=(self._stop,), name=name, daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


class Waker:
    """How this process wakes the leader, and how the leader listens."""

    def notify_in(self, session: Session) -> bool:
        """Wake the leader when ``session`` commits; False if that needs ``poke()`` after the commit."""
        return False

    def poke(self) -> None:
        """Wake the leader now (best effort)."""

    def listen(self, on_wake: Callable[[], None]) -> Listener | None:
        return None


class PostgresWaker(Waker):
    def __init__(self, store, scheduler_id: str):
        self.store = store
        self.payload = scheduler_id
        url = make_url(store.url).set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)

    def notify_in(self, session: Session) -> bool:
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": self.payload})
        return True

    def poke(self) -> None:
        try:
            with self.store.write() as session:
                self.notify_in(session)
        except Exception as exc:  # noqa: BLE001 - a wake-up is a hint: the leader's tick comes anyway
            log.debug("could not notify the dispatching process: %s", exc)

    def listen(self, on_wake: Callable[[], None]) -> Listener:
        return Listener("pipelines-listen", lambda stop: self._listen(stop, on_wake))

    def _listen(self, stop: threading.Event, on_wake: Callable[[], None]) -> None:
        import psycopg  # the PostgreSQL driver: only needed here

        failed = False
        while not stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    if failed:
                        log.info("listening for wake-ups again")
                        failed = False
                    on_wake()  # a notification may have been missed while not listening
                    while not stop.is_set():
                        for note in connection.notifies(timeout=LISTEN_SLICE):
                            if note.payload == self.payload:
                                on_wake()
            except psycopg.Error as exc:
                if not failed:
                    log.warning("the wake-up connection to PostgreSQL failed (%s); reconnecting", exc)
                    failed = True
                stop.wait(LISTEN_SLICE * 2)


class LocalWaker(Waker):
    def __init__(self, data_path: Path):
        self.path = data_path / SOCKET_NAME
        self.address = socket_address(self.path)

    def poke(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # no leader listening (or its queue full): its tick comes anyway
                sock.sendto(b"w", self.address)

    def listen(self, on_wake: Callable[[], None]) -> Listener | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if isinstance(self.address, str):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.address)  # a former leader's (this process holds the lease now)
            sock.bind(self.address)
        except OSError as exc:
            sock.close()
            log.warning("cannot listen for wake-ups at %s: %s (submissions elsewhere wait for a tick)", self.path, exc)
            return None
        sock.settimeout(LISTEN_SLICE)
        return Listener("pipelines-listen", lambda stop: self._listen(stop, sock, on_wake))

    def _listen(self, stop: threading.Event, sock: socket.socket, on_wake: Callable[[], None]) -> None:
        bound = os.stat(self.address).st_ino if isinstance(self.address, str) else None
        try:
            while not stop.is_set():
                try:
                    sock.recv(64)
                except TimeoutError:
                    continue
                except OSError:
                    break
                on_wake()
        finally:
            sock.close()
            if bound is not None:
                with contextlib.suppress(OSError):
                    if os.stat(self.address).st_ino == bound:  # still ours, not a next leader's
                        os.unlink(self.address)


def socket_address(path: Path) -> str | bytes:
    """``path``, or on Linux an abstract address derived from it when it is too long for one."""
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH or not sys.platform.startswith("linux"):
        return str(path)
    digest = hashlib.sha256(os.fsencode(path.resolve())).hexdigest()[:24]
    return b"\0scheduler-server-wake-" + digest.encode()


def for_store(store, scheduler_id: str, data_path: Path) -> Waker:
    dialect = store.engine.dialect.name
    if dialect == "postgresql":
        return PostgresWaker(store, scheduler_id)
    if dialect == "sqlite":
        return LocalWaker(data_path)
    return Waker()
