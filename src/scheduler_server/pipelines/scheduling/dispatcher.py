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

A submission wakes the loop at once (one on another process through ``storage/wake.py``); otherwise
it ticks every ``poll_interval``. The loop and its jobs run fenced (``storage/lease.py``): once this
process's lease lapsed or was lost, they write and launch nothing (``leadership.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

from scheduler_server import metrics
from scheduler_server.logging_setup import log_context
from scheduler_server.pipelines.models import PROVISIONING, RUNNING, STAGING, Instance, InstanceState, Pipeline
from scheduler_server.pipelines.scheduling.assigning import Assigning
from scheduler_server.pipelines.scheduling.attempts import Attempts
from scheduler_server.pipelines.scheduling.leadership import Leadership
from scheduler_server.pipelines.scheduling.pool import Pool
from scheduler_server.pipelines.settings import PipelineSettings
from scheduler_server.pipelines.storage.errors import StoreUnavailable
from scheduler_server.pipelines.storage.lease import Fence, LeaseLost, fenced, new_holder_id
from scheduler_server.pipelines.storage.store import Store
from scheduler_server.pipelines.storage.wake import Listener, Waker
from scheduler_server.pipelines.xnat.tokens import SWEEP_EVERY
from scheduler_server.pipelines.xnat.workflows import SWEEP_EVERY as WORKFLOW_SWEEP_EVERY

log = logging.getLogger(__name__)

#: Longest a used-up instance's delete waits for pipelines being started (seconds).
DELETE_YIELD = 2.0
#: Longest a follower's loop sleeps (the lease thread wakes it when this process takes the lease).
FOLLOWER_WAIT = 1.0
#: A booting instance with no boot job this long (its job died of something unexpected, or the database
#: went away under it) is booted again; after MAX_REBOOTS such boots it is marked broken instead.
BOOT_STALL = 5.0
MAX_REBOOTS = 2


