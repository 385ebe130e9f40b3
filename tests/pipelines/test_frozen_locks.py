"""PostgreSQL: a process frozen (SIGSTOP) inside transactions holds no lock for longer than the idle-in-transaction
timeout, so the lease can be taken over at its expiry.

Its transactions that were waiting for the assignment lock (each holding the shared lease lock,
``lease.LEASE_LOCK``, as every fenced write does) give up their wait (``LOCK_WAIT_TIMEOUT``) before the holder ahead of them is
ended (``FROZEN_TRANSACTION_TIMEOUT``); granted the lock instead, each would sit in it, frozen, for
another timeout, and the take-over would wait for all of them in turn (seen in test_replicas: > 15 s).
A thread that stops talking inside its transaction is, to the server, what a frozen process is.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import create_engine, text

from scheduler_server.pipelines.storage import store as store_module
from scheduler_server.pipelines.storage.lease import DISPATCHER_LEASE, LEASE_LOCK, Fence, clock, fenced
from scheduler_server.pipelines.storage.store import Store

from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)


def test_a_frozen_process_waiting_for_the_assignment_lock_does_not_hold_the_lease_row(postgres_url):
    store = Store(postgres_url)
    other = create_engine(postgres_url)  # the process taking over: no timeouts of its own
    try:
        assert store.acquire_lease("frozen:1:x", 60)
        outcomes = []

        def frozen_transaction():
            try:
                with fenced(Fence("frozen:1:x", clock() + 60)), store.write() as session:
                    store.lock_assignments(session)
                    time.sleep(5)  # frozen inside the transaction
            except Exception as exc:  # noqa: BLE001 - what the server did to it
                outcomes.append(f"{type(exc).__name__}: {exc}"[:150])

        threads = [threading.Thread(target=frozen_transaction) for _ in range(4)]
        for thread in threads:
            thread.start()
            time.sleep(0.1)  # one holds the assignment lock, three wait for it
        started = time.monotonic()
        with other.begin() as connection:  # as lease.take does: the lease lock exclusively, then the row
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LEASE_LOCK})
            connection.execute(text("UPDATE leases SET holder = 'next:2:y' WHERE name = :n"), {"n": DISPATCHER_LEASE})
        took = time.monotonic() - started
        for thread in threads:
            thread.join()
        assert took < store_module.FROZEN_TRANSACTION_TIMEOUT + 1.0, f"the take-over waited {took:.1f} s"
        assert len(outcomes) == 4, outcomes  # each ended by the server: a lock wait given up, or idle too long
    finally:
        other.dispose()
        store.close()
