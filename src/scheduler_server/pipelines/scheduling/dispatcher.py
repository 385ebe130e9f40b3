"""The one dispatcher loop: decides what happens next; worker threads do the blocking backend work.

Only the process holding the database lease dispatches (several gunicorn
workers, or several hosts on one PostgreSQL, still make one dispatcher). Each
tick it:

1. hands every active pipeline the job its state needs (cancel, start, poll, timeout),
2. assigns queued pipelines (priority, then FIFO; backoff respected) to idle or
   booting instances while fewer than MAX_ACTIVE_PIPELINES are active, creating
   instances up to MAX_INSTANCES,
3. boots spare instances ahead for the rest of the queue (look-ahead; the rules of 2 and 3 are
   ``planner.py``, applied to the rows in one transaction by ``assignment.py``),
4. deletes instances idle longer than IDLE_TIMEOUT,
5. tries again, now and then, to stop attempts given up on while they may still run (``abandoned.py``).

A submission wakes the loop at once; otherwise it ticks every ``poll_interval``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from scheduler_server.pipelines.models import PROVISIONING, RUNNING, STAGING, Instance, InstanceState, Pipeline
from scheduler_server.pipelines.scheduling import assignment
from scheduler_server.pipelines.scheduling.assignment import Assigned
from scheduler_server.pipelines.scheduling.attempts import Attempts
from scheduler_server.pipelines.scheduling.pool import Pool
from scheduler_server.pipelines.settings import PipelineSettings
from scheduler_server.pipelines.storage.errors import StoreUnavailable
from scheduler_server.pipelines.storage.store import Store, new_holder_id
from scheduler_server.pipelines.xnat.tokens import SWEEP_EVERY
from scheduler_server.pipelines.xnat.workflows import SWEEP_EVERY as WORKFLOW_SWEEP_EVERY

log = logging.getLogger(__name__)

#: Longest a used-up instance's delete waits for pipelines being started (seconds).
DELETE_YIELD = 2.0

T = TypeVar("T")


class _Busy(Exception):
    """A planned pipeline still has a job running: roll the assignment back, the loop assigns it."""


class Dispatcher:
    def __init__(self, store: Store, pool: Pool, attempts: Attempts, settings: Callable[[], PipelineSettings]):
        """``settings``: the current pipeline settings (a reload replaces them)."""
        self.store = store
        self.pool = pool
        self.attempts = attempts
        attempts.dispatcher = self  # an attempt's end, and a launcher's word that its job exited, come back here
        self._settings = settings
        self.holder = new_holder_id()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: ThreadPoolExecutor | None = None
        self._in_flight: set[Hashable] = set()
        self._lock = threading.Lock()
        self._leading = False
        self._last_poll: dict[int, float] = {}
        self._last_full_tick = 0.0
        self._last_sweep = time.time()
        self._last_reap = 0.0
        self._last_token_sweep = 0.0
        self._last_workflow_sweep = 0.0
        self._turns: dict[str | None, int] = {}  # each project's last assignment, for round-robin (planner.py)

    @property
    def settings(self) -> PipelineSettings:
        return self._settings()

    @property
    def leading(self) -> bool:
        return self._leading

    # --- thread lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._workers = ThreadPoolExecutor(self.settings.backend_threads, thread_name_prefix="pipelines-worker")
        self._thread = threading.Thread(target=self._run, name="pipelines-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
        if self._leading:
            try:
                self.store.release_lease(self.holder)
            except Exception:  # noqa: BLE001 - best effort on shutdown; the lease expires anyway
                log.debug("could not release the dispatcher lease", exc_info=True)
        self._leading = False

    def wake(self) -> None:
        self._wake.set()

    def poll_soon(self, pipeline_id: int, exit_code: int | None = None, attempt: int | None = None) -> None:
        """Its job (of ``attempt``) may have ended (the executor saw its process go, and maybe read
        its exit code): poll it now, not at its next turn."""
        if not self.submit(("pipeline", pipeline_id), self.attempts.poll, pipeline_id, False, None, exit_code, attempt):
            self._last_poll[pipeline_id] = 0.0  # busy (its start job is still returning): the next tick polls
            self._wake.set()

    def submit(self, key: Hashable, fn: Callable, *args) -> bool:
        """Run ``fn(*args)`` on a worker unless a job with the same key is still running."""
        with self._lock:
            if key in self._in_flight or self._workers is None or self._stop.is_set():
                return False
            self._in_flight.add(key)
        try:
            self._workers.submit(self._job, key, fn, *args)
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._in_flight.discard(key)
            return False
        return True

    def _job(self, key: Hashable, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except StoreUnavailable as exc:  # the database went away under the job: it runs again at a later tick
            log.warning("pipelines job %s stopped: the database is unavailable (%s)", key, exc.reason)
        except Exception:  # noqa: BLE001 - a bug in one job must not stop the others
            log.exception("pipelines job %s failed", key)
        finally:
            with self._lock:
                self._in_flight.discard(key)
            self._wake.set()

    def _boot(self, instance_id: str) -> None:
        """Boot an instance; the pipeline waiting for it starts now, not at the loop's next tick."""
        pipeline_id = self.pool.boot(instance_id)
        if pipeline_id is not None:
            self.submit(("pipeline", pipeline_id), self.attempts.start, pipeline_id)

    def busy(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._in_flight

    def _run(self) -> None:
        lease_renewed = 0.0
        unavailable: str | None = None  # the database's problem, logged once until it clears
        while not self._stop.is_set():
            now = time.time()
            try:
                if now - lease_renewed > self.settings.dispatcher_lease / 3:
                    was_leading = self._leading
                    self._leading = self.store.acquire_lease(self.holder, self.settings.dispatcher_lease)
                    lease_renewed = now
                    if self._leading and not was_leading:
                        log.info("this process (%s) now dispatches pipelines", self.holder)
                        self._recover()
                if self._leading:
                    self._wake.clear()  # before the tick: a wake during it means "tick again"
                    self.tick(time.time())
                if unavailable is not None and lease_renewed == now:  # a write went through
                    log.info("the pipeline database takes writes again; dispatching resumes")
                    unavailable = None
            except StoreUnavailable as exc:  # a full disk or read-only database: one line, not a traceback per tick
                if exc.reason != unavailable:
                    log.warning("dispatcher waiting for the database: %s", exc.reason)
                    unavailable = exc.reason
            except Exception:  # noqa: BLE001 - keep the loop alive through a DB hiccup
                log.exception("dispatcher tick failed")
            self._wake.wait(self.settings.poll_interval if self._leading else self.settings.dispatcher_lease / 3)

    def _recover(self) -> None:
        leaked = self.pool.reconcile()
        if leaked:
            log.warning("deleted %d leaked instance(s): %s", len(leaked), ", ".join(leaked))
        self._last_poll.clear()
        for instance in self.pool.live():
            if instance.state == InstanceState.BOOTING:
                self.submit(("instance", instance.id), self._boot, instance.id)
            elif instance.state == InstanceState.DELETING:
                self.submit(("instance", instance.id), self.pool.destroy, instance.id)

    # --- one tick -------------------------------------------------------------------

    def tick(self, now: float) -> None:
        # Assign first: a fresh submission should not wait for the bookkeeping below. When it
        # started something, the bookkeeping waits for the next tick (the start job's end wakes
        # the loop) instead of competing with the start for the interpreter.
        if self.assign_queued(now) and now - self._last_full_tick < self.settings.poll_interval:
            return
        self._last_full_tick = now
        for pipeline_id in self.store.cancel_requested_queued():
            self.submit(("pipeline", pipeline_id), self.attempts.cancel, pipeline_id)
        active = self.store.active_pipelines()
        for gone in self._last_poll.keys() - {p.id for p in active}:
            del self._last_poll[gone]
        instances = {i.id: i for i in self.pool.live()}
        for pipeline in active:
            self._drive(pipeline, instances.get(pipeline.instance_id or ""), now)
        timeout = self.settings.idle_timeout
        if any(i.state == InstanceState.IDLE and (i.idle_since or 0) + timeout <= now for i in instances.values()):
            for instance_id in self.pool.expire_idle(now):
                self.submit(("instance", instance_id), self.pool.destroy, instance_id)
        # Deleting is not urgent: it waits while a pipeline is being staged and launched (they
        # would compete for the CPU and the network), but not for long.
        starting = any(p.status == STAGING for p in active)
        for instance in instances.values():
            if instance.state == InstanceState.DELETING and not (starting and now - instance.updated_at < DELETE_YIELD):
                self.submit(("instance", instance.id), self.pool.destroy, instance.id)
        if now - self._last_sweep >= self.settings.reconcile_interval:
            self._last_sweep = now
            self.submit(("sweep",), self.pool.sweep)
        if now - self._last_reap >= max(self.settings.poll_interval, self.settings.connection_retry_interval):
            self._last_reap = now
            self.submit(("reap",), self.attempts.reaper.sweep)
        tokens = self.attempts.tokens  # XNAT alias tokens: renewed while queued, released when done
        if tokens is not None and tokens.listed() and now - self._last_token_sweep >= SWEEP_EVERY:
            self._last_token_sweep = now
            self.submit(("xnat-tokens",), tokens.sweep)
        workflows = self.attempts.workflows  # status back in XNAT: written outside this loop's transactions
        if workflows is not None and workflows.enabled() and now - self._last_workflow_sweep >= WORKFLOW_SWEEP_EVERY:
            self._last_workflow_sweep = now
            self.submit(("xnat-workflows",), workflows.sweep)

    def _drive(self, pipeline: Pipeline, instance: Instance | None, now: float) -> None:
        key = ("pipeline", pipeline.id)
        if self.busy(key):
            return
        if pipeline.cancel_requested:
            self.submit(key, self.attempts.cancel, pipeline.id)
        elif pipeline.status == PROVISIONING:
            if instance is None:
                failed = self.pool.get(pipeline.instance_id) if pipeline.instance_id else None
                why = f": {failed.error}" if failed is not None and failed.error else ""
                self.submit(
                    key, self.attempts.infra_failure, pipeline.id, f"instance failed to come up{why}", pipeline.attempt
                )
            elif instance.state == InstanceState.BUSY and instance.ready_at:
                self.submit(key, self.attempts.start, pipeline.id)
        elif pipeline.status == STAGING:
            # After a restart or a launch whose answer was lost: start() asks the job directory first.
            self.submit(key, self.attempts.start, pipeline.id)
        elif pipeline.status == RUNNING:
            limit = pipeline.timeout or self.settings.pipeline_timeout
            if limit and pipeline.started_at and now - pipeline.started_at > limit:
                self.submit(key, self.attempts.timeout, pipeline.id)
            elif now - self._last_poll.get(pipeline.id, 0.0) >= self.settings.poll_interval:
                first = pipeline.id not in self._last_poll
                self._last_poll[pipeline.id] = now
                self.submit(key, self.attempts.poll, pipeline.id, first, (pipeline, instance))

    def assign_queued(self, now: float) -> bool:
        """Assign what can be; True if a pipeline was started on a ready instance."""
        limit = self.pool.limit()
        _, queued = self.store.queue_view(now, self.settings.max_active_pipelines + limit)
        if not queued:  # a plain read first: most ticks have nothing to assign and need no write
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

        def assign(session: Session) -> None:
            for earlier in planned:  # planned by a try of the transaction that did not commit
                self.drop(earlier)
            planned[:] = [self._assign_in(session, time.time())]

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
        return result, any(assigned is not None for assigned in planned)

    def _assign_in(self, session: Session, now: float) -> Assigned | None:
        """None when this process does not dispatch, there was nothing to assign or assigning failed."""
        if not self._leading or self._stop.is_set():
            return None
        assigned = None
        try:
            with session.begin_nested():  # a failure here must not lose the caller's change
                assigned = self._assign_and_reserve(session, now, self.pool.limit())
        except Exception as exc:  # noqa: BLE001 - the loop's next tick assigns them
            self.drop(assigned)
            if isinstance(exc, StaleDataError):  # a row changed under us (PostgreSQL): an expected race
                log.info("assigning pipelines in a caller's transaction lost a race: %s", exc)
            elif not isinstance(exc, _Busy):
                log.exception("assigning pipelines in a caller's transaction failed")
            return None
        return assigned

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
        for pipeline, instance in assigned.start:  # the key stays reserved into the job, which frees it
            key = ("pipeline", pipeline.id)
            try:
                self._workers.submit(self._job, key, self.attempts.start, pipeline.id, True, (pipeline, instance))
            except (RuntimeError, AttributeError):  # shut down meanwhile: a restart re-attaches it
                with self._lock:
                    self._in_flight.discard(key)

    def drop(self, assigned: Assigned | None) -> None:
        """Give up the reservations made for what was assigned (its transaction did not commit)."""
        if assigned:
            with self._lock:
                self._in_flight.difference_update(("pipeline", p.id) for p, _ in assigned.start)
