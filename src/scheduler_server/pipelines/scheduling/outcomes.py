"""How an attempt ends: retried or final, recorded (fenced to its attempt) with the next assignment.

``AttemptOutcomes`` is the part of ``Attempts`` that writes an attempt's end: the
instance is released (reused, or deleted), a given-up attempt is handed to the
reaper, the logs are brought home, and the lane it frees is filled in the same commit.

The attempt's job directory is removed from its instance only after that commit (and
noted in it, for the reaper, in case this process dies first): removed before, a
crash in between would leave a row still "running" whose directory is gone, which
the next leader counts as lost and runs again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

from scheduler_server import metrics
from scheduler_server.pipelines import jobdir as runner
from scheduler_server.pipelines.backend_errors import BackendError
from scheduler_server.pipelines.clouds.backend import InstanceInfo
from scheduler_server.pipelines.logs.kept import MaskedLog
from scheduler_server.pipelines.models import (
    ACTIVE_STATES,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    STAGING,
    Instance,
    Pipeline,
)
from scheduler_server.pipelines.scheduling import abandoned
from scheduler_server.pipelines.scheduling.pool import Pool
from scheduler_server.pipelines.secrets import SecretBox, SecretError
from scheduler_server.pipelines.settings import PipelineSettings
from scheduler_server.pipelines.storage.store import Store
from scheduler_server.pipelines.timing_log import TimetestCsv

log = logging.getLogger(__name__)


class Driver(Protocol):
    """What the attempts ask of the dispatcher that drives them (``Dispatcher``; named here, not
    imported, since the dispatcher imports the attempts)."""

    def wake(self) -> None: ...

    def poll_soon(self, pipeline_id: int, exit_code: int | None = None, attempt: int | None = None) -> None: ...

    def commit_and_assign(self, write, committed=None) -> tuple: ...


class AttemptOutcomes:
    """Needs what ``Attempts`` sets up: its collaborators and its per-attempt bookkeeping."""

    store: Store
    pool: Pool
    secrets: SecretBox
    log_dir: Callable[[int, int], Path]
    timing: TimetestCsv
    dispatcher: Driver | None
    settings: PipelineSettings
    _last_full_check: dict[int, float]
    _unreachable_since: dict[int, float]
    _launch_tries: dict[int, int]

    def infra_failure(self, pipeline_id: int, reason: str, attempt: int | None = None, abandon: bool = False) -> None:
        """End ``attempt`` (the current one if None) for an infrastructure reason: retry or fail.
        ``abandon``: its process may still run (its instance does not answer); the reaper stops it."""
        pipeline = self.store.get_pipeline(pipeline_id)
        if (
            pipeline is None
            or pipeline.status not in ACTIVE_STATES
            or (attempt is not None and attempt != pipeline.attempt)
        ):
            return  # decided on a stale view: it ended meanwhile, or another attempt runs now
        log.warning("pipeline %s attempt %s: %s", pipeline_id, pipeline.attempt, reason)
        if pipeline.status in (STAGING, RUNNING) and not abandon:
            self._collect(pipeline)
        if pipeline.attempts_used() < self.settings.max_attempts:
            return self._retry(pipeline_id, reason, instance_ok=False, attempt=pipeline.attempt, abandon=abandon)
        reason = f"{reason} (after {pipeline.attempts_used()} attempts)"
        self._final(pipeline_id, FAILED, reason, instance_ok=False, attempt=pipeline.attempt, abandon=abandon)

    def _retry(
        self,
        pipeline_id: int,
        reason: str,
        exit_code: int | None = None,
        instance_ok: bool = True,
        attempt: int | None = None,
        abandon: bool = False,
    ) -> None:
        left: list = []

        def change(session, p: Pipeline):
            if p.status not in ACTIVE_STATES or (attempt is not None and p.attempt != attempt):
                return None  # fenced: only the current attempt's outcome is recorded
            instance_id = p.instance_id
            deleting = self.pool.release(session, instance_id, healthy=instance_ok)
            self._note_job_dir(session, p, reason, abandon, deleting, left)
            used = p.attempts_used()
            delay = min(self.settings.retry_backoff * (2 ** max(0, used - 1)), self.settings.retry_backoff_max)
            p.move(QUEUED, f"{reason}; retry {used + 1}/{self.settings.max_attempts} in {delay:g} s")
            p.next_attempt_at = time.time() + delay
            p.exit_code = exit_code
            p.instance_id, p.job_dir = None, None
            return deleting, instance_id

        outcome = self._end(pipeline_id, change)
        self._after_release(outcome, pipeline_id, left)
        if outcome is not None:
            metrics.pipeline_ended("retried")

    def _final(
        self,
        pipeline_id: int,
        to: str,
        reason: str,
        exit_code: int | None = None,
        instance_ok: bool = True,
        attempt: int | None = None,
        abandon: bool = False,
    ) -> None:
        left: list = []

        def change(session, p: Pipeline):
            if p.status in FINAL_STATES or (attempt is not None and p.attempt != attempt):
                return None  # fenced: only the current attempt's outcome is recorded
            deleting = self.pool.release(session, p.instance_id, healthy=instance_ok)
            self._note_job_dir(session, p, reason, abandon, deleting, left)
            p.move(to, reason)
            p.finished_at = time.time()
            if exit_code is not None:
                p.exit_code = exit_code
            return deleting, p.instance_id

        outcome = self._end(pipeline_id, change)
        self._after_release(outcome, pipeline_id, left)
        if outcome is None:
            return  # it had already ended
        metrics.pipeline_ended("timeout" if reason.startswith("timeout:") else to)
        pipeline = self.store.get_pipeline(pipeline_id)
        self.timing.record(pipeline)
        log.info("pipeline %s %s: %s", pipeline_id, to, reason)

    def _end(self, pipeline_id: int, change):
        """Commit ``change`` (an attempt's end, which frees its lane) together with the next
        assignment, then start what was assigned: the next pipeline does not wait for a second
        transaction and the dispatcher's tick."""

        def write(assign):
            def change_and_assign(session, p: Pipeline):
                outcome = change(session, p)
                if outcome is not None:
                    session.flush()  # a concurrent update shows here, for update_pipeline to retry
                    assign(session)
                return outcome

            return self.store.update_pipeline(pipeline_id, change_and_assign)

        # None: the last try found no row or nothing to end (an earlier try that planned did not commit).
        outcome, _ = self.dispatcher.commit_and_assign(write, committed=lambda outcome: outcome is not None)
        return outcome

    def _note_job_dir(self, session, p: Pipeline, reason: str, abandon: bool, deleting: bool, left: list) -> None:
        """In the end's transaction: hand a given-up attempt to the reaper, or note the ended attempt's
        job directory for removal after the commit (``left``; the reaper's if this process dies first).
        Not when deleting its instance (to happen next) erases it anyway."""
        left.clear()  # the transaction may be tried again
        if abandon:
            abandoned.record(session, p, reason)
        elif not (deleting and self.pool.backend.destroy_erases):
            noted = abandoned.note_ended(session, p, reason)
            if noted is not None:
                left.append((p.id, p.attempt, *noted))

    def _remove_job_dirs(self, left: list) -> None:
        """After the end is committed: remove the ended attempt's job directory, then its note."""
        for pipeline_id, attempt, info, job_dir in left:
            try:
                self.pool.backend.executor(InstanceInfo.from_dict(info)).remove_tree(job_dir)
            except (BackendError, OSError) as exc:
                log.warning("pipeline %s: could not remove %s (the reaper will): %s", pipeline_id, job_dir, exc)
                continue
            abandoned.forget(self.store, pipeline_id, attempt, job_dir)

    def _after_release(self, outcome, pipeline_id: int, left: list) -> None:
        self._last_full_check.pop(pipeline_id, None)
        self._unreachable_since.pop(pipeline_id, None)
        self._launch_tries.pop(pipeline_id, None)
        if outcome:
            # A lane is free (``_end`` assigned what it could in the same commit): the tick does the
            # rest, such as deleting an instance now "deleting" (after any start: a delete is not
            # urgent, a start is, and they compete for the CPU).
            self.dispatcher.wake()
            self._remove_job_dirs(left)

    def _set(self, pipeline_id: int, to: str, reason: str, fence: int | None = None, **values) -> None:
        """Move the pipeline to ``to``; with ``fence``, only while that attempt is still its current one."""

        def change(session, p: Pipeline):
            if fence is not None and p.attempt != fence:
                return
            p.move(to, reason)
            for key, value in values.items():
                setattr(p, key, value)

        self.store.update_pipeline(pipeline_id, change)

    def _collect(self, pipeline: Pipeline, instance: Instance | None = None) -> None:
        """Complete the attempt's masked logs at home (``masked_logs``: what live readers were served,
        continued to the end), before its end is committed (its job directory goes after: see above).
        ``instance``: its row if the caller has it (it must be the pipeline's instance)."""
        if not pipeline.job_dir or not pipeline.instance_id:
            return
        if instance is None or instance.id != pipeline.instance_id:
            instance = self.pool.get(pipeline.instance_id)
        if instance is None or not instance.info:
            return
        destination = self.log_dir(pipeline.id, pipeline.attempt)
        try:
            executor = self.pool.executor(instance)
            secrets = [self.secrets.decrypt(pipeline.secret)] if pipeline.secret else []
            for stream in runner.STREAMS:
                read_raw = partial(runner.read_log, executor, pipeline.job_dir, stream)
                MaskedLog(destination, stream).catch_up(read_raw, secrets, final=True)
        except (BackendError, OSError, SecretError) as exc:
            log.warning("pipeline %s: could not fetch its logs: %s", pipeline.id, exc)
