"""Leadership: the fenced lease, a frozen and thawed leader, a leader cut from its database, the
take-over at the lease's expiry, and the graceful stop (SQLite and the suite's real PostgreSQL)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, select, text

from scheduler_server.logging_setup import RequestIdFilter
from scheduler_server.pipelines.models import FINAL_STATES, Meta
from scheduler_server.pipelines.storage.lease import Fence, LeaseLost, check_side_effect, clock, fenced
from scheduler_server.pipelines.storage.store import Store

from .conftest import script, submit_ok, wait_status, wait_until
from .postgres import postgres_server, postgres_url, store_url  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]


def test_a_fenced_write_needs_the_lease_row_and_a_live_deadline(store_url):
    store = Store(store_url)
    checkouts = []
    event.listen(store.engine, "checkout", lambda *args: checkouts.append(1))
    try:
        assert store.acquire_lease("us", ttl=30)
        ours = Fence("us", clock() + 30)
        with fenced(ours), store.write() as session:
            session.add(Meta(key="ours", value="1"))
        store.release_lease("us")
        assert store.acquire_lease("them", ttl=30)  # taken over: the row names them
        with pytest.raises(LeaseLost, match="held by them"), fenced(ours), store.write() as session:
            session.add(Meta(key="late", value="1"))
        lapsed = Fence("them", clock() - 0.01)  # e.g. frozen, then thawed past its deadline
        before = len(checkouts)
        with pytest.raises(LeaseLost, match="lapsed"), fenced(lapsed), store.write() as session:
            session.add(Meta(key="thawed", value="1"))
        assert len(checkouts) == before  # refused before taking a connection
        with fenced(lapsed), pytest.raises(LeaseLost):
            check_side_effect()
        check_side_effect()  # not run as leader: nothing to check
        with store.write() as session:  # a web request's write is not fenced
            session.add(Meta(key="web", value="1"))
        with store.read() as session:
            keys = set(session.scalars(select(Meta.key)))
        assert {"ours", "web"} <= keys and not {"late", "thawed"} & keys
    finally:
        store.close()


def _child(data_dir: Path, values: dict, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.pipelines.leader_child", str(data_dir), json.dumps(values)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    assert process.stdout.readline().strip() == "ready", log.read_text()
    return process


def _end(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.stdin.close()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _holder(service) -> str | None:
    row = service.store.read_lease()
    return row[0] if row else None


AUDIT = """
CREATE TABLE audit (app text, at double precision);
CREATE FUNCTION audit() RETURNS trigger AS $$ BEGIN
  INSERT INTO audit VALUES (current_setting('application_name'), extract(epoch from clock_timestamp()));
  RETURN NULL; END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_p AFTER INSERT OR UPDATE OR DELETE ON pipelines FOR EACH STATEMENT EXECUTE FUNCTION audit();
