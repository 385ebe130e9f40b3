"""The dispatcher lease's fence: a leader writes and acts only while it holds its lease.

A ``Fence`` is one spell of leadership of one holder. Code that runs *as leader* (the dispatcher
loop and its worker jobs) runs inside ``fenced(fence)``; then every ``Store.write`` first checks
the fence's local deadline (``clock()``: CLOCK_BOOTTIME where there is one, so a suspended host's
time counts; when the last successful renewal was *requested*, plus the lease, minus a margin) and
raises ``LeaseLost`` past it without touching the database, and then, inside the same transaction,
checks that the lease row still names this holder and has not expired.

On PostgreSQL that check first takes the shared advisory lock ``LEASE_LOCK`` (until the transaction
ends) and judges expiry by the database's clock (clock_timestamp()); a take-over takes the same lock
exclusively, so it waits until the old holder's fenced transactions have ended, and PostgreSQL queues
lock requests fairly (a new fenced transaction waits behind a waiting take-over). The holder's own
renewal takes no lock its fenced transactions hold: it is bounded by one row update. A take-over is a
compare-and-set (UPDATE ... WHERE holder = the old holder AND expires_at = the old expiry): of two
followers at one expiry exactly one wins. SQLite serialises writers already (one host, one clock).

Backend side effects (provision, launch, destroy, kill, XNAT calls) call ``check_side_effect()`` right
before they start: only the local deadline, as no database is involved. A process frozen (SIGSTOP)
past its lease and thawed therefore writes and launches nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from scheduler_server.pipelines.models import Lease

log = logging.getLogger(__name__)

DISPATCHER_LEASE = "dispatcher"
#: PostgreSQL advisory lock: shared by fenced transactions, exclusive for a take-over.
LEASE_LOCK = 0x5C4ED01F

#: Part of the lease a leader keeps in hand: it stops writing this long before its row expires
#: (covers a renewal's own duration and clock differences between hosts). At least MIN_MARGIN s.
MARGIN_FRACTION = 0.2
MIN_MARGIN = 0.5


class LeaseLost(Exception):
    """This process no longer holds the dispatcher lease (or cannot be sure it does)."""


def margin(ttl: float) -> float:
    return max(MIN_MARGIN, ttl * MARGIN_FRACTION)


def clock() -> float:
    """Seconds of a clock that never goes back and counts suspended time (CLOCK_BOOTTIME on Linux)."""
    return time.clock_gettime(_CLOCK)


_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def db_now(session: Session) -> float:
    """Now in epoch seconds: the database's clock on PostgreSQL, this host's elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        return float(session.scalar(select(func.extract("epoch", func.clock_timestamp()))))
    return time.time()


class Fence:
    """One spell of leadership: ``holder`` holds lease ``name`` until ``deadline`` (``clock()``)."""

    def __init__(self, holder: str, deadline: float, name: str = DISPATCHER_LEASE):
        self.holder = holder
        self.name = name
        self.deadline = deadline
        self.ended = False

    def extend(self, deadline: float) -> None:
        if not self.ended:
            self.deadline = max(self.deadline, deadline)

    def end(self) -> None:
        self.ended = True

    def remaining(self) -> float:
        return 0.0 if self.ended else max(0.0, self.deadline - clock())

    def live(self) -> bool:
        return not self.ended and clock() < self.deadline

    def check_local(self) -> None:
        if self.ended:
            raise LeaseLost("this process no longer dispatches")
        if clock() >= self.deadline:
            raise LeaseLost("this process's dispatcher lease lapsed (not renewed in time)")

    def check(self, session: Session) -> None:
        """LeaseLost unless the lease row names this holder and is unexpired; on PostgreSQL no
        take-over can happen until ``session``'s transaction ends (LEASE_LOCK, shared)."""
        self.check_local()
        dialect = session.get_bind().dialect.name
        query = select(Lease.holder, Lease.expires_at).where(Lease.name == self.name)
        if dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": LEASE_LOCK})
        elif dialect != "sqlite":
            query = query.with_for_update(read=True)
        row = session.execute(query).first()
        if row is None or row.holder != self.holder:
            raise LeaseLost(f"the dispatcher lease is held by {row.holder if row else 'no one'} now")
        if row.expires_at < db_now(session):
            raise LeaseLost("this process's dispatcher lease expired")


def take(session: Session, holder: str, ttl: float, name: str = DISPATCHER_LEASE) -> bool:
    """Renew or take lease ``name`` in ``session``'s transaction; True if ``holder`` has it for ``ttl`` s."""
    row = _read(session, name)
    if row is None:
        session.add(Lease(name=name, holder=holder, expires_at=db_now(session) + ttl))
        return True  # two creators: the second one's commit fails (IntegrityError)
    if row.holder == holder:  # renewal: no lock its own fenced transactions hold
        renewed = update(Lease).where(Lease.name == name, Lease.holder == holder)
        return session.execute(renewed.values(expires_at=db_now(session) + ttl)).rowcount == 1
    if not _free(row, db_now(session)):
        return False
    if session.get_bind().dialect.name == "postgresql":  # wait for the old holder's fenced transactions
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEASE_LOCK})
    row = _read(session, name, lock=True)  # and look again
    now = db_now(session)
    if row is None or row.holder == holder or not _free(row, now):
        return False
    swap = update(Lease).where(Lease.name == name, Lease.holder == row.holder, Lease.expires_at == row.expires_at)
    if session.execute(swap.values(holder=holder, expires_at=now + ttl)).rowcount != 1:
        return False  # renewed or taken by someone else meanwhile
    log.info("taking the %s lease over from %s", name, row.holder)
    return True


def _read(session: Session, name: str, lock: bool = False):
    """(holder, expires_at) of the lease row or None; ``lock``: row-locked on databases other than
    SQLite (one writer) and PostgreSQL (LEASE_LOCK)."""
    query = select(Lease.holder, Lease.expires_at).where(Lease.name == name)
    if lock and session.get_bind().dialect.name not in ("sqlite", "postgresql"):
        query = query.with_for_update()
    return session.execute(query).first()


def _free(row, now: float) -> bool:
    return row.expires_at < now or holder_is_dead(row.holder)


_current: contextvars.ContextVar[Fence | None] = contextvars.ContextVar("dispatcher_fence", default=None)


@contextlib.contextmanager
def fenced(fence: Fence | None) -> Iterator[None]:
    """Within the block, this thread's writes and backend side effects check ``fence``."""
    token = _current.set(fence)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Fence | None:
    return _current.get()


def check_side_effect() -> None:
    """Before a backend side effect: LeaseLost if it runs as a leader whose lease lapsed."""
    fence = _current.get()
    if fence is not None:
        fence.check_local()


def new_holder_id() -> str:
    """host:pid:random:boot id:pid namespace:process start: what ``holder_is_dead`` compares."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}:{_boot_id()}:{_pid_namespace()}:{_started(os.getpid())}"


def holder_is_dead(holder: str) -> bool:
    """A lease held by a process of this very host (same boot, same pid namespace) that no longer
    exists (or whose pid now names another process) can be taken at once, e.g. after kill -9.
    Holder ids without these (an older version's) never are."""
    parts = holder.split(":")
    if len(parts) != 6 or not parts[1].isdigit():
        return False
    host, pid_text, _, boot, namespace, started = parts
    pid = int(pid_text)
    if pid == os.getpid() or host != socket.gethostname() or "" in (boot, namespace, started):
        return False
    if boot != _boot_id() or namespace != _pid_namespace():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return _started(pid) not in ("", started)  # the pid was reused by another process


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def _started(pid: int) -> str:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22), "" if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]
