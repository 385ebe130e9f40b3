"""An attempt's end is committed before its job directory goes: a crash at either side of that commit runs nothing twice.

Seen with replicas (tests/pipelines/test_replicas.py): the job directory was removed before the end
was committed; a leader killed in between left a row still "running" whose directory was gone, and
the next leader counted the pipeline as lost and ran it again. The crash is simulated in-process:
the step after it is skipped, then the service is closed and a new one starts on the same database.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import update

from devtools.sshd import SSHD
from scheduler_server.pipelines.models import SUCCEEDED, AbandonedAttempt

from .conftest import script, submit_ok, wait_status, wait_until
from .test_exactly_once import abandoned, counted, host, runs  # noqa: F401 - counted is a fixture

pytestmark = pytest.mark.skipif(not Path(SSHD).exists(), reason=f"{SSHD} missing: run scripts/setup.sh test")


@pytest.fixture
def settings(sshd, key, tmp_path):
    return dict(
        backend="ssh",
        ssh_hosts=[host(sshd.host, sshd.port, sshd, key, slots=1)],
        remote_base_folder=str(tmp_path / "remote"),
        virtual_server_ttl=10,
    )


def test_a_crash_after_the_logs_are_fetched_but_before_the_end_is_committed(make_service, settings, counted):
    service = make_service(**settings)
    ended = []
    service.attempts._final = lambda pipeline_id, *args, **kwargs: ended.append(pipeline_id)  # dies here
    (pipeline_id,) = submit_ok(service, script("counted.sh", str(counted), "0.2"))
    wait_until(lambda: ended, timeout=20, message="the end reached (and not committed)")
    job_dir = Path(service.store.get_pipeline(pipeline_id).job_dir)
    assert service.store.get_pipeline(pipeline_id).status == "running"
    assert (job_dir / "exit_code").exists(), "the job directory is still there to tell the next leader"
    service.close()

    service = make_service(**settings)
    done = wait_status(service, pipeline_id, ("succeeded", "failed", "cancelled"), timeout=20)
    assert (done.status, done.attempt) == (SUCCEEDED, 1), done.reason
    assert [len(found) for found in runs(counted)] == [1, 1], "ran once"
    wait_until(lambda: not job_dir.exists() and not abandoned(service), message="its job directory removed")


def test_a_crash_after_the_end_is_committed_leaves_the_directory_to_the_next_leader(
    make_service, settings, counted, caplog
):
    caplog.set_level(logging.INFO, logger="scheduler_server.pipelines.scheduling.abandoned")
    service = make_service(**settings)
    (first,) = submit_ok(service, script("ok.sh"))
    wait_status(service, first, SUCCEEDED)
    first_dir = Path(service.store.get_pipeline(first).job_dir)
    wait_until(lambda: not first_dir.exists() and not abandoned(service), message="a normal end cleans up")

    service.attempts._remove_job_dirs = lambda left: None  # dies right after the commit
    (pipeline_id,) = submit_ok(service, script("counted.sh", str(counted), "0.2"))
    wait_status(service, pipeline_id, SUCCEEDED, timeout=20)
    service.close()
    job_dir = Path(service.store.get_pipeline(pipeline_id).job_dir)
    (row,) = abandoned(service)
    assert (row.pipeline_id, row.attempt, row.job_dir) == (pipeline_id, 1, str(job_dir)) and job_dir.is_dir()

    with service.store.write() as session:  # as if abandoned.CLEANUP_DELAY had passed
        session.execute(update(AbandonedAttempt).values(next_try_at=0.0))
    service = make_service(**settings)
    wait_until(
        lambda: not job_dir.exists() and not abandoned(service), timeout=20, message="the next leader removed it"
    )
    done = service.store.get_pipeline(pipeline_id)
    assert (done.status, done.attempt) == (SUCCEEDED, 1)
    assert [len(found) for found in runs(counted)] == [1, 1], "ran once"
    # Its log line says what happened: an ended attempt's directory, not an attempt given up on.
    (line,) = [
        r.getMessage() for r in caplog.records if r.name.endswith(".abandoned") and str(job_dir) in r.getMessage()
    ]
    assert f"pipeline {pipeline_id} attempt 1" in line and "given up" not in line, line
    assert f"removed the job directory {job_dir} it left behind: its end (" in line, line
