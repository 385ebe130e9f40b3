"""PostgreSQL lock waits given up (lock_timeout) are contention, not an unwritable database: a submission on
the leader that waits too long for the assignment lock is one log line (no traceback) and leaves the pipeline
queued for the next tick; the database is not reported unhealthy. A server that never answers fails a
connection in seconds (connect_timeout), not never."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from scheduler_server.pipelines.storage import store as store_module
from scheduler_server.pipelines.storage.errors import StoreUnavailable
from scheduler_server.pipelines.storage.store import ASSIGNMENT_LOCK, Store

from .conftest import script, submit_ok, wait_until
from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)


def test_a_lock_wait_given_up_is_one_line_and_not_an_unhealthy_database(make_service, postgres_url, caplog):
    leader = make_service(database_url=postgres_url, poll_interval=30.0)
    wait_until(lambda: leader.dispatcher.leading, timeout=10, message="leading")
    other = create_engine(postgres_url)
    try:
        with other.connect() as holding:
            holding.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ASSIGNMENT_LOCK})
            holding.commit()
            with caplog.at_level(logging.INFO):
                started = time.monotonic()
                [pipeline_id] = submit_ok(leader, script("ok.sh"))
            waited = time.monotonic() - started
            with pytest.raises(StoreUnavailable, match="a lock held elsewhere"), leader.store.write() as session:
                leader.store.lock_assignments(session)
            assert leader.store.health._last_problem is None  # not recorded as the database's problem
            assert leader.store.write_problem() is None  # GET / still says the database takes writes
            holding.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ASSIGNMENT_LOCK})
            holding.commit()
    finally:
        other.dispose()
    assert store_module.LOCK_WAIT_TIMEOUT - 0.2 < waited < store_module.LOCK_WAIT_TIMEOUT + 3
    assert leader.store.get_pipeline(pipeline_id).status == "queued"  # accepted; the next tick assigns it
    lines = [r for r in caplog.records if "gave up waiting for a lock" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("scheduler_server")]


def test_a_server_that_never_answers_fails_the_connection_within_the_connect_timeout():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nothing ever answers
    port = silent.getsockname()[1]
    outcome = []

    def connect():
        started = time.monotonic()
        try:
            Store(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
        except Exception as exc:  # noqa: BLE001 - what the connection attempt ended with
            outcome.append((type(exc).__name__, time.monotonic() - started))

    thread = threading.Thread(target=connect, daemon=True)
    try:
        thread.start()
        thread.join(15)
        assert outcome, "still connecting after 15 s"
        assert outcome[0][1] < store_module.POSTGRES_CONNECT["connect_timeout"] + 3, outcome
    finally:
        silent.close()
