"""Dispatcher, pool and attempts on the real local backend: ordering, limits, reuse, retries, timeouts, cancel."""

from __future__ import annotations

import csv
import os
import time
from types import SimpleNamespace

from scheduler_server.pipelines.models import FINAL_STATES
from scheduler_server.pipelines.scheduling import planner

from .conftest import script, submit_ok, wait_status, wait_until, xnat


def _history(service, pid):
    return [(t.from_status, t.to_status) for t in service.get(pid).transitions]


def test_states_and_timings_are_recorded(make_service):
    service = make_service()
    (pid,) = submit_ok(service, xnat())
    done = wait_status(service, pid, FINAL_STATES)
    assert done.status == "succeeded" and done.exit_code == 0 and done.attempt == 1
    assert _history(service, pid) == [
        ("queued", "provisioning"),
        ("provisioning", "staging"),
        ("staging", "running"),
        ("running", "succeeded"),
    ]
    assert done.created_at <= done.instance_ready_at <= done.started_at <= done.finished_at
    assert done.instance_id


def test_fifo_with_priority_one_at_a_time(make_service, scripts, tmp_path):
    order = tmp_path / "order.txt"
    (scripts / "mark.sh").write_text(f'echo "$1" >> {order}\n')
    service = make_service(start=False, max_active_pipelines=1, virtual_server_ttl=100)
    submit_ok(
        service,
        script("mark.sh", "a"),
        script("mark.sh", "b"),
        script("mark.sh", "urgent", priority=5),
        script("mark.sh", "c"),
    )
    service.ensure_started()
    wait_until(lambda: order.exists() and len(order.read_text().split()) == 4, message="four marks")
    assert order.read_text().split() == ["urgent", "a", "b", "c"]


