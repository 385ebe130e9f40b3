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
``retry_script_failures`` is set. How an end is recorded (and the freed lane
filled in the same commit) is ``outcomes.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from scheduler_server import metrics
from scheduler_server.pipelines import jobdir as runner
from scheduler_server.pipelines.backend_errors import BackendError, InstanceGone, InstanceUnreachable
from scheduler_server.pipelines.models import (
    CANCELLED,
    FAILED,
    PROVISIONING,
    QUEUED,
    RUNNING,
    STAGING,
    SUCCEEDED,
    Instance,
    InstanceState,
    Pipeline,
)
from scheduler_server.pipelines.scheduling import abandoned
from scheduler_server.pipelines.scheduling.outcomes import AttemptOutcomes, Driver
from scheduler_server.pipelines.scheduling.pool import Pool
from scheduler_server.pipelines.secrets import SecretBox, SecretError
from scheduler_server.pipelines.settings import PipelineSettings
from scheduler_server.pipelines.storage.lease import check_side_effect
from scheduler_server.pipelines.storage.store import Store
from scheduler_server.pipelines.tasks import TASK_TYPES, PathError, resolve_in_folder
from scheduler_server.pipelines.tasks.environment import ForbiddenEnv
from scheduler_server.pipelines.timing_log import TimetestCsv
from scheduler_server.pipelines.xnat.tokens import TokenGone

log = logging.getLogger(__name__)

#: A running pipeline gets a full liveness check (not just "is there an exit code") this often.
FULL_CHECK_EVERY = 5.0
#: Launches of one attempt whose outcome was unclear while its instance answered (the job directory
#: then said "not started"), at most, before the attempt counts as an infrastructure failure.
MAX_LAUNCH_TRIES = 3


