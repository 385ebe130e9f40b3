"""The dispatcher's assignments: by its loop, and in a caller's write transaction (a submission's,
a pipeline's end) so that what can start now starts without a second transaction or a wait.

A mixin of ``Dispatcher`` (its reservations, workers and leadership). In a caller's transaction the
assignment is fenced explicitly (``Fence.check``: the web thread is not fenced itself); a process
that does not lead tells the leader instead (``storage/wake.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from scheduler_server.pipelines.scheduling import assignment
from scheduler_server.pipelines.scheduling.assignment import Assigned
from scheduler_server.pipelines.storage.errors import is_lock_wait
from scheduler_server.pipelines.storage.lease import LeaseLost

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Busy(Exception):
    """A planned pipeline still has a job running: roll the assignment back, the loop assigns it."""


class Assigning:
    def assign_queued(self, now: float, known_queued: bool = False) -> bool:
        """Assign what can be; True if a pipeline was started on a ready instance. ``known_queued``:
        a wake-up from another process (most often its submission) says there may be work, so the
        write transaction goes first, without the plain read that spares the idle ticks a write."""
        limit = self.pool.limit()
        if not known_queued:  # a plain read first: most ticks have nothing to assign and need no write
            _, queued = self.store.queue_view(now, self.settings.max_active_pipelines + limit)
            if not queued:
                return False
        assigned = None
        try:
            with self.store.write() as session:
                assigned = self._assign_and_reserve(session, now, limit)
        except _Busy:
            return False
        except BaseException:
            self.drop(assigned)
            raise
        self.carry_out(assigned)
        return bool(assigned and assigned.start)

    def commit_and_assign(
        self, write: Callable[[Callable[[Session], None]], T], committed: Callable[[T], bool] | None = None
    ) -> tuple[T, bool]:
        """Assign in a caller's write transaction: a submission's (the assignment commits with the
        insert) or a pipeline's end (the freed lane is filled in the same commit). Nothing waits for
        a second transaction or for this loop's tick.

        ``write(assign)`` runs the transaction (retrying it, maybe) and calls ``assign(session)`` in
        it; once it has committed, and ``committed(result)`` says it changed something, what was
        assigned is booted and started. Returns what ``write`` returned and whether this process
        assigned (False when it does not dispatch or assigning failed: this loop assigns as usual)."""
        planned: list[Assigned | None] = []
        notified: list[bool] = []  # not leading: the leader was told in the transaction (True) or is told after it

        def assign(session: Session) -> None:
            for earlier in planned:  # planned by a try of the transaction that did not commit
                self.drop(earlier)
            assigned, led = self._assign_in(session, time.time())
            planned[:] = [assigned]
            notified[:] = [] if led else [self.waker.notify_in(session)]

        try:
            result = write(assign)
        except BaseException:
            for assigned in planned:
                self.drop(assigned)
            raise
        for assigned in planned:
            if committed is None or committed(result):
                self.carry_out(assigned)
            else:  # the try that planned did not commit
                self.drop(assigned)
        if notified and not notified[0]:
            self.waker.poke()  # SQLite: a datagram to the leader, now that the rows are committed
        return result, bool(notified) or any(assigned is not None for assigned in planned)

    def _assign_in(self, session: Session, now: float) -> tuple[Assigned | None, bool]:
        """What was assigned (None when nothing was or assigning failed), and whether this process
        leads: then the transaction holds the lease's fence check (``Fence.check``) too."""
        fence = self.recovered_fence()
        if fence is None or self._stop.is_set():
            return None, False
        assigned = None
        try:
            with session.begin_nested():  # a failure here must not lose the caller's change
                fence.check(session)
                assigned = self._assign_and_reserve(session, now, self.pool.limit())
        except LeaseLost:
            return None, False
        except Exception as exc:  # noqa: BLE001 - the loop's next tick assigns them
            self.drop(assigned)
            if isinstance(exc, StaleDataError):  # a row changed under us (PostgreSQL): an expected race
                log.info("assigning pipelines in a caller's transaction lost a race: %s", exc)
            elif is_lock_wait(exc):  # PostgreSQL's lock_timeout: contention, one line (the next tick assigns)
                log.warning(
                    "assigning pipelines in a caller's transaction gave up waiting for a lock: %s",
                    str(exc.orig).splitlines()[0],
                )
            elif not isinstance(exc, _Busy):
                log.exception("assigning pipelines in a caller's transaction failed")
            return None, True
        return assigned, True

    def _assign_and_reserve(self, session: Session, now: float, limit: int) -> Assigned | None:
        """Assign in ``session``, and reserve the pipelines to start: until their start jobs are
        submitted, the loop must not drive them itself. One with a job of its own still running
        (a retry returning) is left to the loop (_Busy rolls the assignment back)."""
        busy = lambda pipeline_id: self.busy(("pipeline", pipeline_id))  # noqa: E731
        assigned = assignment.assign(session, self.store, self.pool, self.settings, now, limit, busy, self._turns)
        if assigned is None:
            return None
        keys = {("pipeline", p.id) for p, _ in assigned.start}
        with self._lock:
            if keys & self._in_flight:
                raise _Busy
            self._in_flight |= keys
        return assigned

    def carry_out(self, assigned: Assigned | None) -> None:
        """Boot and start what was assigned, once its transaction has committed."""
        if not assigned:
            return
        for instance_id in assigned.boot:
            self.submit(("instance", instance_id), self._boot, instance_id)
        fence = self.leadership.current()
        if fence is None:  # lost meanwhile: whoever leads now starts them
            return self.drop(assigned)
        for pipeline, instance in assigned.start:  # the key stays reserved into the job, which frees it
            key = ("pipeline", pipeline.id)
            try:
                snapshot = (pipeline, instance)
                self._workers.submit(self._job, key, self.attempts.start, pipeline.id, True, snapshot, fence=fence)
            except (RuntimeError, AttributeError):  # shut down meanwhile: a restart re-attaches it
                with self._lock:
                    self._in_flight.discard(key)

    def drop(self, assigned: Assigned | None) -> None:
        """Give up the reservations made for what was assigned (its transaction did not commit)."""
        if assigned:
            with self._lock:
                self._in_flight.difference_update(("pipeline", p.id) for p, _ in assigned.start)