CREATE TRIGGER audit_i AFTER INSERT OR UPDATE OR DELETE ON instances FOR EACH STATEMENT EXECUTE FUNCTION audit();
CREATE TRIGGER audit_l AFTER INSERT OR UPDATE OR DELETE ON leases FOR EACH STATEMENT EXECUTE FUNCTION audit();
"""


def test_a_frozen_leader_thawed_after_losing_its_lease_writes_and_launches_nothing(
    make_service, make_settings, postgres_url, tmp_path
):
    values = json.loads(make_settings(database_url=postgres_url, dispatcher_lease=2).pipelines.model_dump_json())
    values["database_url"] = postgres_url + "?application_name=frozen"
    frozen = _child(tmp_path / "data", values, tmp_path / "frozen.log")
    admin = create_engine(postgres_url)
    try:
        follower = make_service(database_url=postgres_url + "?application_name=follower", dispatcher_lease=2)
        wait_until(lambda: f":{frozen.pid}:" in (_holder(follower) or ""), message="the child to lead")
        with admin.begin() as connection:
            connection.execute(text(AUDIT))
        (first,) = submit_ok(follower, script("ok.sh"))
        assert wait_status(follower, first, FINAL_STATES).status == "succeeded"  # run by the child
        while True:  # frozen outside a transaction (one frozen inside would hold its row locks)
            os.kill(frozen.pid, signal.SIGSTOP)
            time.sleep(0.05)  # a statement in flight finishes server-side meanwhile
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'frozen' AND state <> 'idle'"
            with admin.connect() as connection:
                if not connection.execute(text(query)).scalar():
                    break
            os.kill(frozen.pid, signal.SIGCONT)
            time.sleep(0.01)
        stopped_at = time.time()
        wait_until(lambda: follower.dispatcher.leading, timeout=5, message="the follower to take over")
        ids = submit_ok(follower, script("sleep.sh", "0.5"), script("ok.sh"))
        wait_status(follower, ids[0], "running")
        os.kill(frozen.pid, signal.SIGCONT)  # thawed with a lease long gone, a running pipeline to see
        wait_until(lambda: "stops dispatching" in (tmp_path / "frozen.log").read_text(), timeout=5, message="log")
        for pipeline_id in ids:
            done = wait_status(follower, pipeline_id, FINAL_STATES)
            assert (done.status, done.attempt) == ("succeeded", 1)
        with admin.connect() as connection:
            late = connection.execute(
                text("SELECT count(*) FROM audit WHERE app = 'frozen' AND at > :t"), {"t": stopped_at}
            )
            assert late.scalar() == 0
            assert connection.execute(text("SELECT count(*) FROM audit WHERE app = 'follower'")).scalar() > 0
        assert "Traceback" not in (tmp_path / "frozen.log").read_text()
    finally:
        _end(frozen)
        admin.dispose()


def test_a_leader_cut_from_its_database_stops_before_its_lease_could_be_taken(make_service, postgres_url):
    leader = make_service(database_url=postgres_url, dispatcher_lease=3)
    wait_until(lambda: leader.dispatcher.leading, message="the leader")
    expiries = []
    acquire = leader.store.acquire_lease

    def recorded(holder, ttl, *args):
        asked = time.time()
        held = acquire(holder, ttl, *args)
        if held:
            expiries.append(asked + ttl)  # the row's expires_at is at least this
        return held

    leader.store.acquire_lease = recorded
    wait_until(lambda: expiries, timeout=3, message="a renewal")
    database = postgres_url.rsplit("/", 1)[1]
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": database}
            )
        fence = leader.dispatcher.leadership.fence
        wait_until(lambda: not leader.dispatcher.leading, timeout=5, message="the leader to stop")
        stopped = time.time()
        assert stopped < expiries[-1], (stopped, expiries[-1])  # nobody could have taken the lease yet
        assert leader.dispatcher.submit(("probe",), lambda: None) is False  # no new job
        with fenced(fence), pytest.raises(LeaseLost):  # and an old job's write refused without the database
            with leader.store.write():
                pass
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    wait_until(lambda: leader.dispatcher.leading, timeout=10, message="leading again once the database is back")
    (pipeline_id,) = submit_ok(leader, script("ok.sh"))
    assert wait_status(leader, pipeline_id, FINAL_STATES).status == "succeeded"


def test_a_follower_takes_over_at_the_lease_expiry_and_starts_queued_work_within_a_second(make_service, postgres_url):
    first = make_service(database_url=postgres_url, dispatcher_lease=2, poll_interval=0.5)
    wait_until(lambda: first.dispatcher.leading, message="the first to lead")
    second = make_service(database_url=postgres_url, dispatcher_lease=2, poll_interval=0.5)
    first.dispatcher.leadership._stop.set()  # its renewals end (as if killed; same pid: no dead-pid shortcut)
    first.dispatcher.leadership._thread.join(5)
    wait_until(lambda: not first.dispatcher.leading, timeout=3, message="the first to stop")
    _, expires_at = second.store.read_lease()
    (pipeline_id,) = submit_ok(second, script("ok.sh"))  # queued: nobody dispatches now
    wait_until(lambda: second.dispatcher.leading, timeout=5, interval=0.002, message="the take-over")
    took_over = time.time()
    taken_at = second.store.read_lease()[1] - 2  # when the follower's take-over transaction ran
    # At the expiry, not at a poll of the lease (a third of it, 0.67 s here, would be late); a loaded
    # machine (load 6) took 140 ms to run the take-over transaction once.
    assert expires_at <= taken_at < expires_at + 0.35, taken_at - expires_at
    assert took_over < expires_at + 0.5, took_over - expires_at  # committed and seen
    started = wait_status(second, pipeline_id, ("running", *FINAL_STATES))
    left_queue = min(t.at for t in second.get(pipeline_id).transitions if t.from_status == "queued")
    assert left_queue - took_over < 1.0 and started.attempt == 1


def test_stop_hands_the_lease_over_at_once_and_leaves_a_running_pipeline_running(make_service):
    leader = make_service()
    wait_until(lambda: leader.dispatcher.leading, message="the leader")
    (pipeline_id,) = submit_ok(leader, script("sleep.sh", "2"))
    wait_status(leader, pipeline_id, "running")
    began = time.monotonic()
    leader.stop()
    assert time.monotonic() - began < 1.5
    holder, expires_at = leader.store.read_lease()
    assert holder == leader.dispatcher.holder and expires_at == 0.0  # released
    assert leader.store.get_pipeline(pipeline_id).status == "running"  # not killed, not failed
    successor = make_service()
    wait_until(lambda: successor.dispatcher.leading, timeout=3, message="the successor")
    done = wait_status(successor, pipeline_id, FINAL_STATES)
    assert (done.status, done.attempt) == ("succeeded", 1)  # re-attached, not run again


def test_a_jobs_log_records_name_its_pipeline_or_instance(make_service, caplog):
    service = make_service(start=False)
    job_log = logging.getLogger("scheduler_server.pipelines.scheduling.attempts")
    caplog.handler.addFilter(RequestIdFilter())  # what logging_setup's handlers carry
    with caplog.at_level("INFO"):
        service.dispatcher._job(("pipeline", 7), lambda: job_log.info("in a pipeline's job"))
        service.dispatcher._job(("instance", "pipeline-ab"), lambda: job_log.info("in an instance's job"))
        service.dispatcher._job(("pipeline", 8), lambda: (_ for _ in ()).throw(LeaseLost("lost it")))
    by_message = {r.getMessage(): r for r in caplog.records}
    assert by_message["in a pipeline's job"].pipeline_id == 7
    assert by_message["in an instance's job"].instance == "pipeline-ab"
    [lost] = [r for r in caplog.records if "lost it" in r.getMessage()]
    assert lost.exc_info is None and "('pipeline', 8)" in lost.getMessage()  # one line, no traceback
    assert lost.pipeline_id == 8
