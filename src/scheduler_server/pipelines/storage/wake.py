"""Waking the dispatching process from any other: a submission on a follower starts at once.

PostgreSQL: the submitting transaction runs ``pg_notify(CHANNEL, <scheduler id>)`` (delivered when
it commits); the leader holds one ``LISTEN`` connection, on a thread of its own that, for the
notifications carrying its scheduler id, drains all that have arrived and then calls ``on_wake``
once (a burst of submissions: one assignment), reconnecting when the connection drops or anything
fails (one log line), closed when leadership ends.

SQLite (one host: every process of one data directory): the leader binds a Unix datagram socket,
``<data_dir>/dispatcher.wake``; other processes send it one byte after their commit. A file left
by a leader that died is replaced by the next one (the lease says whose it is). The datagrams that
have arrived are drained before one ``on_wake``. A path too long for a socket address (about 100
bytes) is replaced by ``/tmp/scheduler-server-<uid>/<hash of the path>.wake``; that directory must be
this user's and mode 0700 (created so), otherwise nothing listens (the tick still comes). Never an
abstract name: anyone on the host could bind or send to one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import stat
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
#: Where a socket whose data directory path is too long goes (in a 0700 folder of this user).
FALLBACK_ROOT = Path("/tmp")  # noqa: S108 - the folder in it is checked: this user's, mode 0700
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
                        if self._woken(connection):
                            on_wake()
            except Exception as exc:  # noqa: BLE001 - the thread must live: reconnect
                if not failed:
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    log.warning("the wake-up connection to PostgreSQL failed (%s); reconnecting", reason)
                    failed = True
                stop.wait(LISTEN_SLICE * 2)

    def _woken(self, connection) -> bool:
        """Waits up to LISTEN_SLICE for our notification, then drains what has arrived besides."""
        notes = list(connection.notifies(timeout=LISTEN_SLICE, stop_after=1))
        if notes:
            notes += connection.notifies(timeout=0.0)
        return any(note.payload == self.payload for note in notes)


class LocalWaker(Waker):
    def __init__(self, data_path: Path):
        self.path = data_path / SOCKET_NAME
        self.address = socket_address(self.path)

    def poke(self) -> None:
        if self.address != str(self.path) and not _private_folder(Path(self.address).parent):
            return  # not a folder only we can use: not ours to send to
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # no leader listening (or its queue full): its tick comes anyway
                sock.sendto(b"w", self.address)

    def listen(self, on_wake: Callable[[], None]) -> Listener | None:
        folder = Path(self.address).parent
        if self.address != str(self.path) and not _private_folder(folder, create=True):
            log.warning("cannot listen for wake-ups at %s: not a 0700 folder of this user", folder)
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
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
        bound = os.stat(self.address).st_ino
        try:
            while not stop.is_set():
                try:
                    sock.recv(64)
                    _drain(sock)
                except TimeoutError:
                    continue
                except OSError:
                    break
                try:
                    on_wake()
                except Exception as exc:  # noqa: BLE001 - the thread must live: the next datagram wakes again
                    log.warning("a wake-up failed: %s", exc)
        finally:
            sock.close()
            with contextlib.suppress(OSError):
                if os.stat(self.address).st_ino == bound:  # still ours, not a next leader's
                    os.unlink(self.address)


def _drain(sock: socket.socket) -> None:
    """Read the datagrams already queued (a burst of submissions: one wake-up)."""
    sock.setblocking(False)
    try:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                sock.recv(64)
    finally:
        sock.settimeout(LISTEN_SLICE)


def socket_address(path: Path) -> str:
    """``path``, or, when it is too long for a socket address, a short path in this user's 0700 folder."""
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return str(path)
    digest = hashlib.sha256(os.fsencode(path.resolve())).hexdigest()[:24]
    return str(FALLBACK_ROOT / f"scheduler-server-{os.getuid()}" / f"{digest}.wake")


def _private_folder(folder: Path, create: bool = False) -> bool:
    """``folder`` exists (made if ``create``), is a directory of this user, and only it may use it."""
    if create:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def for_store(store, scheduler_id: str, data_path: Path) -> Waker:
    dialect = store.engine.dialect.name
    if dialect == "postgresql":
        return PostgresWaker(store, scheduler_id)
    if dialect == "sqlite":
        return LocalWaker(data_path)
    return Waker()
