"""What the pipeline counters count (docs/metrics.md "What counts"), in-process: ends by outcome, a
re-attached launch is a start, submit-to-start is the first script start whatever the attempt, and a
booting instance's "not reachable yet" probes are no retries."""

from __future__ import annotations

from types import SimpleNamespace

from scheduler_server import metrics
from scheduler_server.pipelines import jobdir
from scheduler_server.pipelines.clouds.backend import CloudBackend
from scheduler_server.pipelines.models import FINAL_STATES
from tests.pipelines.conftest import script, submit_ok, wait_status, xnat
from tests.web.test_metrics import samples, value

ENDS = "scheduler_server_pipeline_ends_total"
STARTS = "scheduler_server_pipeline_starts_total"
WAITS = "scheduler_server_pipeline_submit_to_start_seconds_count"


def now() -> dict:
    return samples(metrics.render().decode())


def grew(before: dict, name: str, **labels) -> float:
    return value(now(), name, **labels) - value(before, name, **labels)


def test_every_end_outcome_is_counted_once(make_service):
    service = make_service(max_attempts=1)
    before = now()
    ok, failed, slow, late = submit_ok(
        service, script("ok.sh"), script("fail.sh"), script("sleep.sh", "30"), xnat(script="sleep.sh", timeout=0.5)
    )
    wait_status(service, slow, "running")
    service.cancel(slow)
    for pid in (ok, failed, slow, late):
        wait_status(service, pid, FINAL_STATES, timeout=30)
    assert grew(before, ENDS, outcome="succeeded") == 1
    assert grew(before, ENDS, outcome="failed") == 1
    assert grew(before, ENDS, outcome="cancelled") == 1
    assert grew(before, ENDS, outcome="timeout") == 1
    assert grew(before, STARTS) == 4 and grew(before, WAITS) == 4


def test_a_retried_attempt_counts_and_the_first_script_start_of_attempt_2_is_observed(make_service, monkeypatch):
    real, calls = jobdir.stage_and_launch, []

    def first_fails(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("staging broke")
        return real(*args, **kw)

    monkeypatch.setattr(jobdir, "stage_and_launch", first_fails)
    service = make_service(max_attempts=2)
    before = now()
    (pid,) = submit_ok(service, script("ok.sh"))
    done = wait_status(service, pid, FINAL_STATES, timeout=30)
    assert done.status == "succeeded" and done.attempt == 2
    assert grew(before, ENDS, outcome="retried") == 1 and grew(before, ENDS, outcome="succeeded") == 1
    assert grew(before, STARTS) == 1
    assert grew(before, WAITS) == 1  # its first script start, though attempt 2's


def test_a_re_attached_launch_counts_as_a_start(make_service, monkeypatch):
    real = jobdir.stage_and_launch

    def launched_but_answer_lost(*args, **kw):
        real(*args, **kw)
        raise jobdir.LaunchError("already launched")

    monkeypatch.setattr(jobdir, "stage_and_launch", launched_but_answer_lost)
    service = make_service()
    before = now()
    (pid,) = submit_ok(service, script("ok.sh"))
    done = wait_status(service, pid, FINAL_STATES, timeout=30)
    assert done.status == "succeeded"
    assert grew(before, STARTS) == 1 and grew(before, WAITS) == 1


class _Booting:
    """Answers the probe after two refusals, as an instance still booting does."""

    def __init__(self):
        self.tries = 0

    def run(self, command, timeout=None):
        self.tries += 1
        if self.tries < 3:
            raise jobdir.InstanceUnreachable("connection refused")
        return SimpleNamespace(ok=True, exit_code=0)


def test_not_reachable_yet_probes_of_a_booting_instance_are_no_retries():
    probe = _Booting()
    settings = SimpleNamespace(max_connection_retries=5, connection_retry_interval=0)
    fake = SimpleNamespace(name="fakecloud", settings=settings, executor=lambda instance: probe)
    before = now()
    CloudBackend.wait_until_reachable(fake, SimpleNamespace(id="i-1", state="booting"))
    assert probe.tries == 3
    assert grew(before, "scheduler_server_backend_api_retries_total", backend="fakecloud", operation="connect") == 0
    assert grew(before, "scheduler_server_backend_api_errors_total", backend="fakecloud", operation="connect") == 0
