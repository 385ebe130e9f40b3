"""The pipeline scheduler as one object: what the web API and the CLI call.

``PipelineService(settings, data_path)`` (the configuration's pipelines
section and the server's data directory) opens the store, the key and the
backend but starts no thread; ``ensure_started()`` starts the dispatcher in the calling
process (again after a fork), so importing or building the app alone never
dispatches.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scheduler_server.pipelines import jobdir as runner
from scheduler_server.pipelines.backend_errors import BackendError
from scheduler_server.pipelines.clouds.backend import create_backend
from scheduler_server.pipelines.errors import Conflict, InvalidInput, NotFound, Unavailable
from scheduler_server.pipelines.logs.kept import MaskedLog
from scheduler_server.pipelines.models import (
    CANCELLED,
    FAILED,
    FINAL_STATES,
    LIVE_INSTANCE_STATES,
    QUEUED,
    RUNNING,
    STAGING,
    InstanceState,
    Pipeline,
)
from scheduler_server.pipelines.scheduling import untracked
from scheduler_server.pipelines.scheduling.attempts import Attempts
from scheduler_server.pipelines.scheduling.dispatcher import Dispatcher
from scheduler_server.pipelines.scheduling.pool import Pool
from scheduler_server.pipelines.scheduling.untracked import UntrackedCleanup
from scheduler_server.pipelines.secrets import SecretBox, SecretError
from scheduler_server.pipelines.settings import PipelineSettings, keep_running
from scheduler_server.pipelines.storage import census, legacy_specs, wake
from scheduler_server.pipelines.storage.errors import StoreUnavailable
from scheduler_server.pipelines.storage.migrations import SchemaError
from scheduler_server.pipelines.storage.store import Store, default_url
from scheduler_server.pipelines.tasks import TASK_TYPES, PathError, environment, resolve_in_folder
from scheduler_server.pipelines.timing_log import TimetestCsv
from scheduler_server.pipelines.xnat import verify
from scheduler_server.pipelines.xnat.settings import XnatSettings
from scheduler_server.pipelines.xnat.tokens import Tokens
from scheduler_server.pipelines.xnat.workflows import Workflows
from scheduler_server.startup_error import StartupError
from scheduler_server.validation_text import field_and_problem

log = logging.getLogger(__name__)

#: Settings that only take effect on a restart; ``reconfigure`` keeps them and names them.
RESTART_KEYS = ("backend", "database_url", "ssh_hosts", "backend_threads", "secret_key", "openstack.provisioning")


@dataclass(frozen=True)
class Submitted:
    """What became of one submitted item: queued as pipeline ``id``, or refused with ``error``."""

    index: int
    id: int | None = None
    error: InvalidInput | None = None
    warnings: tuple[str, ...] = ()  # e.g. a pipeline that may outlive its XNAT alias token

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class LogChunk:
    """Bytes ``offset`` to ``next`` of an attempt's masked stream; ``complete`` once the pipeline ended and all is read."""

    id: int
    attempt: int
    stream: str
    status: str
    offset: int
    next: int
    data: str
    complete: bool


def _open_store(data_path: Path, url: str) -> tuple[Store, str]:
    """The store and this scheduler's id; StartupError (one line naming the file) if either cannot be had."""
    try:
        data_path.mkdir(mode=0o700, parents=True, exist_ok=True)  # the key, the database, the logs
        store = Store(url)
        return store, store.scheduler_id()
    except (StoreUnavailable, SchemaError) as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(f"{exc.filename or data_path}: {exc.strerror or exc}") from None


