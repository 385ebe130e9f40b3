"""The dispatcher lease's fence: a leader writes and acts only while it holds its lease.

A ``Fence`` is one spell of leadership of one holder. Code that runs *as leader* (the dispatcher
loop and its worker jobs) runs inside ``fenced(fence)``; then every ``Store.write`` first checks
the fence's local deadline (monotonic: when the last successful renewal was *requested*, plus the
lease, minus a margin) and raises ``LeaseLost`` past it without touching the database, and then,
inside the same transaction, checks that the lease row still names this holder and has not
expired. On PostgreSQL that read is ``SELECT ... FOR SHARE``: a take-over (an UPDATE of the row)
waits until the fenced transaction has committed. SQLite serialises writers already.

Backend side effects (provision, launch, destroy, kill) call ``check_side_effect()`` right before
they start: only the local deadline, as no database is involved. A process frozen (SIGSTOP) past
its lease and thawed therefore writes and launches nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import socket
import time
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler_server.pipelines.models import Lease

DISPATCHER_LEASE = "dispatcher"

#: Part of the lease a leader keeps in hand: it stops writing this long before its row expires
#: (covers a renewal's own duration and clock differences between hosts). At least MIN_MARGIN s.
MARGIN_FRACTION = 0.2
MIN_MARGIN = 0.5


class LeaseLost(Exception):
    """This process no longer holds the dispatcher lease (or cannot be sure it does)."""


def margin(ttl: float) -> float:
    return max(MIN_MARGIN, ttl * MARGIN_FRACTION)


class Fence:
    """One spell of leadership: ``holder`` holds lease ``name`` until ``deadline`` (time.monotonic)."""

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
        return 0.0 if self.ended else max(0.0, self.deadline - time.monotonic())

    def live(self) -> bool:
        return not self.ended and time.monotonic() < self.deadline

    def check_local(self) -> None:
        if self.ended:
            raise LeaseLost("this process no longer dispatches")
        if time.monotonic() >= self.deadline:
            raise LeaseLost("this process's dispatcher lease lapsed (not renewed in time)")

    def check(self, session: Session) -> None:
        """LeaseLost unless the lease row names this holder and is unexpired; on PostgreSQL the row
        stays share-locked until ``session``'s transaction ends."""
        self.check_local()
        query = select(Lease.holder, Lease.expires_at).where(Lease.name == self.name).with_for_update(read=True)
        row = session.execute(query).first()
        if row is None or row.holder != self.holder:
            raise LeaseLost(f"the dispatcher lease is held by {row.holder if row else 'no one'} now")
        if row.expires_at < time.time():
            raise LeaseLost("this process's dispatcher lease expired")


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
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def holder_is_dead(holder: str) -> bool:
    """A lease held by a process on this host that no longer exists can be taken at once (after kill -9)."""
    host, _, rest = holder.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
