"""The pipeline service with its store on a real PostgreSQL server (local backend, real scripts).

The server is a throwaway one the tests start themselves (see ``postgres.py``); each test gets a
fresh database on it. Without PostgreSQL's binaries these tests fail: run ``scripts/setup.sh test``.
"""

from __future__ import annotations

import time

from scheduler_server.pipelines.models import FINAL_STATES

from .conftest import script, submit_ok, wait_status, wait_until, xnat
from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)


def _history(service, pid):
    return [(t.from_status, t.to_status) for t in service.get(pid).transitions]


def test_a_pipeline_runs_to_success_with_its_transitions_recorded(make_service, postgres_url):
    service = make_service(database_url=postgres_url)
    assert service.store.engine.dialect.name == "postgresql"
    (pid,) = submit_ok(service, xnat())
    done = wait_status(service, pid, FINAL_STATES)
    assert done.status == "succeeded", done.reason
    assert done.exit_code == 0 and done.attempt == 1 and done.instance_id
    assert _history(service, pid) == [
        ("queued", "provisioning"),
        ("provisioning", "staging"),
        ("staging", "running"),
        ("running", "succeeded"),
    ]
    assert done.created_at <= done.instance_ready_at <= done.started_at <= done.finished_at
    assert [p.status for p in service.store.list_pipelines()[0]] == ["succeeded"]


def test_only_one_service_dispatches_and_the_other_ones_submissions_run(make_service, postgres_url):
    first = make_service(database_url=postgres_url)
    second = make_service(database_url=postgres_url)  # same data directory, same database
    wait_until(lambda: first.dispatcher.leading or second.dispatcher.leading, message="a leader")
    time.sleep(0.3)
    assert first.dispatcher.leading != second.dispatcher.leading
    leader, other = (first, second) if first.dispatcher.leading else (second, first)
    assert not other.store.acquire_lease(other.dispatcher.holder, ttl=10)  # the leader holds the one lease
    ids = submit_ok(other, xnat(), script("ok.sh"))  # through the one that does not dispatch
    for pid in ids:
        assert wait_status(leader, pid, FINAL_STATES).status == "succeeded"
    assert other.dispatcher.leading is False
    leader.stop()  # releases the lease: the other one takes over
    wait_until(lambda: other.dispatcher.leading, timeout=15, message="takeover")
    (pid,) = submit_ok(other, xnat())
    assert wait_status(other, pid, FINAL_STATES).status == "succeeded"


def test_max_active_pipelines_is_never_exceeded(make_service, postgres_url, scripts, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    peak = tmp_path / "peak.txt"
    (scripts / "count.sh").write_text(f"touch {live}/$$; ls {live} | wc -l >> {peak}; sleep 0.3; rm {live}/$$\n")
    service = make_service(database_url=postgres_url, max_active_pipelines=2, virtual_server_ttl=100)
    ids = submit_ok(service, *[script("count.sh") for _ in range(8)])
    most_active, deadline = 0, time.monotonic() + 30
    while time.monotonic() < deadline and not all(
        p.status in FINAL_STATES for p in service.store.list_pipelines(ids=ids)[0]
    ):
        most_active = max(most_active, len(service.store.active_pipelines()))
        time.sleep(0.02)
    for pid in ids:
        assert wait_status(service, pid, FINAL_STATES).status == "succeeded"
    counts = [int(n) for n in peak.read_text().split()]
    assert len(counts) == 8
    assert max(counts) == 2  # two ran at once, never three
    assert 1 <= most_active <= 2


def test_assignments_are_serialized_until_commit(postgres_url):
    """Two transactions that put pipelines on instances must not decide on each other's old view
    (SQLite serializes all writers; PostgreSQL does not): the second waits for the first's commit."""
    import threading

    from scheduler_server.pipelines.storage.store import Store

    store = Store(postgres_url)
    order: list[str] = []
    first_has_it, second_started = threading.Event(), threading.Event()

    def second():
        second_started.set()
        with store.write() as session:
            store.lock_assignments(session)
            order.append("second locked")

    try:
        with store.write() as session:
            store.lock_assignments(session)
            first_has_it.set()
            thread = threading.Thread(target=second)
            thread.start()
            second_started.wait(5)
            time.sleep(0.3)  # the second transaction is blocked all this time
            order.append("first commits")
        thread.join(10)
        assert order == ["first commits", "second locked"]
    finally:
        store.close()