class Dispatcher(Assigning):
    def __init__(
        self,
        store: Store,
        pool: Pool,
        attempts: Attempts,
        settings: Callable[[], PipelineSettings],
        waker: Waker | None = None,
    ):
        """``settings``: the current pipeline settings (a reload replaces them); ``waker``: how
        other processes wake this one when it leads (``storage.wake.for_store``)."""
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
        self.waker = waker or Waker()
        self.leadership = Leadership(store, self.holder, lambda: self.settings.dispatcher_lease, self._wake.set)
        self._fence: Fence | None = None  # the leadership this loop last acted on
        self._recovered = False
        self._running = 0  # jobs running now
        self._listener: Listener | None = None
        self._last_poll: dict[int, float] = {}
        self._boot_stalls: dict[str, tuple[float | None, int]] = {}  # booting instance -> (no job since, reboots)
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
        return self.recovered_fence() is not None

    def recovered_fence(self) -> Fence | None:
        """This process's leadership once its take-over recovery is done (assigning before it, the
        backend would not know the instances it adopts then: a slot in use could be handed out)."""
        fence = self.leadership.current()
        return fence if fence is not None and fence is self._fence and self._recovered else None

    # --- thread lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._workers = ThreadPoolExecutor(self.settings.backend_threads, thread_name_prefix="pipelines-worker")
        self._thread = threading.Thread(target=self._run, name="pipelines-dispatcher", daemon=True)
        self._thread.start()
        self.leadership.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: no new job; the lease released at once (after the fenced transactions
        already open commit); running pipelines keep running on their instances (whoever leads
        next re-attaches them); jobs still running are given up to ``timeout`` s to wind down
        (they can no longer write or act, so a half-made instance is undone or left to the next
        leader's reboot of its row, never untracked)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.leadership.stop()
        self._follow(None)
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + timeout
            while self._running_jobs() and time.monotonic() < deadline:
                time.sleep(0.01)

    def _running_jobs(self) -> bool:
        with self._lock:
            return self._running > 0

    def wake(self) -> None:
        """Tick now (this process leads) or wake the process that leads."""
        self._wake.set()
        if not self.leading:
            self.waker.poke()

    def poll_soon(self, pipeline_id: int, exit_code: int | None = None, attempt: int | None = None) -> None:
        """Its job (of ``attempt``) may have ended (the executor saw its process go, and maybe read
        its exit code): poll it now, not at its next turn."""
        if not self.submit(("pipeline", pipeline_id), self.attempts.poll, pipeline_id, False, None, exit_code, attempt):
            self._last_poll[pipeline_id] = 0.0  # busy (its start job is still returning): the next tick polls
            self._wake.set()

    def submit(self, key: Hashable, fn: Callable, *args) -> bool:
        """Run ``fn(*args)`` on a worker, fenced by this process's leadership, unless a job with the
        same key is still running (or this process does not lead)."""
        fence = self.leadership.current()
        with self._lock:
            if key in self._in_flight or self._workers is None or self._stop.is_set() or fence is None:
                return False
            self._in_flight.add(key)
        try:
            self._workers.submit(self._job, key, fn, *args, fence=fence)
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._in_flight.discard(key)
            return False
        return True

    def _job(self, key: Hashable, fn: Callable, *args, fence: Fence | None = None) -> None:
        with self._lock:
            self._running += 1
        with log_context(**_log_fields(key)):  # its lines below too
            try:
                with fenced(fence):
                    fn(*args)
            except LeaseLost as exc:  # this process stopped leading: whoever leads now does it
                log.info("pipelines job %s stopped: %s", key, exc)
            except StoreUnavailable as exc:  # the database went away under the job: it runs again at a later tick
                log.warning("pipelines job %s stopped: the database is unavailable (%s)", key, exc.reason)
            except Exception:  # noqa: BLE001 - a bug in one job must not stop the others
                log.exception("pipelines job %s failed", key)
            finally:
                with self._lock:
                    self._in_flight.discard(key)
                    self._running -= 1
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
        unavailable: str | None = None  # the database's problem, logged once until it clears
        while not self._stop.is_set():
            fence = self.leadership.current()
            try:
                self._follow(fence)
                if fence is not None:
                    with fenced(fence):
                        self._wake.clear()  # before the tick: a wake during it means "tick again"
                        self.tick(time.time())
                    if unavailable is not None:
                        log.info("the pipeline database takes writes again; dispatching resumes")
                        unavailable = None
            except LeaseLost as exc:
                log.info("dispatcher tick stopped: %s", exc)
            except StoreUnavailable as exc:  # a full disk or read-only database: one line, not a traceback per tick
                if exc.reason != unavailable:
                    log.warning("dispatcher waiting for the database: %s", exc.reason)
                    unavailable = exc.reason
            except Exception:  # noqa: BLE001 - keep the loop alive through a DB hiccup
                log.exception("dispatcher tick failed")
            wait = min(self.settings.poll_interval, fence.remaining()) if fence is not None else FOLLOWER_WAIT
            self._wake.wait(max(wait, 0.001))

    def _follow(self, fence: Fence | None) -> None:
        """Act on a change of leadership: start or stop listening for wake-ups, recover on taking over."""
        if self._fence is not None and fence is not self._fence:
            self._fence.end()
            self._fence = None
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            metrics.set_leading(False)
            log.info("this process (%s) no longer dispatches pipelines", self.holder)
        if fence is not None and self._fence is None:
            self._fence, self._recovered = fence, False
            metrics.set_leading(True)
            log.info("this process (%s) now dispatches pipelines", self.holder)
        if fence is not None and not self._recovered:
            with fenced(fence):
                self._recover()
            self._recovered = True
            self._listener = self.waker.listen(self._woken)  # assigns: only once recovered

    def _woken(self) -> None:
        """Another process committed a submission: assign now on the listener's thread (as that
        submission would have in its own transaction here), not after a tick that may be under way."""
        fence = self.recovered_fence()
        started = False
        try:
            if fence is not None:
                with fenced(fence):
                    started = self.assign_queued(time.time(), known_queued=True)
        except (LeaseLost, StoreUnavailable) as exc:
            log.info("assigning on a wake-up stopped: %s", exc)
        except Exception:  # noqa: BLE001 - the loop's tick assigns them
            log.exception("assigning on a wake-up failed")
        if not started:  # as after a submission here: a start's bookkeeping waits for its job's end
            self._wake.set()  # (which wakes the loop) instead of competing with the staging for the CPU

    def _recover(self) -> None:
        try:
            leaked = self.pool.reconcile()
        except (LeaseLost, StoreUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. the cloud's API is down: the periodic sweep reconciles later
            log.warning(
                "reconciling instances on taking over failed (%s: %s); dispatching anyway", type(exc).__name__, exc
            )
            leaked = []
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
        self._watch_boots([i.id for i in instances.values() if i.state == InstanceState.BOOTING], now)
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

    def _watch_boots(self, booting: list[str], now: float) -> None:
        """Boot again a booting instance left without a boot job for BOOT_STALL s; give it up (broken:
        its pipeline is retried) after MAX_REBOOTS. (On taking over, ``_recover`` boots them all.)"""
        for gone in self._boot_stalls.keys() - set(booting):
            del self._boot_stalls[gone]
        for instance_id in booting:
            since, reboots = self._boot_stalls.get(instance_id, (None, 0))
            if self.busy(("instance", instance_id)):
                self._boot_stalls[instance_id] = (None, reboots)
            elif since is None:
                self._boot_stalls[instance_id] = (now, reboots)
            elif now - since >= BOOT_STALL:
                self._boot_stalls[instance_id] = (None, reboots + 1)
                if reboots < MAX_REBOOTS:
                    log.warning(
                        "instance %s: booting with no boot job for %.0f s; booting it again", instance_id, now - since
                    )
                    self.submit(("instance", instance_id), self._boot, instance_id)
                else:
                    why = f"its boot stopped unexpectedly {reboots + 1} times (see the log)"
                    self.submit(("instance", instance_id), self.pool.fail_boot, instance_id, why)

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


def _log_fields(key: Hashable) -> dict:
    """What a job's log records carry: the pipeline or instance it works on."""
    if isinstance(key, tuple) and len(key) == 2 and key[0] in ("pipeline", "instance"):
        return {"pipeline_id" if key[0] == "pipeline" else "instance": key[1]}
    return {}