class Attempts(AttemptOutcomes):
    def __init__(
        self,
        store: Store,
        pool: Pool,
        settings: Callable[[], PipelineSettings],
        secrets: SecretBox,
        log_dir: Callable[[int, int], Path],
        timing: TimetestCsv,
    ):
        """``settings``: the current pipeline settings (a reload replaces them); ``log_dir(pipeline id,
        attempt)``: where an attempt's masked logs are kept; ``timing``: the timings CSV of ended pipelines."""
        self.store = store
        self.pool = pool
        self._settings = settings
        self.secrets = secrets
        self.log_dir = log_dir
        self.timing = timing
        self.dispatcher: Driver | None = None  # the Dispatcher driving these attempts sets itself here
        self._last_full_check: dict[int, float] = {}
        self._unreachable_since: dict[int, float] = {}
        self._launch_tries: dict[int, int] = {}
        self.reaper = abandoned.Reaper(store, pool, settings)
        self.tokens = None  # xnat.tokens.Tokens, set by the service: listed XNAT hosts' alias tokens
        self.workflows = None  # xnat.workflows.Workflows, set by the service: status back in XNAT

    @property
    def settings(self) -> PipelineSettings:
        return self._settings()

    def _rows(self, pipeline_id: int) -> tuple[Pipeline | None, Instance | None]:
        pipeline = self.store.get_pipeline(pipeline_id)
        instance = self.pool.get(pipeline.instance_id) if pipeline and pipeline.instance_id else None
        return pipeline, instance

    # --- start ----------------------------------------------------------------------

    def start(self, pipeline_id: int, fresh: bool = False, snapshot: tuple[Pipeline, Instance] | None = None) -> None:
        """Stage and launch on the assigned (ready) instance.

        ``fresh``: the dispatcher moved it to staging just now. Otherwise a pipeline
        found in staging may have been launched by a process that died, or by a launch
        whose answer was cut off: the job directory is asked first, and a launched
        attempt is re-attached (its result counted), never launched a second time.
        ``snapshot``: the rows as the dispatcher just committed them.
        """
        pipeline, instance = snapshot if snapshot is not None else self._rows(pipeline_id)
        if pipeline is None or pipeline.status not in (PROVISIONING, STAGING) or pipeline.cancel_requested:
            return
        attempt = pipeline.attempt
        if instance is None or not instance.info:
            return self.infra_failure(pipeline_id, "instance lost before staging", attempt)
        if pipeline.status == PROVISIONING and (instance.state != InstanceState.BUSY or not instance.ready_at):
            return  # not (or no longer) ready for it: the dispatcher starts it when it is
        directory = runner.job_dir(self.settings.remote_base_folder, pipeline.id, attempt)
        launching = False
        try:
            executor = self.pool.executor(instance)
            if pipeline.status == STAGING and not fresh and self._settled_before(pipeline, executor, directory):
                return
            if pipeline.status == PROVISIONING:
                ready_at = max(instance.ready_at or 0, pipeline.updated_at)
                reason = f"instance {instance.id} ready"
                self._set(pipeline_id, STAGING, reason, fence=attempt, instance_ready_at=ready_at, job_dir=directory)
            staged = self._prepare_or_fail(pipeline)
            if staged is None:
                return
            # A cancel that arrives from here on finds the pipeline running and kills it. The end is
            # this attempt's: heard after a later attempt began, it is ignored.
            on_exit = lambda code: self.dispatcher.poll_soon(pipeline_id, code, attempt)  # noqa: E731
            launching = True
            check_side_effect()  # a leader whose lease lapsed launches nothing
            runner.stage_and_launch(executor, directory, *staged, on_exit)
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
        metrics.pipeline_started(pipeline.created_at if pipeline.started_at is None else None)

    def _settled_before(self, pipeline: Pipeline, executor, directory: str) -> bool:
        """A pipeline found in staging (a restart, a launch whose answer was lost): True if its job
        directory settles what happens (re-attached, looked at again later, or given up)."""
        state = runner.status(executor, directory)
        if state.state == "starting":  # a launch under way whose answer we lost: look again
            self._launch_unclear(pipeline, "its launcher is still starting it")
            return True
        self._unreachable_since.pop(pipeline.id, None)
        if state.state in ("running", "exited", "lost", "killed"):
            self._reattach(pipeline, "re-attached: its job directory says it was launched")
            return True
        if self._launch_tries.get(pipeline.id, 0) >= MAX_LAUNCH_TRIES:
            self.infra_failure(pipeline.id, f"launch failed {MAX_LAUNCH_TRIES} times", pipeline.attempt)
            return True
        return False

    def _reattach(self, pipeline: Pipeline, reason: str) -> None:
        self._launch_tries.pop(pipeline.id, None)
        self._set(pipeline.id, RUNNING, reason, fence=pipeline.attempt, started_at=pipeline.started_at or time.time())
        metrics.pipeline_started(pipeline.created_at if pipeline.started_at is None else None)  # it did start
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

    def _prepare_or_fail(self, pipeline: Pipeline):
        """(script, files, command, secret) to stage; None if it cannot be, the pipeline then failed."""
        try:
            task = TASK_TYPES[pipeline.type]
            folder = Path(self.settings.local_scripts_folder)
            script = (pipeline.script, resolve_in_folder(folder, pipeline.script))
            files = [(name, resolve_in_folder(folder, name)) for name in pipeline.spec.get("files") or []]
            secret = self.secrets.decrypt(pipeline.secret) if pipeline.secret else None
            spec = pipeline.spec
            if pipeline.token_id is not None and self.tokens is not None:  # its token as stored now (renewals)
                alias, secret = self.tokens.credentials(pipeline.id)
                spec = {**spec, "xnat_alias": alias}
            return script, files, task.checked_command(spec, self.settings), secret
        except (PathError, SecretError, ForbiddenEnv, OSError, TokenGone) as exc:
            # The script or a file left LOCAL_SCRIPTS_FOLDER since submission, the key changed, or the site
            # no longer allows a variable it sets: not retryable.
            self._final(pipeline.id, FAILED, f"cannot stage: {exc}", instance_ok=True, attempt=pipeline.attempt)
            return None

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
        pipeline, instance = snapshot if snapshot is not None else self._rows(pipeline_id)
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
                    check_side_effect()
                    healthy = runner.kill(executor, pipeline.job_dir, self.settings.kill_grace)
                    self._collect(pipeline)
            except BackendError as exc:
                healthy = False
                log.warning("pipeline %s: could not kill its process: %s", pipeline_id, exc)
        # A kill not confirmed: the instance is deleted rather than reused, and the reaper finishes the kill.
        self._final(pipeline_id, to, reason, instance_ok=healthy, attempt=pipeline.attempt, abandon=not healthy)
