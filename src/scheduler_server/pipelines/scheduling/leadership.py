"""Who dispatches: the dispatcher lease taken, renewed and lost on a thread of its own.

The leader renews every third of ``pipelines.dispatcher_lease`` (default 15 s). Each successful
renewal moves its fence's local deadline to *the moment the renewal was requested* + lease -
margin (``lease.margin``: a fifth of it, at least 0.5 s), so a leader whose renewals fail (the
database down or cut off) stops writing and launching before anyone could take the lease over.
A follower reads the lease row (no write) and sleeps until the row's ``expires_at`` (at most
FOLLOWER_POLL, so a released lease is seen soon), then takes it: it leads within a few ms of expiry.
A lease row naming a process of this host that no longer exists is taken at once.

A tick that takes long (a slow database, a big plan) does not delay the renewals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from scheduler_server.pipelines.storage.lease import Fence, clock, holder_is_dead, margin
from scheduler_server.pipelines.storage.store import Store

log = logging.getLogger(__name__)

#: Longest a follower sleeps between two looks at the lease row (seconds).
FOLLOWER_POLL = 1.0
#: How soon a leader whose renewal failed tries again (seconds; sooner if its deadline is nearer).
RETRY = 1.0
#: Past the row's expiry, a follower waits this much more (clock granularity; seconds).
EXPIRY_SLACK = 0.002


class Leadership:
    def __init__(self, store: Store, holder: str, ttl: Callable[[], float], changed: Callable[[], None]):
        """``ttl()``: the lease's length now; ``changed()``: called when this process gains or loses it."""
        self.store = store
        self.holder = holder
        self._ttl = ttl
        self._changed = changed
        self.fence: Fence | None = None
        self._stop = threading.Event()
        self._acquiring = threading.Lock()  # held across one take/renew and what follows from it
        self._thread: threading.Thread | None = None
        self._problem: str | None = None
        self._expires_at = 0.0  # when the lease a follower waits for expires (0: not known)

    def current(self) -> Fence | None:
        """The fence of this process's leadership, None when it does not (or can no longer be sure it does) lead."""
        fence = self.fence
        return fence if fence is not None and fence.live() else None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pipelines-lease", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop renewing; end this process's leadership and release the lease at once. The release
        waits for fenced transactions already open (PostgreSQL: their share lock on the row)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._acquiring:  # a take still under way ends first; none starts after (stop flag)
            fence, self.fence = self.fence, None
        if fence is not None:
            fence.end()
            try:
                self.store.release_lease(self.holder)
            except Exception:  # noqa: BLE001 - best effort on shutdown; the lease expires anyway
                log.warning("could not release the dispatcher lease; it lapses by itself", exc_info=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.step()
            except Exception:  # noqa: BLE001 - a bug must not stop the renewals for good
                log.exception("dispatcher lease step failed")
                delay = RETRY
            self._stop.wait(delay)

    def step(self) -> float:
        """Take, renew or watch the lease once; returns the seconds until the next step."""
        ttl = self._ttl()
        fence = self.fence
        if fence is not None and not fence.live():
            self._lose("its lease lapsed: renewals failed for too long")
            fence = None
        if fence is None and not 0 < self._expires_at <= time.time():  # woken at the expiry: take it, no read first
            wait = self._wait_as_follower()
            if wait is not None:
                return wait
        self._expires_at = 0.0
        with self._acquiring:
            if self._stop.is_set():
                return RETRY
            return self._take(ttl, fence)

    def _take(self, ttl: float, fence: Fence | None) -> float:
        requested = clock()
        try:
            held = self.store.acquire_lease(self.holder, ttl)
        except Exception as exc:  # noqa: BLE001 - the database is away: the fence's deadline decides
            reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
            if reason != self._problem:
                log.warning("could not renew or take the dispatcher lease: %s", reason)
                self._problem = reason
            return min(RETRY, fence.remaining()) if fence is not None else RETRY
        if self._problem is not None:
            log.info("the dispatcher lease can be renewed again")
            self._problem = None
        if not held:
            if fence is not None:
                self._lose("another process holds the lease")
            return 0.0  # read the row: sleep until it expires
        deadline = requested + ttl - margin(ttl)
        if fence is not None:
            fence.extend(deadline)
        else:
            self.fence = Fence(self.holder, deadline)
            self._changed()
        return ttl / 3

    def _wait_as_follower(self) -> float | None:
        """Seconds to sleep before looking again, or None if the lease may be taken now."""
        try:
            row = self.store.read_lease()
        except Exception:  # noqa: BLE001 - let the write attempt report the database's state
            return None
        if row is None:
            return None
        holder, expires_at = row
        left = expires_at - time.time()
        if holder == self.holder or left < 0 or holder_is_dead(holder):
            return None
        if left + EXPIRY_SLACK <= FOLLOWER_POLL:
            self._expires_at = expires_at
        return min(left + EXPIRY_SLACK, FOLLOWER_POLL)

    def _lose(self, why: str) -> None:
        fence, self.fence = self.fence, None
        if fence is not None:
            fence.end()
            log.warning("this process (%s) stops dispatching: %s", self.holder, why)
            self._changed()
