"""The lease under contention: two followers at one expiry, the leader's renewal beside its own busy
fenced transactions, the dead-holder shortcut across pid namespaces, a stop during a take (SQLite and
the suite's real PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from sqlalchemy import delete, text

from scheduler_server.pipelines.models import Lease
from scheduler_server.pipelines.scheduling.leadership import Leadership
from scheduler_server.pipelines.storage import lease as fencing
from scheduler_server.pipelines.storage.lease import Fence, LeaseLost, clock, fenced, holder_is_dead, new_holder_id
from scheduler_server.pipelines.storage.store import Store

from .postgres import postgres_server, postgres_url, store_url  # noqa: F401  (fixtures)


def test_two_followers_racing_at_the_expiry_exactly_one_leads(store_url):
    stores = [Store(store_url) for _ in range(3)]
    try:
        for trial in range(20):
            with stores[0].write() as session:
                session.execute(delete(Lease))
            assert stores[2].acquire_lease("elsewhere:1:old", 0.3)  # a holder that stops renewing
            followers = [Leadership(store, f"f{i}", lambda: 5.0, lambda: None) for i, store in enumerate(stores[:2])]
            for follower in followers:
                follower.start()
            time.sleep(0.7)
            leaders = [f.holder for f in followers if f.current() is not None]
            holder = stores[0].read_lease()[0]
            for follower in followers:
                follower._stop.set()
            for follower in followers:
                follower._thread.join(5)
            assert leaders == [holder], f"trial {trial}: {leaders} believe they lead; the row names {holder}"
    finally:
        for store in stores:
            store.close()


def test_the_leaders_renewal_is_not_starved_by_its_own_busy_fenced_transactions(postgres_url):
    store = Store(postgres_url)
    stop = threading.Event()
    try:
        assert store.acquire_lease("L", 60)
        fence = Fence("L", clock() + 60)

        lost = []

        def busy(offset):
            time.sleep(offset)
            with fenced(fence):
                try:
                    while not stop.is_set():
                        with store.write() as session:
                            session.execute(text("SELECT pg_sleep(0.15)"))
                except LeaseLost as exc:
                    lost.append(str(exc))

        threads = [threading.Thread(target=busy, args=(i * 0.02,)) for i in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        took = []
        for _ in range(5):
            started = time.monotonic()
            assert store.acquire_lease("L", 60)
            took.append(time.monotonic() - started)
        assert max(took) < 1.0, took
        # a take-over still waits for the fenced transactions open (and new ones queue behind it)
        with store.write() as session:
            session.execute(text("UPDATE leases SET expires_at = 0"))
        assert store.acquire_lease("next", 60)
        for thread in threads:
            thread.join(5)
        assert len(lost) == 6, lost  # every busy thread fenced out (the row expired, then names "next")
        assert set(lost) <= {"the dispatcher lease is held by next now", "this process's dispatcher lease expired"}
        assert store.read_lease()[0] == "next"
    finally:
        stop.set()
        store.close()


def _as(holder: str, **fields) -> str:
    host, pid, rand, boot, namespace, started = holder.split(":")
    values = dict(host=host, pid=pid, rand=rand, boot=boot, namespace=namespace, started=started) | fields
    return ":".join(str(values[k]) for k in ("host", "pid", "rand", "boot", "namespace", "started"))


def test_the_dead_holder_shortcut_needs_this_boot_and_pid_namespace_and_the_same_process():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ours = new_holder_id()
        assert len(ours.split(":")) == 6
        assert holder_is_dead(_as(ours, pid=dead.pid))
        assert not holder_is_dead(_as(ours, pid=dead.pid, namespace="1"))  # another container
        assert not holder_is_dead(_as(ours, pid=dead.pid, boot="0" * 36))  # a cloned VM, or before a reboot
        assert not holder_is_dead(_as(ours, pid=dead.pid, host="elsewhere"))
        assert not holder_is_dead(f"{ours.split(':')[0]}:{dead.pid}:x")  # an older version's id: no shortcut
        live_id = _as(ours, pid=live.pid, started=fencing._started(live.pid))
        assert not holder_is_dead(live_id)
        assert holder_is_dead(_as(live_id, started="1"))  # the pid now names another process
        assert not holder_is_dead(ours)
    finally:
        live.kill()
        live.wait()


def test_a_stop_during_a_take_releases_and_nothing_takes_the_lease_after(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'stop.sqlite'}")
    entered, go_on = threading.Event(), threading.Event()
    real = store.acquire_lease

    def slow(holder, ttl, name=fencing.DISPATCHER_LEASE):
        entered.set()
        go_on.wait(5)
        return real(holder, ttl, name)

    store.acquire_lease = slow
    leadership = Leadership(store, "us", lambda: 30.0, lambda: None)
    try:
        leadership.start()
        assert entered.wait(5)
        stopper = threading.Thread(target=leadership.stop, kwargs={"timeout": 0.1})
        stopper.start()
        time.sleep(0.3)  # the join timed out; stop waits for the take under way
        go_on.set()
        stopper.join(5)
        assert not stopper.is_alive()
        time.sleep(0.3)
        assert leadership.current() is None
        assert store.read_lease()[1] == 0.0  # released after the take, not re-taken
        assert leadership._thread.join(5) is None and not leadership._thread.is_alive()
    finally:
        go_on.set()
        store.close()
