"""Fencing: only a pipeline's current attempt can record a result (local backend, real processes).

An earlier attempt's exit code, a poll decided on a row read during it, or its
launcher's late "ended" must leave the current attempt alone.
"""

from __future__ import annotations

import time
from pathlib import Path

from scheduler_server.pipelines.models import CANCELLED, RUNNING

from .conftest import script, submit_ok, wait_status


def second_attempt_running(service):
    """A pipeline whose attempt 1 ran (and was cancelled) and whose attempt 2 runs now; the row as
    read while attempt 1 ran; the sandbox directory of attempt 2's instance."""
    (pipeline_id,) = submit_ok(service, script("sleep.sh", "30"))
    stale = wait_status(service, pipeline_id, RUNNING)
    assert stale.attempt == 1
    service.cancel(pipeline_id)
    wait_status(service, pipeline_id, CANCELLED)
    service.retry(pipeline_id)
    current = wait_status(service, pipeline_id, RUNNING)
    assert current.attempt == 2
    sandbox = service.backend.sandboxes / current.instance_id
    return pipeline_id, stale, current, sandbox


def fake_finished_job(sandbox: Path, job_dir: str, code: int) -> None:
    """What an earlier attempt's job directory holds once it ended: its exit code."""
    directory = sandbox / job_dir
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "exit_code").write_text(f"{code}\n")


def test_a_poll_decided_on_an_earlier_attempts_row_records_nothing(make_service):
    service = make_service(poll_interval=0.05)
    pipeline_id, stale, current, sandbox = second_attempt_running(service)
    fake_finished_job(sandbox, stale.job_dir, 0)  # attempt 1's directory says "exited 0"
    instance = service.pool.get(current.instance_id)
    service.attempts.poll(pipeline_id, False, (stale, instance))
    after = service.store.get_pipeline(pipeline_id)
    assert (after.status, after.attempt, after.exit_code) == (RUNNING, 2, None)


def test_an_earlier_attempts_late_end_is_ignored(make_service):
    service = make_service(poll_interval=0.05)
    pipeline_id, stale, current, sandbox = second_attempt_running(service)
    service.dispatcher.poll_soon(pipeline_id, 0, 1)  # attempt 1's launcher: "ended 0"
    service.attempts.finish(pipeline_id, 3, attempt=1)
    service.attempts.infra_failure(pipeline_id, "lost: attempt 1's instance is gone", 1)
    time.sleep(0.3)  # the dispatcher's worker ran the poll
    after = service.store.get_pipeline(pipeline_id, with_history=True)
    assert (after.status, after.attempt, after.exit_code) == (RUNNING, 2, None)
    assert [t.to_status for t in after.transitions if t.attempt == 2][-1] == RUNNING
    # The current attempt's own end still counts.
    service.attempts.finish(pipeline_id, 0, attempt=2)
    assert service.store.get_pipeline(pipeline_id).status == "succeeded"
