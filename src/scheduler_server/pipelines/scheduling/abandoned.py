"""Attempts given up on while they may still run: remembered in the database, stopped when their instance answers.

An attempt is given up on without knowing that its process is gone when its
instance stays unreachable past the retry window, when a launch's outcome stays
unknown that long, or when a cancel or timeout cannot confirm its kill. The
pipeline moves on (retried on another instance, or ended) and the attempt is
fenced: ``Attempts`` records a result only for the pipeline's current attempt,
checked in the transaction that records it. What may still run of the old
attempt is the reaper's: a row in ``abandoned_attempts`` (written in the same
transaction that gives the attempt up, so a restart cannot forget it) is tried
again with backoff until its instance answers; then ``runner.kill`` claims the
launch (a launch message still on its way never starts), kills the process group
and whatever else works in the job directory, and the directory and the row go.

An attempt that ended gets such a row too, in the transaction that records its end
(``outcomes``): its job directory is removed only after that commit, then the row goes.
A process that dies in between leaves the row, and whoever leads next removes the
directory (after ``CLEANUP_DELAY``), so an ended attempt never looks "lost" to a new
leader (its directory gone while its row still said running) and is never run again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import select

from scheduler_server.pipelines import jobdir as runner
from scheduler_server.pipelines.backend_errors import BackendError, InstanceGone
from scheduler_server.pipelines.clouds.backend import InstanceInfo
from scheduler_server.pipelines.models import LIVE_INSTANCE_STATES, AbandonedAttempt, Instance, Pipeline
from scheduler_server.pipelines.scheduling.pool import Pool
from scheduler_server.pipelines.settings import PipelineSettings
from scheduler_server.pipelines.storage.lease import check_side_effect
from scheduler_server.pipelines.storage.store import Store

log = logging.getLogger(__name__)

#: How the reason of a note written by ``note_ended`` begins and ends (as did the rows written before
#: it was a function): such a row is an ended attempt's directory, not an attempt given up on.
_ENDED, _LEFT = "ended (", "); its job directory was left behind"

#: Longest wait between two tries at one abandoned attempt (seconds).
MAX_BACKOFF = 60.0
#: An ended attempt's job directory is left to the reaper only if it is still there this long after
#: the end (its process died before removing it): the reaper does not race the removal itself.
CLEANUP_DELAY = 30.0


def record(session, pipeline: Pipeline, reason: str, delay: float = 0.0) -> tuple[dict, str] | None:
    """In the caller's transaction (the one giving the attempt up, or ending it): remember its job
    directory. ``delay``: the reaper leaves it alone that long. Returns (instance info, job directory)."""
    instance = session.get(Instance, pipeline.instance_id) if pipeline.instance_id else None
    if instance is None or not instance.info or not pipeline.job_dir:
        return None  # never placed on an instance: nothing of it can run
    now = time.time()
    session.add(
        AbandonedAttempt(
            pipeline_id=pipeline.id,
            attempt=pipeline.attempt,
            instance_id=instance.id,
            info=dict(instance.info),
            job_dir=pipeline.job_dir,
            reason=reason[:2000],
            created_at=now,
            next_try_at=now + delay,
            tries=0,
        )
    )
    return dict(instance.info), pipeline.job_dir


def note_ended(session, pipeline: Pipeline, reason: str) -> tuple[dict, str] | None:
    """In the transaction that records an attempt's end (``reason``): note its job directory, which
    the caller removes after the commit and then ``forget``s; the reaper's after ``CLEANUP_DELAY``
    if that removal never happens (the process stopped first) or fails (the instance did not answer)."""
    return record(session, pipeline, f"{_ENDED}{reason[:200]}{_LEFT}", CLEANUP_DELAY)


def forget(store: Store, pipeline_id: int, attempt: int, job_dir: str) -> None:
    """Its job directory is gone: the row ``record`` wrote for it goes too."""
    with store.write() as session:
        query = select(AbandonedAttempt).where(
            AbandonedAttempt.pipeline_id == pipeline_id,
            AbandonedAttempt.attempt == attempt,
            AbandonedAttempt.job_dir == job_dir,
        )
        for row in session.scalars(query):
            session.delete(row)


class Reaper:
    def __init__(self, store: Store, pool: Pool, settings: Callable[[], PipelineSettings]):
        """``settings``: the current pipeline settings (a reload replaces them)."""
        self.store = store
        self.pool = pool
        self._settings = settings

    @property
    def settings(self) -> PipelineSettings:
        return self._settings()

    def sweep(self, now: float | None = None) -> int:
        """Try every abandoned attempt that is due; return how many were stopped and cleaned up."""
        now = time.time() if now is None else now
        with self.store.read() as session:
            query = select(AbandonedAttempt).where(AbandonedAttempt.next_try_at <= now).order_by(AbandonedAttempt.id)
            due = list(session.scalars(query))
        stopped = 0
        for row in due:
            try:
                stopped += self._reap(row)
            except Exception:  # noqa: BLE001 - one bad row must not keep the others waiting
                doing = "removing the ended attempt's job directory" if ended(row) else "stopping the given-up attempt"
                log.exception("pipeline %s attempt %s: %s failed", row.pipeline_id, row.attempt, doing)
                self._later(row.id)
        return stopped

    def _reap(self, row: AbandonedAttempt) -> bool:
        what = f"pipeline {row.pipeline_id} attempt {row.attempt} on instance {row.instance_id}"
        instance = self.pool.get(row.instance_id)
        erased = instance is None or instance.state not in LIVE_INSTANCE_STATES
        if erased and self.pool.backend.destroy_erases:
            # The instance was deleted, and deleting it (a server, a sandbox) took its processes along.
            self._forget(row.id)
            gone = "its job directory with it" if ended(row) else "the attempt with it"
            log.info("%s: its instance is deleted, and %s", what, gone)
            return True
        try:
            executor = self.pool.backend.executor(InstanceInfo.from_dict(row.info))
            check_side_effect()
            cleared = runner.kill(executor, row.job_dir, self.settings.kill_grace)
            if cleared:
                executor.remove_tree(row.job_dir)
        except InstanceGone as exc:  # e.g. a host taken out of pipelines.ssh_hosts: nothing can reach it
            self._forget(row.id)
            left = "its job directory is left there" if ended(row) else "given up for good"
            log.warning("%s: %s, its instance cannot be reached any more: %s", what, left, exc)
            return False
        except BackendError as exc:
            self._later(row.id)
            log.info("%s: still unreachable, will try again: %s", what, exc)
            return False
        if not cleared:
            self._later(row.id)
            log.warning("%s: processes are still working in %s after the kill; will try again", what, row.job_dir)
            return False
        self._forget(row.id)
        _log_cleared(what, row)
        return True

    def _later(self, row_id: int) -> None:
        with self.store.write() as session:
            row = session.get(AbandonedAttempt, row_id)
            if row is not None:
                row.tries += 1
                delay = self.settings.connection_retry_interval * 2 ** min(row.tries, 10)
                row.next_try_at = time.time() + min(max(delay, 0.05), MAX_BACKOFF)

    def _forget(self, row_id: int) -> None:
        with self.store.write() as session:
            row = session.get(AbandonedAttempt, row_id)
            if row is not None:
                session.delete(row)


def ended(row: AbandonedAttempt) -> bool:
    """The row notes an ended attempt's job directory (``note_ended``), not an attempt given up on."""
    return row.reason.startswith(_ENDED)


def _log_cleared(what: str, row: AbandonedAttempt) -> None:
    if ended(row):  # nothing went wrong with the attempt: only its directory's removal did not happen
        log.info(
            "%s: removed the job directory %s it left behind: its end (%s) was recorded, but the process that "
            "recorded it did not remove the directory after that (it stopped first, or could not reach the instance)",
            what,
            row.job_dir,
            row.reason.removeprefix(_ENDED).removesuffix(_LEFT),
        )
    else:
        log.warning("%s: stopped what was left of it (given up earlier: %s)", what, row.reason)
