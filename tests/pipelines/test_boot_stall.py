"""A boot job that dies of something unexpected does not leave its instance "booting" (and its pipeline
"provisioning") until the next take-over: the dispatcher's tick boots it again, or gives it up."""

from __future__ import annotations

import pytest

from scheduler_server.pipelines.models import SUCCEEDED
from scheduler_server.pipelines.scheduling import dispatcher

from .conftest import script, submit_ok, wait_status


@pytest.fixture(autouse=True)
def short_stall(monkeypatch):
    monkeypatch.setattr(dispatcher, "BOOT_STALL", 0.3)


def failing_boots(service, fails: int | None):
    """Boot jobs raise a RuntimeError: the first ``fails`` of them, or every one on the first instance (None)."""
    real, seen = service.pool.boot, []

    def boot(instance_id):
        seen.append(instance_id)
        if (fails is None and instance_id == seen[0]) or (fails is not None and len(seen) <= fails):
            raise RuntimeError("unexpected")
        return real(instance_id)

    service.pool.boot = boot
    return seen


def test_a_boot_job_that_raised_is_booted_again(make_service):
    service = make_service(start=False, max_instances=1)
    seen = failing_boots(service, fails=1)
    service.ensure_started()
    (pipeline_id,) = submit_ok(service, script("ok.sh"))
    done = wait_status(service, pipeline_id, SUCCEEDED, timeout=10)
    assert done.attempt == 1 and len(seen) == 2 and seen[0] == seen[1], seen


def test_an_instance_whose_boot_keeps_raising_is_given_up_and_its_pipeline_retried(make_service):
    service = make_service(start=False, max_instances=1)
    seen = failing_boots(service, fails=None)
    service.ensure_started()
    (pipeline_id,) = submit_ok(service, script("ok.sh"))
    done = wait_status(service, pipeline_id, SUCCEEDED, timeout=15)
    first = service.pool.get(seen[0])
    assert (first.state.value, done.attempt) == ("broken", 2), (first.state, done.reason)
    assert "boot stopped unexpectedly 3 times" in first.error
    assert seen.count(seen[0]) == 1 + dispatcher.MAX_REBOOTS and seen[-1] != seen[0]
