"""The one dispatcher loop: decides what happens next; worker threads do the blocking backend work.

Only the process holding the database lease dispatches (several gunicorn
workers, or several hosts on one PostgreSQL, still make one dispatcher). Each
tick it:

1. hands every active pipeline the job its state needs (cancel, start, poll, timeout),
2. assigns queued pipelines (priority, then FIFO; backoff respected) to idle or
   booting instances while fewer than MAX_ACTIVE_PIPELINES are active, creating
   instances up to MAX_INSTANCES,
3. boots spare instances ahead for the rest of the queue (look-ahead),
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

from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from scheduler_server.pipelines.jobdir import job_dir
from scheduler_server.pipelines.models import (
    BOOTING,
    BUSY,
    DELETING,
    IDLE,
    PROVISIONING,
    QUEUED,
    RUNNING,
    STAGING,
    Instance,
    Pipeline,
)
from scheduler_server.pipelines.storage.errors import StoreUnavailable
from scheduler_server.pipelines.storage.store import new_holder_id

log = logging.getLogger(__name__)

#: Longest a used-up instance's delete waits for pipelines being started (seconds).
DELETE_YIELD = 2.0


class _Busy(Exception):
    """A planned pipeline still has a job running: roll the assignment back, the loop assigns it."""


class Dispatcher:
    def __init__(self, service):
        self.service = service
        self.store = service.store
        self.pool = service.pool
        self.attempts = service.attempts
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

    @property
    def settings(self):
        return self.service.settings.pipelines

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
            if instance.state == BOOTING:
                self.submit(("instance", instance.id), self._boot, instance.id)
            elif instance.state == DELETING:
                self.submit(("instance", instance.id), self.pool.destroy, instance.id)

    # --- one tick -------------------------------------------------------------------

    def tick(self, now: float) -> None:
        # Assign first: a fresh submission should not wait for the bookkeeping below. When it
        # started something, the bookkeeping waits for the next tick (the start job's end wakes
        # the loop) instead of competing with the start for the interpreter.
        if self._assign(now) and now - self._last_full_tick < self.settings.poll_interval:
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
        if any(i.state == IDLE and (i.idle_since or 0) + timeout <= now for i in instances.values()):
            for instance_id in self.pool.expire_idle(now):
                self.submit(("instance", instance_id), self.pool.destroy, instance_id)
        # Deleting is not urgent: it waits while a pipeline is being staged and launched (they
        # would compete for the CPU and the network), but not for long.
        starting = any(p.status == STAGING for p in active)
        for instance in instances.values():
            if instance.state == DELETING and not (starting and now - instance.updated_at < DELETE_YIELD):
                self.submit(("instance", instance.id), self.pool.destroy, instance.id)
        if now - self._last_sweep >= self.settings.reconcile_interval:
            self._last_sweep = now
            self.submit(("sweep",), self.pool.sweep)
        if now - self._last_reap >= max(self.settings.poll_interval, self.settings.connection_retry_interval):
            self._last_reap = now
            self.submit(("reap",), self.attempts.reaper.sweep)

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
            elif instance.state == BUSY and instance.ready_at:
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

    def _assign(self, now: float) -> bool:
        """Assign what can be; True if a pipeline was started on a ready instance."""
        limit = self.pool.limit()
        _, queued = self.store.queue_view(now, self.settings.max_active_pipelines + limit)
        if not queued:  # a plain read first: most ticks have nothing to assign and need no write
            return False
        with self.store.write() as session:
            plan = self._plan(session, now, limit)
        return self._carry_out(plan)

    def assign_in(self, session, now: float) -> tuple[list[str], list[tuple[Pipeline, Instance]]] | None:
        """Assign in the caller's write transaction: a submission's (the assignment commits with the
        insert) or a pipeline's end (the freed lane is filled in the same commit). Nothing waits for
        a second transaction or for this loop's tick. After the commit the caller passes the result
        to ``carry_out`` (or to ``drop`` if the commit failed). None when this process does not
        dispatch, there was nothing to assign or assigning failed (this loop then assigns as usual)."""
        if not self._leading or self._stop.is_set():
            return None
        reserved: set[Hashable] = set()
        try:
            with session.begin_nested():  # a failure here must not lose the caller's change
                plan = self._plan(session, now, self.pool.limit())
                if plan is None:
                    return None
                # Until the start jobs are submitted, the loop must not drive these pipelines itself;
                # one with a job of its own still running (a retry returning) is left to the loop.
                keys = {("pipeline", p.id) for p, _ in plan[1]}
                with self._lock:
                    if keys & self._in_flight:
                        raise _Busy
                    self._in_flight |= keys
                    reserved = keys
        except Exception as exc:  # noqa: BLE001 - the loop's next tick assigns them
            with self._lock:
                self._in_flight -= reserved
            if isinstance(exc, StaleDataError):  # a row changed under us (PostgreSQL): an expected race
                log.info("assigning pipelines in a caller's transaction lost a race: %s", exc)
            elif not isinstance(exc, _Busy):
                log.exception("assigning pipelines in a caller's transaction failed")
            return None
        return plan

    def carry_out(self, plan) -> None:
        """Boot and start what ``assign_in`` planned, once its transaction has committed."""
        if not plan:
            return
        boot, ready = plan
        for instance_id in boot:
            self.submit(("instance", instance_id), self._boot, instance_id)
        for pipeline, instance in ready:  # the key stays reserved into the job, which frees it
            key = ("pipeline", pipeline.id)
            try:
                self._workers.submit(self._job, key, self.attempts.start, pipeline.id, True, (pipeline, instance))
            except (RuntimeError, AttributeError):  # shut down meanwhile: a restart re-attaches it
                with self._lock:
                    self._in_flight.discard(key)

    def drop(self, plan) -> None:
        """Give up the reservations ``assign_in`` made."""
        if plan:
            with self._lock:
                self._in_flight.difference_update(("pipeline", p.id) for p, _ in plan[1])

    def _plan(self, session, now: float, limit: int):
        """In the write transaction ``session``: move queued pipelines onto instances; return the
        instances to boot and the (pipeline, ready instance) pairs to start once it commits (None if
        nothing is queued). The queue is read here, under the assignment lock: a view read before
        could be out of date (a pipeline's end may have assigned meanwhile) and planning on it would
        exceed MAX_ACTIVE_PIPELINES or boot spares for pipelines that already have an instance."""
        settings = self.settings
        self.store.lock_assignments(session)
        active, queued = self.store.queue_view(now, settings.max_active_pipelines + limit, session=session)
        if not queued:
            return None
        free = settings.max_active_pipelines - active
        boot: list[str] = []
        ready: list[tuple[Pipeline, Instance]] = []
        live = list(session.scalars(select(Instance).where(Instance.state.in_((BOOTING, IDLE, BUSY, DELETING)))))
        idle = [i for i in live if i.state == IDLE and i.pipeline_id is None and i.uses < settings.virtual_server_ttl]
        spare = [i for i in live if i.state == BOOTING and i.pipeline_id is None]
        count = len(live)
        assigned = 0
        for pipeline_id in queued:
            if assigned >= free:
                break
            if self.busy(("pipeline", pipeline_id)):
                continue  # a job of its own is still returning (a retry, a cancel): next time
            pipeline = session.get(Pipeline, pipeline_id)
            if pipeline is None or pipeline.status != QUEUED or pipeline.cancel_requested:
                continue
            if idle:
                instance = idle.pop(0)
                instance.state = BUSY
                ready.append((pipeline, instance))
            elif spare:
                instance = spare.pop(0)
            elif count < limit:
                instance = self.pool.create(session)
                boot.append(instance.id)
                count += 1
            else:
                break
            pipeline.attempt += 1
            pipeline.move(PROVISIONING, f"attempt {pipeline.attempts_used()}: instance {instance.id}", now)
            pipeline.instance_id = instance.id
            pipeline.exit_code = None
            instance.pipeline_id = pipeline.id
            instance.uses += 1
            instance.idle_since = None
            if instance.state == BUSY:  # a ready instance: staging starts now, in this transaction
                pipeline.move(STAGING, f"instance {instance.id} ready (reused)", now)
                pipeline.instance_ready_at = now
                pipeline.job_dir = job_dir(settings.remote_base_folder, pipeline.id, pipeline.attempt)
            assigned += 1
        # Look-ahead: boot for the pipelines still waiting so they find an instance ready.
        waiting = len(queued) - assigned
        ahead = min(waiting - len(spare) - len(idle), limit - count)
        for _ in range(max(0, ahead)):
            boot.append(self.pool.create(session).id)
        return boot, ready

    def _carry_out(self, plan) -> bool:
        if plan is None:
            return False
        boot, ready = plan
        for instance_id in boot:
            self.submit(("instance", instance_id), self._boot, instance_id)
        for pipeline, instance in ready:  # on a reused instance: start now rather than next tick
            self.submit(("pipeline", pipeline.id), self.attempts.start, pipeline.id, True, (pipeline, instance))
        return bool(ready)
