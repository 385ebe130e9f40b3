"""End to end: three replicas on one PostgreSQL, the ssh backend on a real sshd, the leader killed, then frozen.

100 pipelines are submitted round-robin across the three ``serve`` processes; each appends its marker to a
file on the ssh host and sleeps. Mid-run the leader is ``kill -9``-ed and a follower takes over; then the new
leader is frozen (SIGSTOP) until its lease expires and the third takes over, then thawed (SIGCONT). All 100
succeed, each marker is written exactly once, no instance (row or job process) is left, and the thawed leader
writes nothing to the pipeline tables after its thaw (database triggers record who wrote each row).
"""

from __future__ import annotations

import collections
import re
import signal
import time
from pathlib import Path

import psutil
import pytest
import requests

from devtools.sshd import SSHD, SSHServer

from .conftest import wait_until
from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)
from .replicas import Cluster, first_start, install_audit, start_cluster, writes

COUNT = 100
LEASE = 5.0
SLOTS = 8


@pytest.mark.slow
def test_three_replicas_survive_a_killed_and_a_frozen_leader(tmp_path, postgres_url, key):
    assert Path(SSHD).exists(), f"{SSHD} missing: run scripts/setup.sh test (installs openssh-server)"
    scripts, marker, remote = tmp_path / "scripts", tmp_path / "markers.txt", tmp_path / "remote"
    scripts.mkdir()
    (scripts / "mark.sh").write_text(f'echo "$1" >> {marker}; sleep 1\n')
    sshd = SSHServer(authorized_keys=[key.with_suffix(".pub").read_text()], workdir=tmp_path / "sshd").start()
    host = {"address": sshd.host, "port": sshd.port, "user": sshd.user, "key_file": str(key), "slots": SLOTS}
    cluster = None
    try:
        cluster = start_cluster(
            tmp_path,
            postgres_url,
            scripts,
            backend="ssh",
            ssh_hosts=[host],
            remote_base_folder=str(remote),
            max_active_pipelines=SLOTS,
            poll_interval=0.2,
            dispatcher_lease=LEASE,
            idle_timeout=0.5,
        )
        _run_the_scenario(cluster, marker, remote)
    finally:
        if cluster is not None:
            cluster.stop()
        sshd.stop()
        _kill_jobs_under(remote)


def _run_the_scenario(cluster: Cluster, marker: Path, remote: Path) -> None:
    engine = cluster.engine()
    try:
        install_audit(engine)
        _submit_round_robin(cluster)
        killed, new_leader, kill_took = _kill_the_leader(cluster, engine)
        frozen, third, freeze_took, thawed_at = _freeze_the_leader(cluster, engine, new_leader)
        print(f"\ntake-over after kill -9 of {killed.name}: {kill_took:.2f} s (first start by {new_leader.name})")
        print(f"take-over after SIGSTOP of {frozen.name}: {freeze_took:.2f} s (first start by {third.name})")
        items = wait_until(lambda: _all_ended(third), timeout=120, interval=0.5, message="all 100 ended")
        _assert_exactly_once(engine, items, marker)
        _assert_nothing_left(engine, remote)
        late = writes(engine, app=frozen.name, after=thawed_at)
        assert late == [], f"{frozen.name} wrote after its thaw (it had lost the lease): {late[:5]}"
        assert re.search(r"\((\S+)\) (stops dispatching|no longer dispatches)", frozen.log_text()), "no lost-lease line"
        # The goal (the next start within 1 s of the lease's expiry) is measured by bench/bench_replicas.py on
        # its own; here, beside another test file's processes, the bound only tells a take-over at the expiry
        # (kill -9: sooner, the dead holder's pid is seen) from one a whole lease late (6.2 s seen once).
        assert kill_took < LEASE + 1, f"kill -9: {kill_took:.2f} s, no wait for the expiry expected"
        assert freeze_took < 2 * LEASE, f"SIGSTOP: {freeze_took:.2f} s, the take-over comes at the lease's expiry"
    finally:
        engine.dispose()


def _submit_round_robin(cluster: Cluster) -> None:
    for n in range(COUNT):
        replica = cluster.replicas[n % len(cluster.replicas)]
        item = {"type": "script", "script": "mark.sh", "args": [f"marker-{n}"]}
        answer = requests.post(replica.url + "/pipeline", json=[item], timeout=30)
        assert answer.status_code == 200 and answer.json()["content"][0]["request"] == "success", answer.text


def _progress(replica) -> collections.Counter:
    items = requests.get(replica.url + "/api/v1/pipelines", params={"limit": 1000}, timeout=10).json()["items"]
    return collections.Counter(p["status"] for p in items)


