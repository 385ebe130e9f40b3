"""One pipeline attempt from the dispatcher's side: start, watch, finish, cancel, retry.

Each method is one job on a worker thread for one pipeline (the dispatcher
never runs two jobs for the same pipeline at once). State lives in the
database and in the job directory on the instance, so after a restart the
same methods pick up where the dead process stopped: ``start`` on a pipeline
found ``staging`` first asks the job directory whether it was launched, and
the first ``poll`` after a restart is a full liveness check.

Only infrastructure failures (``BackendError``, a launch that never came up, a
process found dead without an exit code) are retried, with exponential backoff,
up to MAX_ATTEMPTS; a script's non-zero exit is final unless
``retry_script_failures`` is set.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

from scheduler_server.pipelines import jobdir as runner
from scheduler_server.pipelines.clouds.backend import BackendError, InstanceGone, InstanceUnreachable
from scheduler_server.pipelines.logs.kept import MaskedLog
from scheduler_server.pipelines.models import (
    ACTIVE_STATES,
    BUSY,
    CANCELLED,
    FAILED,
    FINAL_STATES,
    PROVISIONING,
    QUEUED,
    RUNNING,
    STAGING,
    SUCCEEDED,
    Instance,
    Pipeline,
)
from scheduler_server.pipelines.scheduling import abandoned
from scheduler_server.pipelines.secrets import SecretError
from scheduler_server.pipelines.tasks import TASK_TYPES, PathError, resolve_in_folder
from scheduler_server.pipelines.tasks.environment import ForbiddenEnv

log = logging.getLogger(__name__)

#: A running pipeline gets a full liveness check (not just "is there an exit code") this often.
FULL_CHECK_EVERY = 5.0
#: Launches of one attempt whose outcome was unclear while its instance answered (the job directory
#: then said "not started"), at most, before the attempt counts as an infrastructure failure.
MAX_LAUNCH_TRIES = 3


class Attempts:
    def __init__(self, service):
        self.service = service
        self.store = service.store
        self.pool = service.pool
        self._last_full_check: dict[int, float] = {}
        self._unreachable_since: dict[int, float] = {}
        self._launch_tries: dict[int, int] = {}
        self.reaper = abandoned.Reaper(service)

    @property
    def settings(self):
        return self.service.settings.pipelines

    # --- start ----------------------------------------------------------------------

    def start(self, pipeline_id: int, fresh: bool = False, snapshot: tuple[Pipeline, Instance] | None = None) -> None:
        """Stage and launch on the assigned (ready) instance.

        ``fresh``: the dispatcher moved it to staging just now. Otherwise a pipeline
        found in staging may have been launched by a process that died, or by a launch
        whose answer was cut off: the job directory is asked first, and a launched
        attempt is re-attached (its result counted), never launched a second time.
        ``snapshot``: the rows as the dispatcher just committed them.
        """
        if snapshot is not None:
            pipeline, instance = snapshot
        else:
            pipeline = self.store.get_pipeline(pipeline_id)
            instance = self.pool.get(pipeline.instance_id) if pipeline and pipeline.instance_id else None
        if pipeline is None or pipeline.status not in (PROVISIONING, STAGING) or pipeline.cancel_requested:
            return
        attempt = pipeline.attempt
        if instance is None or not instance.info:
            return self.infra_failure(pipeline_id, "instance lost before staging", attempt)
        if pipeline.status == PROVISIONING and (instance.state != BUSY or not instance.ready_at):
            return  # not (or no longer) ready for it: the dispatcher starts it when it is
        directory = runner.job_dir(self.settings.remote_base_folder, pipeline.id, attempt)
        launching = False
        try:
            executor = self.pool.executor(instance)
            if pipeline.status == STAGING and not fresh:
                state = runner.status(executor, directory)
                if state.state == "starting":  # a launch under way whose answer we lost: look again
                    return self._launch_unclear(pipeline, "its launcher is still starting it")
                self._unreachable_since.pop(pipeline_id, None)
                if state.state in ("running", "exited", "lost", "killed"):
                    return self._reattach(pipeline, "re-attached: its job directory says it was launched")
                if self._launch_tries.get(pipeline_id, 0) >= MAX_LAUNCH_TRIES:
                    return self.infra_failure(pipeline_id, f"launch failed {MAX_LAUNCH_TRIES} times", attempt)
            if pipeline.status == PROVISIONING:
                ready_at = max(instance.ready_at or 0, pipeline.updated_at)
                self._set(
                    pipeline_id,
                    STAGING,
                    f"instance {instance.id} ready",
                    fence=attempt,
                    instance_ready_at=ready_at,
                    job_dir=directory,
                )
            try:
                command, script, files, secret = self._prepare(pipeline)
            except (PathError, SecretError, ForbiddenEnv, OSError) as exc:
                # The script or a file left LOCAL_SCRIPTS_FOLDER since submission, the key changed, or the site
                # no longer allows a variable it sets: not retryable.
                return self._final(pipeline_id, FAILED, f"cannot stage: {exc}", instance_ok=True, attempt=attempt)
            # A cancel that arrives from here on finds the pipeline running and kills it. The end is
            # this attempt's: heard after a later attempt began, it is ignored.
            on_exit = lambda code: self.service.dispatcher.poll_soon(pipeline_id, code, attempt)  # noqa: E731
            launching = True
            runner.stage_and_launch(executor, directory, script, files, command, secret, on_exit)
        except runner.LaunchError:  # "already launched": an earlier try of this same attempt got through
            return self._reattach(pipeline, "re-attached: an earlier try of this attempt launched it")
        except InstanceUnreachable as exc:
            # The launch message may have reached the instance: only its job directory can tell.
            self._launch_tries[pipeline_id] = self._launch_tries.get(pipeline_id, 0) + launching
            return self._launch_unclear(pipeline, exc)
        except (BackendError, OSError) as exc:
            return self.infra_failure(pipeline_id, f"staging failed: {exc}", attempt)
        self._launch_tries.pop(pipeline_id, None)
        self._set(pipeline_id, RUNNING, "script started", fence=attempt, started_at=time.time())
        self._last_full_check[pipeline_id] = time.time()

    def _reattach(self, pipeline: Pipeline, reason: str) -> None:
        self._launch_tries.pop(pipeline.id, None)
        self._set(pipeline.id, RUNNING, reason, fence=pipeline.attempt, started_at=pipeline.started_at or time.time())
        self.poll(pipeline.id, full=True, attempt=pipeline.attempt)

    def _launch_unclear(self, pipeline: Pipeline, why) -> None:
        """A launch (or the check of one) got no clear answer. The pipeline stays in staging, and the
        dispatcher's next look at it asks the job directory before launching anything; unclear for
        longer than the unreachable window, the attempt is given up, and the reaper stops whatever
        of it may run (a launcher stuck on a connection that never closed included)."""
        now = time.time()
        since = self._unreachable_since.setdefault(pipeline.id, now)
        if now - since > self._unreachable_window():
            reason = f"launch outcome unknown for {now - since:.0f} s ({why})"
            return self.infra_failure(pipeline.id, reason, pipeline.attempt, abandon=True)
        log.info(
            "pipeline %s attempt %s: launch not confirmed, will look at its job directory: %s",
            pipeline.id,
            pipeline.attempt,
            why,
        )

    def _unreachable_window(self) -> float:
        """How long an instance may not answer before its attempt is given up."""
        return max(
            3 * self.settings.poll_interval,
            self.settings.max_connection_retries * self.settings.connection_retry_interval,
        )

    def _prepare(self, pipeline: Pipeline):
        task = TASK_TYPES[pipeline.type]
        folder = Path(self.settings.local_scripts_folder)
        script = (pipeline.script, resolve_in_folder(folder, pipeline.script))
        files = [(name, resolve_in_folder(folder, name)) for name in pipeline.spec.get("files") or []]
        secret = self.service.secrets.decrypt(pipeline.secret) if pipeline.secret else None
        return task.checked_command(pipeline.spec, self.settings), script, files, secret

    # --- watch ----------------------------------------------------------------------

    def poll(
        self,
        pipeline_id: int,
        full: bool = False,
        snapshot: tuple[Pipeline, Instance | None] | None = None,
        exit_code: int | None = None,
        attempt: int | None = None,
    ) -> None:
        """Has it ended? ``snapshot``: the rows the dispatcher just read, to spare two queries per poll.
        ``exit_code``: what the job directory's ``exit_code`` says, if the executor read it already.
        ``attempt``: the attempt this poll is about (an end heard from a launcher); another is ignored."""
        if snapshot is not None:
            pipeline, instance = snapshot
        else:
            pipeline = self.store.get_pipeline(pipeline_id)
            instance = self.pool.get(pipeline.instance_id) if pipeline and pipeline.instance_id else None
        if pipeline is None or pipeline.status != RUNNING:
            return
        if attempt is not None and attempt != pipeline.attempt:
            return  # a late word from an earlier attempt: it never counts
        attempt = pipeline.attempt
        if instance is None or not instance.info:
            return self.infra_failure(pipeline_id, "lost: its instance is gone", attempt)
        now = time.time()
        last_full = self._last_full_check.get(pipeline_id)
        # "full" from the dispatcher means first sight of it; one this process started needs no such check yet.
        full = (full and last_full is None) or now - (last_full or 0.0) >= FULL_CHECK_EVERY
        try:
            executor = self.pool.executor(instance)
            code = exit_code if exit_code is not None else runner.exit_code_if_done(executor, pipeline.job_dir)
            if code is None and full:
                self._last_full_check[pipeline_id] = now
                state = runner.status(executor, pipeline.job_dir)
                if state.state == "exited":
                    code = state.exit_code if state.exit_code is not None else -1
                elif state.state not in ("running", "starting"):
                    return self.infra_failure(
                        pipeline_id, f"lost: the script's process is gone ({state.state})", attempt
                    )
            self._unreachable_since.pop(pipeline_id, None)
        except InstanceGone as exc:
            return self.infra_failure(pipeline_id, f"lost: {exc}", attempt)
        except (InstanceUnreachable, BackendError) as exc:
            since = self._unreachable_since.setdefault(pipeline_id, now)
            if now - since > self._unreachable_window():
                # Its process may still run there: given up (and fenced), it is stopped once the instance answers.
                reason = f"lost: instance unreachable for {now - since:.0f} s ({exc})"
                return self.infra_failure(pipeline_id, reason, attempt, abandon=True)
            log.info("pipeline %s: instance unreachable, will retry: %s", pipeline_id, exc)
            return
        if code is not None:
            self.finish(pipeline_id, code, instance, attempt)

    def finish(
        self, pipeline_id: int, exit_code: int, instance: Instance | None = None, attempt: int | None = None
    ) -> None:
        """Record ``exit_code`` as the result of ``attempt`` (the current one if None), if it is still current."""
        pipeline = self.store.get_pipeline(pipeline_id)  # fresh: a cancel may have come meanwhile
        if pipeline is None or pipeline.status != RUNNING or (attempt is not None and attempt != pipeline.attempt):
            return
        attempt = pipeline.attempt
        self._collect(pipeline, instance)
        if exit_code == 0:
            return self._final(
                pipeline_id, SUCCEEDED, "script exited 0", exit_code=0, instance_ok=True, attempt=attempt
            )
        reason = f"script exited {exit_code}"
        if self.settings.retry_script_failures and pipeline.attempts_used() < self.settings.max_attempts:
            return self._retry(pipeline_id, reason, exit_code=exit_code, instance_ok=True, attempt=attempt)
        self._final(pipeline_id, FAILED, reason, exit_code=exit_code, instance_ok=True, attempt=attempt)

    # --- stop -----------------------------------------------------------------------

    def cancel(self, pipeline_id: int) -> None:
        self._stop(pipeline_id, CANCELLED, "cancelled on request")

    def timeout(self, pipeline_id: int) -> None:
        pipeline = self.store.get_pipeline(pipeline_id)
        limit = pipeline.timeout if pipeline and pipeline.timeout else self.settings.pipeline_timeout
        self._stop(pipeline_id, FAILED, f"timeout: still running after {limit:g} s")

    def _stop(self, pipeline_id: int, to: str, reason: str) -> None:
        pipeline = self.store.get_pipeline(pipeline_id)
        if pipeline is None or pipeline.status not in (QUEUED, PROVISIONING, STAGING, RUNNING):
            return
        healthy = True
        if pipeline.status in (STAGING, RUNNING) and pipeline.job_dir and pipeline.instance_id:
            instance = self.pool.get(pipeline.instance_id)
            try:
                if instance is not None and instance.info:
                    executor = self.pool.executor(instance)
                    healthy = runner.kill(executor, pipeline.job_dir, self.settings.kill_grace)
                    self._collect(pipeline)
            except BackendError as exc:
                healthy = False
                log.warning("pipeline %s: could not kill its process: %s", pipeline_id, exc)
        # A kill not confirmed: the instance is deleted rather than reused, and the reaper finishes the kill.
        self._final(pipeline_id, to, reason, instance_ok=healthy, attempt=pipeline.attempt, abandon=not healthy)

    # --- outcomes -------------------------------------------------------------------

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
        def change(session, p: Pipeline):
            if p.status not in ACTIVE_STATES or (attempt is not None and p.attempt != attempt):
                return None  # fenced: only the current attempt's outcome is recorded
            if abandon:
                abandoned.record(session, p, reason)
            used = p.attempts_used()
            delay = min(self.settings.retry_backoff * (2 ** max(0, used - 1)), self.settings.retry_backoff_max)
            p.move(QUEUED, f"{reason}; retry {used + 1}/{self.settings.max_attempts} in {delay:g} s")
            p.next_attempt_at = time.time() + delay
            p.exit_code = exit_code
            instance_id, p.instance_id, p.job_dir = p.instance_id, None, None
            return self.pool.release(session, instance_id, healthy=instance_ok), instance_id

        self._after_release(self._end(pipeline_id, change), pipeline_id)

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
        def change(session, p: Pipeline):
            if p.status in FINAL_STATES or (attempt is not None and p.attempt != attempt):
                return None  # fenced: only the current attempt's outcome is recorded
            if abandon:
                abandoned.record(session, p, reason)
            p.move(to, reason)
            p.finished_at = time.time()
            if exit_code is not None:
                p.exit_code = exit_code
            instance_id = p.instance_id
            return self.pool.release(session, instance_id, healthy=instance_ok), instance_id

        outcome = self._end(pipeline_id, change)
        self._after_release(outcome, pipeline_id)
        if outcome is None:
            return  # it had already ended
        pipeline = self.store.get_pipeline(pipeline_id)
        self.service.timetest.record(pipeline)
        log.info("pipeline %s %s: %s", pipeline_id, to, reason)

    def _end(self, pipeline_id: int, change):
        """Commit ``change`` (an attempt's end, which frees its lane) together with the next
        assignment, then start what was assigned: the next pipeline does not wait for a second
        transaction and the dispatcher's tick."""
        dispatcher = self.service.dispatcher
        plans: list = []

        def change_and_assign(session, p: Pipeline):
            for plan in plans:  # planned by a try that did not commit (update_pipeline retries)
                dispatcher.drop(plan)
            plans.clear()
            outcome = change(session, p)
            if outcome is not None:
                session.flush()  # a concurrent update shows here, for update_pipeline to retry
                plans.append(dispatcher.assign_in(session, time.time()))
            return outcome

        try:
            outcome = self.store.update_pipeline(pipeline_id, change_and_assign)
        except BaseException:
            for plan in plans:
                dispatcher.drop(plan)
            raise
        for plan in plans:
            if outcome is None:  # the try that planned did not commit, and the last one found no row
                dispatcher.drop(plan)
            else:
                dispatcher.carry_out(plan)
        return outcome

    def _after_release(self, outcome, pipeline_id: int) -> None:
        self._last_full_check.pop(pipeline_id, None)
        self._unreachable_since.pop(pipeline_id, None)
        self._launch_tries.pop(pipeline_id, None)
        if outcome:
            # A lane is free (``_end`` assigned what it could in the same commit): the tick does the
            # rest, such as deleting an instance now "deleting" (after any start: a delete is not
            # urgent, a start is, and they compete for the CPU).
            self.service.dispatcher.wake()

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
        continued to the end) and remove its job directory from the instance.
        ``instance``: its row if the caller has it (it must be the pipeline's instance)."""
        if not pipeline.job_dir or not pipeline.instance_id:
            return
        if instance is None or instance.id != pipeline.instance_id:
            instance = self.pool.get(pipeline.instance_id)
        if instance is None or not instance.info:
            return
        destination = self.service.log_dir(pipeline.id, pipeline.attempt)
        try:
            executor = self.pool.executor(instance)
            secrets = self.service.secrets_of(pipeline)
            for stream in runner.STREAMS:
                read_raw = partial(runner.read_log, executor, pipeline.job_dir, stream)
                MaskedLog(destination, stream).catch_up(read_raw, secrets, final=True)
            # An instance that has run its VIRTUAL_SERVER_TTL jobs is deleted next, files and all (where
            # deleting erases): removing the job directory first would only delay the next pipeline.
            if not (self.pool.backend.destroy_erases and instance.uses >= self.settings.virtual_server_ttl):
                executor.remove_tree(pipeline.job_dir)
        except (BackendError, OSError, SecretError) as exc:
            log.warning("pipeline %s: could not fetch its logs: %s", pipeline.id, exc)