def test_max_active_pipelines_is_never_exceeded(make_service, scripts, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    peak = tmp_path / "peak.txt"
    (scripts / "count.sh").write_text(f"touch {live}/$$; ls {live} | wc -l >> {peak}; sleep 0.3; rm {live}/$$\n")
    service = make_service(max_active_pipelines=3, virtual_server_ttl=100)
    ids = submit_ok(service, *[script("count.sh") for _ in range(10)])
    for pid in ids:
        assert wait_status(service, pid, FINAL_STATES).status == "succeeded"
    counts = [int(n) for n in peak.read_text().split()]
    assert max(counts) <= 3 and max(counts) >= 2


def test_instances_are_reused_up_to_ttl_then_deleted(make_service):
    service = make_service(max_active_pipelines=1, virtual_server_ttl=2, max_instances=1)
    ids = submit_ok(service, *[xnat() for _ in range(4)])
    done = [wait_status(service, pid, FINAL_STATES) for pid in ids]
    assert all(p.status == "succeeded" for p in done)
    instances = [p.instance_id for p in done]
    assert instances[0] == instances[1] and instances[2] == instances[3] and instances[0] != instances[2]
    wait_until(lambda: service.pool.get(instances[0]).state == "deleted", message="first instance deleted after 2 uses")
    assert not (service.data_path / "instances" / instances[0]).exists()


def test_idle_instances_expire(make_service):
    service = make_service(virtual_server_ttl=10, idle_timeout=0.3)
    (pid,) = submit_ok(service, xnat())
    instance_id = wait_status(service, pid, FINAL_STATES).instance_id
    assert service.pool.get(instance_id).state in ("idle", "busy")
    wait_until(lambda: service.pool.get(instance_id).state == "deleted", timeout=10, message="idle instance deleted")


def test_look_ahead_boots_the_next_instance_while_one_runs(make_service):
    service = make_service(max_active_pipelines=1, virtual_server_ttl=1, max_instances=2)
    first, second = submit_ok(service, xnat(script="sleep.sh", options=["1"]), xnat())
    wait_status(service, first, "running")
    # While the first runs, a second instance is already up for the queued pipeline.
    wait_until(lambda: sum(i.state == "idle" for i in service.pool.live()) == 1, message="a spare instance")
    assert service.store.get_pipeline(second).status == "queued"
    done = wait_status(service, second, FINAL_STATES)
    assert done.status == "succeeded"
    assert len(service.pool.live()) <= 2


def test_instance_limit_bounds_look_ahead(make_service):
    service = make_service(max_active_pipelines=1, max_instances=1)
    ids = submit_ok(service, *[xnat(script="sleep.sh", options=["0.3"]) for _ in range(3)])
    seen = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and service.store.get_pipeline(ids[-1]).status not in FINAL_STATES:
        seen = max(seen, len(service.pool.live()))
        time.sleep(0.02)
    assert seen == 1


def test_vanished_instance_is_retried_on_a_fresh_one(make_service):
    service = make_service(max_attempts=3)
    (pid,) = submit_ok(service, xnat(script="sleep.sh", options=["2"]))
    running = wait_status(service, pid, "running")
    # The "server" disappears behind the scheduler's back, with what runs on it.
    service.backend.destroy(service.pool.info(service.pool.get(running.instance_id)))
    done = wait_status(service, pid, FINAL_STATES, timeout=30)
    assert done.status == "succeeded" and done.attempt == 2
    assert done.instance_id != running.instance_id
    reasons = [t.reason for t in service.get(pid).transitions if t.to_status == "queued"]
    assert len(reasons) == 1 and reasons[0].startswith("lost")


def test_infrastructure_failures_stop_after_max_attempts(make_service, monkeypatch):
    service = make_service(start=False, max_attempts=2)
    calls = []

    def broken(name):
        calls.append(name)
        from scheduler_server.pipelines.backend_errors import ProvisionError

        raise ProvisionError("quota exceeded")

    monkeypatch.setattr(service.backend, "provision", broken)
    (pid,) = submit_ok(service, xnat())
    service.ensure_started()
    done = wait_status(service, pid, FINAL_STATES)
    assert done.status == "failed" and "after 2 attempts" in done.reason
    assert done.attempt == 2
    queued_again = [t for t in service.get(pid).transitions if t.to_status == "queued"]
    assert len(queued_again) == 1 and "retry 2/2" in queued_again[0].reason


def test_script_failure_is_final_by_default(make_service):
    service = make_service()
    (pid,) = submit_ok(service, xnat(script="fail.sh"))
    done = wait_status(service, pid, FINAL_STATES)
    assert (done.status, done.exit_code, done.attempt, done.reason) == ("failed", 3, 1, "script exited 3")
    assert service.logs(pid, "stderr", 0, 1000).data == "failing\n"


def test_script_failure_retried_when_configured(make_service):
    service = make_service(retry_script_failures=True, max_attempts=3)
    (pid,) = submit_ok(service, xnat(script="fail.sh"))
    done = wait_until(lambda: (p := service.store.get_pipeline(pid)).status == "failed" and p, message="final failure")
    assert done.attempt == 3 and done.exit_code == 3


def test_timeout_kills_and_fails(make_service):
    service = make_service()
    (pid,) = submit_ok(service, xnat(script="sleep.sh", timeout=0.5))
    done = wait_status(service, pid, FINAL_STATES)
    assert done.status == "failed" and done.reason.startswith("timeout")
    assert done.finished_at - done.started_at < 5


def test_cancel_kills_the_whole_process_group(make_service, scripts, tmp_path):
    pids = tmp_path / "pids"
    (scripts / "tree.sh").write_text(
        f"sleep 60 & echo $! >> {pids}; sleep 60 & echo $! >> {pids}; echo $$ >> {pids}; wait\n"
    )
    service = make_service()
    (pid,) = submit_ok(service, xnat(script="tree.sh"))
    wait_status(service, pid, "running")
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 3, message="three processes")
    processes = [int(p) for p in pids.read_text().split()]
    service.cancel(pid)
    done = wait_status(service, pid, FINAL_STATES)
    assert done.status == "cancelled"
    wait_until(lambda: not any(_alive(p) for p in processes), timeout=10, message="process group gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split()[2] != "Z"


def test_cancel_queued_and_manual_retry(make_service):
    service = make_service(start=False)
    (pid,) = submit_ok(service, xnat())
    assert service.cancel(pid).status == "cancelled"
    retried = service.retry(pid)
    assert retried.status == "queued" and not retried.cancel_requested
    service.ensure_started()
    assert wait_status(service, pid, FINAL_STATES).status == "succeeded"
    assert [t.to_status for t in service.get(pid).transitions] == [
        "cancelled",
        "queued",
        "provisioning",
        "staging",
        "running",
        "succeeded",
    ]


def test_logs_can_be_tailed_while_running(make_service, scripts):
    (scripts / "ticker.sh").write_text("for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done\n")
    service = make_service()
    (pid,) = submit_ok(service, xnat(script="ticker.sh"))
    wait_status(service, pid, "running")
    text, since, saw_partial = "", 0, False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        chunk = service.logs(pid, "stdout", since, 1 << 16)
        text += chunk.data
        since = chunk.next
        if chunk.status == "running" and 0 < text.count("\n") < 5:
            saw_partial = True
        if chunk.complete:
            break
        time.sleep(0.05)
    assert saw_partial
    assert text == "".join(f"line{i}\n" for i in range(1, 6))


def test_timetest_csv(make_service, tmp_path):
    csv_path = tmp_path / "timetest.csv"
    service = make_service(timetest_csv_file=str(csv_path))
    ids = submit_ok(service, xnat(), xnat(subject="s2"))
    for pid in ids:
        wait_status(service, pid, FINAL_STATES)
    wait_until(lambda: csv_path.exists() and len(csv_path.read_text().splitlines()) == 3, message="csv rows")
    rows = list(csv.DictReader(csv_path.open()))
    assert {r["subject"] for r in rows} == {"s", "s2"}
    for row in rows:
        assert row["status"] == "succeeded"
        assert (
            float(row["queued"])
            <= float(row["instance_ready"])
            <= float(row["script_started"])
            <= float(row["finished"])
        )


def test_only_one_process_dispatches(make_service):
    first = make_service()
    second = make_service()  # same data directory, same database
    wait_until(lambda: first.dispatcher.leading or second.dispatcher.leading, message="a leader")
    time.sleep(0.3)
    assert first.dispatcher.leading != second.dispatcher.leading
    (pid,) = submit_ok(second, xnat())
    assert wait_status(first, pid, FINAL_STATES).status == "succeeded"
    leader, other = (first, second) if first.dispatcher.leading else (second, first)
    leader.stop()  # releases the lease: the other one takes over
    wait_until(lambda: other.dispatcher.leading, timeout=15, message="takeover")
    (pid2,) = submit_ok(other, xnat())
    assert wait_status(other, pid2, FINAL_STATES).status == "succeeded"


def test_script_removed_after_submission_fails_without_retry(make_service, scripts):
    (scripts / "gone.sh").write_text("echo hi\n")
    service = make_service(start=False)
    (pid,) = submit_ok(service, xnat(script="gone.sh"))
    (scripts / "gone.sh").unlink()
    service.ensure_started()
    done = wait_status(service, pid, FINAL_STATES)
    assert done.status == "failed" and done.attempt == 1 and "cannot stage" in done.reason and "gone.sh" in done.reason


def test_a_submission_onto_a_ready_instance_is_assigned_in_its_own_transaction(make_service):
    service = make_service(max_active_pipelines=2, virtual_server_ttl=10, poll_interval=0.05)
    wait_until(lambda: service.dispatcher.leading, message="dispatcher leads")
    first = submit_ok(service, script("ok.sh"))[0]
    wait_status(service, first, "succeeded")  # leaves an idle instance
    (pipeline_id,) = submit_ok(service, script("ok.sh"))
    # Already staging (or further) when submit() returns: no dispatcher tick in between.
    assert service.store.get_pipeline(pipeline_id).status != "queued"
    assert wait_status(service, pipeline_id, "succeeded").instance_id == service.store.get_pipeline(first).instance_id


def test_a_failing_assignment_at_submission_loses_nothing(make_service, monkeypatch):
    service = make_service(max_active_pipelines=2, poll_interval=0.05)
    wait_until(lambda: service.dispatcher.leading, message="dispatcher leads")

    def broken(*args):
        raise RuntimeError("assignment bug")

    monkeypatch.setattr(planner, "plan", broken)
    (pipeline_id,) = submit_ok(service, script("ok.sh"))
    assert service.store.get_pipeline(pipeline_id).status == "queued"  # inserted all the same
    monkeypatch.undo()
    service.dispatcher.wake()
    assert wait_status(service, pipeline_id, "succeeded")


def test_a_job_that_ends_is_seen_at_once_not_at_the_next_poll(make_service):
    """The executor reports a job's end (local: the launched shell exits): with polls 30 s apart,
    a 0.3 s script still finishes within seconds."""
    service = make_service(poll_interval=30)
    (pid,) = submit_ok(service, script("sleep.sh", "0.3"))
    done = wait_status(service, pid, FINAL_STATES, timeout=10)
    assert done.status == "succeeded", done.reason
    assert done.finished_at - done.started_at < 3.0


def test_a_pipelines_end_assigns_the_next_one_in_its_own_transaction(make_service, monkeypatch):
    """With the loop's own assigning switched off, the queued pipeline still starts: the first
    pipeline's end filled its lane in the same commit (and reused its instance, TTL allowing)."""
    service = make_service(max_active_pipelines=1, virtual_server_ttl=10, max_instances=1)
    wait_until(lambda: service.dispatcher.leading, message="dispatcher leads")
    monkeypatch.setattr(service.dispatcher, "assign_queued", lambda now: False)
    first, second = submit_ok(service, script("sleep.sh", "0.3"), script("ok.sh"))  # the submission assigns the first
    assert service.store.get_pipeline(second).status == "queued"
    done = wait_status(service, second, FINAL_STATES)
    assert done.status == "succeeded", done.reason
    assert done.instance_id == service.store.get_pipeline(first).instance_id


def test_the_loop_plans_on_what_its_write_transaction_sees(make_service, monkeypatch):
    """The loop reads the queue before taking the write lock; a pipeline's end may assign in between.
    Planning on that older view would start more than MAX_ACTIVE_PIPELINES (or boot needless spares)."""
    service = make_service(max_active_pipelines=1, virtual_server_ttl=1, max_instances=3)
    first, second = submit_ok(service, script("sleep.sh", "30"), script("ok.sh"))
    wait_status(service, first, "running")
    wait_until(lambda: any(i.state == "idle" for i in service.pool.live()), message="a spare booted ahead")
    monkeypatch.setattr(service.dispatcher, "tick", lambda now: None)  # the loop stands still
    time.sleep(0.2)  # for a tick already under way
    real = service.store.queue_view

    def older_outside_the_transaction(now, limit, session=None):
        active, queued = real(now, limit, session)
        return (0, queued) if session is None else (active, queued)  # as read before the first started

    monkeypatch.setattr(service.store, "queue_view", older_outside_the_transaction)
    assert service.dispatcher.assign_queued(time.time()) is False
    assert service.store.get_pipeline(second).status == "queued"
    service.cancel(first)


def test_an_instance_moves_only_along_its_lifecycle():
    from scheduler_server.pipelines.models import Instance, InstanceState, InvalidTransition

    instance = Instance(id="i", state=InstanceState.BOOTING)
    for state in (InstanceState.BUSY, InstanceState.IDLE, InstanceState.DELETING, InstanceState.DELETING):
        instance.move(state)
    instance.move(InstanceState.DELETED)
    assert instance.state == "deleted"  # stored as the string it always was
    try:
        instance.move(InstanceState.IDLE)
    except InvalidTransition as exc:
        assert "deleted" in str(exc)
    else:
        raise AssertionError("a deleted instance came back")


def test_a_closed_service_leaves_nothing_to_stop_at_exit(make_service, monkeypatch):
    # Started, a service registers its stop for interpreter exit; closed, it takes that back, so no
    # dispatcher stops (and logs) at exit, after pytest has closed its capture, and none is kept alive.
    from scheduler_server.pipelines import service as module

    at_exit: list = []
    forget = lambda f: f in at_exit and at_exit.remove(f)  # noqa: E731 - as atexit.unregister: absent is no error
    monkeypatch.setattr(module, "atexit", SimpleNamespace(register=at_exit.append, unregister=forget))
    service = make_service(start=False)
    service.ensure_started()
    assert at_exit == [service.stop]
    service.close()
    assert at_exit == []