class PipelineService:
    def __init__(self, settings: PipelineSettings, data_path: Path, xnat: XnatSettings | None = None):
        """``data_path``: the server's data directory (the key, a SQLite database, the kept logs);
        ``xnat``: the configuration's xnat section (None or no servers: the seed's behaviour)."""
        self.settings = settings
        self.xnat_settings = xnat
        self.data_path = data_path
        self.store, self.scheduler_id = _open_store(data_path, settings.database_url or default_url(data_path))
        try:
            self._assemble(settings, data_path)
        except BaseException:  # a key that does not fit (SecretError, StartupError), a bad backend setting...
            if getattr(self, "backend", None) is not None:
                self.backend.close()
            self.store.close()
            raise
        self._started_in: int | None = None
        self._start_lock = threading.Lock()

    def _assemble(self, settings: PipelineSettings, data_path: Path) -> None:
        """Everything but the store: the key (checked against the database's), the backend, the dispatcher."""
        key = settings.secret_key.get_secret_value() if settings.secret_key else None
        self.secrets = SecretBox.from_config(key, data_path, self.store.meta_setdefault)  # its fingerprint checked
        try:
            legacy_specs.hide_users_equal_to_passwords(self.store, self.secrets)
        except StoreUnavailable as exc:
            log.warning("stored pipelines not checked for a user name equal to the password: %s", exc)
        self.backend = create_backend(settings, scheduler_id=self.scheduler_id, data_dir=data_path)
        self.pool = Pool(self.store, self.backend, self.current_settings)
        self.census = partial(census.count_rows, self.store, self.backend.name)  # rows by state: GET /metrics
        self.timetest = TimetestCsv(lambda: self.settings.timetest_csv_file)
        current = self.current_settings
        self.attempts = Attempts(self.store, self.pool, current, self.secrets, self.log_dir, self.timetest)
        self.tokens = self.attempts.tokens = Tokens(self.store, self.secrets, lambda: self.xnat_settings)
        self.workflows = self.attempts.workflows = Workflows(self.store, self.tokens)  # status back in XNAT
        self.tokens.hold = self.workflows.pending  # a token outlives its pipelines' last workflow update
        self.verifier = verify.Verifier(self.tokens, current)
        self.waker = wake.for_store(self.store, self.scheduler_id, data_path)  # a follower wakes the leader
        self.dispatcher = Dispatcher(self.store, self.pool, self.attempts, current, self.waker)

    def current_settings(self) -> PipelineSettings:
        """The pipeline settings now (``reconfigure`` replaces them): what the collaborators call."""
        return self.settings

    # --- threads --------------------------------------------------------------------

    def ensure_started(self) -> None:
        if self._started_in == os.getpid():
            return
        with self._start_lock:
            if self._started_in == os.getpid():
                return
            if self._started_in is not None:  # forked: the parent's threads did not come along
                self.store.engine.dispose(close=False)
                self.dispatcher = Dispatcher(self.store, self.pool, self.attempts, self.current_settings, self.waker)
            self.dispatcher.start()
            self._started_in = os.getpid()
            atexit.register(self.stop)

    def stop(self) -> None:
        if self._started_in == os.getpid():
            self.dispatcher.stop()
            self._started_in = None
        self.backend.close()

    def close(self) -> None:
        self.stop()
        self.store.close()
        atexit.unregister(self.stop)  # closed: nothing of it is left to stop at exit (nor kept alive until then)

    # --- submit ---------------------------------------------------------------------

    def submit(self, items: list[Any]) -> list[Submitted]:
        """Validate and queue each item; one result per item, in order. Bad items do not stop good ones."""
        reports: list[Submitted] = []
        rows: list[tuple[int, Pipeline]] = []
        listed: list[verify.Item] = []
        for index, item in enumerate(items):
            try:
                pipeline, request, server = self._build(item)
                rows.append((index, pipeline))
                reports.append(Submitted(index))
                if server is not None:
                    listed.append(verify.Item(index, pipeline, request, server))
            except InvalidInput as exc:
                reports.append(Submitted(index, error=exc))
        if listed:  # XnatUnavailable from here: nothing is queued (a 503)
            self.verifier.verify(listed)
            for checked in listed:
                reports[checked.index] = Submitted(checked.index, error=checked.error, warnings=tuple(checked.warnings))
            rows = [(index, p) for index, p in rows if reports[index].error is None]
        if rows:
            # Assigned in the inserting transaction: a pipeline that can start now starts without
            # a second transaction or a wait for the dispatcher loop.
            new = [p for _, p in rows]
            insert = lambda assign: self.store.add_pipelines(new, then=assign)  # noqa: E731
            with verify.dismissing(listed):  # the insert failed: no Queued workflow entry left for them
                (ids, _), assigned = self.dispatcher.commit_and_assign(insert)
            for (index, _), pipeline_id in zip(rows, ids):
                reports[index] = Submitted(index, id=pipeline_id, warnings=reports[index].warnings)
            if not assigned:
                # Assigned nothing here (not the dispatching process, or no room): the loop's turn.
                # Otherwise waking it now would only compete with the start for the interpreter;
                # each start or boot job wakes it when it ends.
                self.dispatcher.wake()
        return reports

    def _build(self, item: Any) -> tuple[Pipeline, Any, Any]:
        """The pipeline, its validated request, and the listed XNAT server it names (None: the seed's way)."""
        if not isinstance(item, dict):
            raise InvalidInput(f"must be a JSON object, not a JSON {type(item).__name__}")
        kind = item.get("type", "xnat")
        task = TASK_TYPES.get(kind) if isinstance(kind, str) else None
        if task is None:
            raise InvalidInput(f"type: unknown pipeline type {kind!r}; known: {', '.join(TASK_TYPES)}", "type")
        try:
            request = task.Request.model_validate(item)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        folder = Path(self.settings.local_scripts_folder)
        try:
            resolve_in_folder(folder, request.script)
        except PathError as exc:
            raise InvalidInput(f"script: {exc}", "script") from None
        for n, name in enumerate(request.files):
            try:
                resolve_in_folder(folder, name)
            except PathError as exc:
                raise InvalidInput(f"files.{n}: {exc}", f"files.{n}") from None
        try:
            environment.check(task.request_env(request.spec()), self.settings.allowed_env_names)
        except environment.ForbiddenEnv as exc:
            raise InvalidInput(str(exc), f"env.{exc.name}") from None
        _check_credentials(request)
        server = verify.server_for(self.xnat_settings, request)
        secret = request.secret() if server is None else None  # a listed host's password is never stored
        now = time.time()
        pipeline = Pipeline(
            type=task.name,
            status=QUEUED,
            priority=request.priority,
            spec=request.spec(),
            script=request.script,
            secret=self.secrets.encrypt(secret) if secret is not None else None,
            timeout=request.timeout,
            created_at=now,
            updated_at=now,
            attempt=0,
            attempts_base=0,
            next_attempt_at=0.0,
            cancel_requested=False,
            **request.summary(),
        )
        return pipeline, request, server

    # --- read -----------------------------------------------------------------------

    def get(self, pipeline_id: int) -> Pipeline:
        pipeline = self.store.get_pipeline(pipeline_id, with_history=True)
        if pipeline is None:
            raise NotFound(f"no pipeline with id {pipeline_id}", "id")
        return pipeline

    def log_dir(self, pipeline_id: int, attempt: int) -> Path:
        return self.data_path / "logs" / str(pipeline_id) / str(attempt)

    def secrets_of(self, pipeline: Pipeline) -> list[str]:
        return [self.secrets.decrypt(pipeline.secret)] if pipeline.secret else []

    def logs(self, pipeline_id: int, stream: str, since: int, max_bytes: int) -> LogChunk:
        """A chunk of the current (or last) attempt's masked stdout/stderr from byte ``since`` of the
        masked stream (``masked_logs``): the same offsets while the job runs and after it ended."""
        pipeline = self.get(pipeline_id)
        live = pipeline.status in (STAGING, RUNNING) and pipeline.job_dir and pipeline.instance_id
        data, complete = b"", pipeline.status in FINAL_STATES
        if pipeline.attempt:
            kept = MaskedLog(self.log_dir(pipeline.id, pipeline.attempt), stream)
            try:
                if live:
                    instance = self.pool.get(pipeline.instance_id)
                    if instance is not None and instance.info:
                        executor = self.pool.executor(instance)
                        read_raw = partial(runner.read_log, executor, pipeline.job_dir, stream)
                        kept.catch_up(read_raw, self.secrets_of(pipeline), final=False, want=since + max_bytes)
                data, length, _ = kept.read(since, max_bytes)
            except BackendError as exc:
                raise Unavailable(f"the instance of pipeline {pipeline_id} is unreachable: {exc}") from None
            except (OSError, SecretError) as exc:  # a full disk, a data directory gone read-only, a changed key
                raise Unavailable(f"the log of pipeline {pipeline_id} cannot be kept or masked now: {exc}") from None
            complete = complete and since + len(data) >= length
        return LogChunk(
            id=pipeline.id,
            attempt=pipeline.attempt,
            stream=stream,
            status=pipeline.status,
            offset=since,
            next=since + len(data),
            data=data.decode("utf-8", "replace"),
            complete=complete,
        )

    # --- change ---------------------------------------------------------------------

    def cancel(self, pipeline_id: int) -> Pipeline:
        def change(session, p: Pipeline):
            if p.status in FINAL_STATES:
                raise Conflict(f"pipeline {p.id} is already {p.status}", "id")
            p.cancel_requested = True
            p.updated_at = time.time()
            if p.status == QUEUED:
                p.move(CANCELLED, "cancelled on request (while queued)")
                p.finished_at = time.time()

        if self.store.update_pipeline(pipeline_id, change) is None and self.store.get_pipeline(pipeline_id) is None:
            raise NotFound(f"no pipeline with id {pipeline_id}", "id")
        self.dispatcher.wake()
        return self.get(pipeline_id)

    def retry(self, pipeline_id: int, credentials: Any = None) -> Pipeline:
        """Queue it again. ``credentials`` ({user, pwd} or {alias, secret}): a fresh XNAT alias token for a
        pipeline on a listed host, needed once its own was released or expired (else a 400 naming pwd)."""
        fresh = verify.fresh_token(self.verifier, self.get(pipeline_id), credentials, self.xnat_settings)

        def change(session, p: Pipeline):
            if p.status not in (FAILED, CANCELLED):
                raise Conflict(f"pipeline {p.id} is {p.status}; only failed or cancelled ones can be retried", "id")
            if fresh is not None:
                p.token_id, p.secret, p.spec = fresh.token_id, fresh.secret, fresh.spec
            p.move(QUEUED, "retry requested")
            p.attempts_base = p.attempt
            p.cancel_requested = False
            p.next_attempt_at = 0.0
            p.exit_code = p.finished_at = p.instance_id = p.job_dir = None

        self.store.update_pipeline(pipeline_id, change)
        self.dispatcher.wake()
        return self.get(pipeline_id)

    # --- instances ------------------------------------------------------------------

    def delete_instance(self, instance_id: str) -> None:
        instance = self.pool.get(instance_id)
        if instance is None or instance.state not in LIVE_INSTANCE_STATES:
            raise NotFound(f"no live instance with id {instance_id}", "id")
        if instance.pipeline_id is not None:
            raise Conflict(f"instance {instance_id} runs pipeline {instance.pipeline_id}; cancel it first", "id")
        if instance.state == InstanceState.BOOTING:
            raise Conflict(f"instance {instance_id} is still booting", "id")
        self.pool.mark_deleting(instance_id)
        self.pool.destroy(instance_id)

    def delete_untracked(self, *, include_untagged: bool, dry_run: bool) -> UntrackedCleanup:
        """The seed's DELETE /instance: delete backend instances this scheduler does not track."""
        return untracked.delete_untracked(self.pool, include_untagged=include_untagged, dry_run=dry_run)

    # --- configuration --------------------------------------------------------------

    def reconfigure(self, fresh: PipelineSettings, data_path: Path) -> list[str]:
        """Take a re-read configuration's pipeline settings; returns the keys that need a restart
        (``data_dir`` among them if ``data_path`` moved), which keep their running values. Settings the
        running backend cannot take raise its ``BackendConfigError`` and nothing is taken."""
        # Keep what needs a restart as it is, so the running backend and store stay consistent.
        restart, fresh = keep_running(self.settings, fresh, RESTART_KEYS)
        self.backend.check_settings(fresh)  # BackendConfigError: refused, the running settings kept
        if data_path != self.data_path:
            restart.append("data_dir")
        self.settings = fresh
        self.backend.settings = fresh
        self.dispatcher.wake()
        return restart


def _check_credentials(request: Any) -> None:
    """InvalidInput naming the field if the credentials are incomplete or would show in a stored field."""
    credentials = getattr(request, "credentials_problem", lambda: None)()
    if credentials:
        raise InvalidInput(f"{credentials[0]}: {credentials[1]}", credentials[0])
    problem = request.secret_problem()
    if problem:
        raise InvalidInput(f"pwd: {problem}", "pwd")


def _validation_error(exc: ValidationError) -> InvalidInput:
    name, problem, _ = field_and_problem(exc, "pipeline")
    return InvalidInput(f"{name}: {problem}", name)