def _kill_the_leader(cluster: Cluster, engine):
    """kill -9 the leader mid-run; returns it, the follower that took over and kill -> its first start (s)."""
    leader = wait_until(lambda: cluster.leader(engine), timeout=20, message="a leader")
    follower = next(r for r in cluster.replicas if r is not leader)
    wait_until(
        lambda: (c := _progress(follower))["succeeded"] >= 10 and c["running"] >= 4 and c["queued"] >= 40,
        timeout=60,
        interval=0.1,
        message="mid-run",
    )
    killed_at = time.time()
    leader.server.kill9()
    new_leader = wait_until(lambda: cluster.leader(engine), timeout=3 * LEASE, message="a new leader")
    started = wait_until(
        lambda: first_start(engine, new_leader.name, killed_at), timeout=3 * LEASE, message="a start by the new leader"
    )
    return leader, new_leader, started - killed_at


def _freeze_the_leader(cluster: Cluster, engine, leader):
    """SIGSTOP ``leader`` until another one starts a pipeline, then SIGCONT it; returns it, the other, the
    freeze -> the other's first start (s) and when it was thawed."""
    third = next(r for r in cluster.replicas if r.alive() and r is not leader)
    wait_until(lambda: _progress(third)["queued"] >= 10, timeout=5, message="a queue left to freeze on")
    frozen_at = time.time()
    leader.signal(signal.SIGSTOP)
    try:
        started = wait_until(lambda: first_start(engine, third.name, frozen_at), timeout=3 * LEASE, message="a start")
    except AssertionError as exc:
        raise AssertionError(
            f"no take-over from the frozen {leader.name}: {exc}; sessions: {_sessions(engine)}"
        ) from None
    assert _progress(third)["queued"] > 0, "the frozen leader should thaw while work is left"
    thawed_at = time.time()
    leader.signal(signal.SIGCONT)
    return leader, third, started - frozen_at, thawed_at


def _sessions(engine) -> list[tuple]:
    """The replicas' database sessions: who waits on a lock, who sits in an open transaction."""
    from sqlalchemy import text

    query = (
        "SELECT application_name, state, wait_event_type, left(query, 80) FROM pg_stat_activity"
        " WHERE application_name LIKE 'replica-%' AND state <> 'idle'"
    )
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text(query))]


def _all_ended(replica) -> list[dict] | None:
    items = requests.get(replica.url + "/api/v1/pipelines", params={"limit": 1000}, timeout=10).json()["items"]
    return items if all(p["status"] in ("succeeded", "failed", "cancelled") for p in items) else None


def _assert_exactly_once(engine, items: list[dict], marker: Path) -> None:
    assert len(items) == COUNT
    assert collections.Counter(p["status"] for p in items) == {"succeeded": COUNT}
    counts = collections.Counter(marker.read_text().splitlines())
    assert sorted(counts) == sorted(f"marker-{n}" for n in range(COUNT))
    twice = {k for k, v in counts.items() if v != 1}
    assert not twice, f"ran more than once: {sorted(twice)}; who wrote them: {_who_wrote(engine, items, twice)}"


def _who_wrote(engine, items: list[dict], markers: set[str]) -> list[tuple]:
    inserted = writes(engine, table="pipelines")
    ids = {w["row_data"]["id"] for w in inserted if any(re.search(rf"\b{m}\b", str(w["row_data"])) for m in markers)}
    found = writes(engine, table="pipeline_transitions")
    return [
        (w["app"], round(w["at"], 2), w["row_data"]["pipeline_id"], w["row_data"]["to_status"])
        for w in found
        if w["row_data"]["pipeline_id"] in ids
    ]


def _assert_nothing_left(engine, remote: Path) -> None:
    from sqlalchemy import text

    def live_instances():
        with engine.connect() as connection:
            query = "SELECT id, state FROM instances WHERE state NOT IN ('deleted', 'broken')"
            return [tuple(r) for r in connection.execute(text(query))]

    try:
        wait_until(lambda: not live_instances(), timeout=15, interval=0.2, message="no live instance row")
    except AssertionError:
        raise AssertionError(f"instances left: {live_instances()}") from None
    assert _jobs_under(remote) == [], "job processes left on the ssh host"


def _jobs_under(remote: Path) -> list[psutil.Process]:
    jobs = []
    for process in psutil.process_iter(["cwd", "cmdline"]):
        cwd = process.info.get("cwd") or ""
        if cwd.startswith(str(remote)) or any(str(remote) in part for part in process.info.get("cmdline") or []):
            jobs.append(process)
    return jobs


def _kill_jobs_under(remote: Path) -> None:
    for process in _jobs_under(remote):
        try:
            process.kill()
        except psutil.Error:
            pass
