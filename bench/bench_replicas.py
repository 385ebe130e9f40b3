"""Replicas on one PostgreSQL: fail-over time, submit-to-start on a follower vs the leader, throughput.

Prints one table:
  (a) fail-over: three `serve` replicas (own data directories, ssh backend on a local sshd, 8 slots), a
      stream of pipelines; kill -9 of the leader -> the first pipeline started by the new leader, and
      SIGSTOP of the leader -> the first start by another; at lease 5 s and at the default (15 s);
      goal: under lease + 1 s. (Who started what: database triggers, tests/pipelines/replicas.py.)
  (b) p50 through the leader's port and through a follower's (same cluster, ssh backend, warm slots,
      default poll_interval), of the same submissions measured two ways: queue wait (created_at -> out
      of queued, from the database) and submit -> script start (client -> the script's first line);
      goal: the follower within 5 ms of the leader.
  (c) 1,000 trivial pipelines, 8 active, local backend: `serve --workers 3` on PostgreSQL (three
      dispatching-capable processes sharing one data directory), one `serve` on PostgreSQL, one `serve`
      on SQLite: makespan (first POST to last success) and throughput.

Usage: .venv/bin/python bench/bench_replicas.py [--runs 3] [--default-runs 1] [--samples 30] [--count 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from devtools.sshd import SSHServer, generate_keypair  # noqa: E402
from tests.pipelines import postgres as pg  # noqa: E402
from tests.pipelines.replicas import first_start, install_audit, start_cluster  # noqa: E402
from tests.pipelines.server import ServeProcess  # noqa: E402
from tests.waiting import wait_until  # noqa: E402


@contextlib.contextmanager
def postgres():
    """A throwaway PostgreSQL server (as the suite's fixture starts it); yields a function making databases."""
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))  # its own, directly under /tmp: the postgres user enters it
    initdb, pg_ctl = pg._find_binaries()
    as_user = ["runuser", "-u", "postgres", "--"] if __import__("os").geteuid() == 0 else []
    if as_user:
        __import__("shutil").chown(root, "postgres", "postgres")
    data, log = root / "data", root / "server.log"
    pg._run([str(initdb), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"], as_user)
    port = pg._free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off -c max_connections=200"
    )
    pg._run([str(pg_ctl), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"], as_user)
    base = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    names = iter(range(1, 10_000))

    def database() -> str:
        from sqlalchemy import create_engine, text

        name = f"bench_{next(names)}"
        engine = create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return f"{base}/{name}"

    try:
        pg._wait_for_connections(base + "/postgres", log)
        yield database
    finally:
        subprocess.run(as_user + [str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        __import__("shutil").rmtree(root, ignore_errors=True)


def _ssh_cluster(root: Path, database_url: str, sshd, key: Path, **pipelines):
    scripts = root / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / "nap.sh").write_text("sleep 0.5\n")
    (scripts / "stamp.sh").write_text('echo "$EPOCHREALTIME" > "$1"\n')
    host = {"address": sshd.host, "port": sshd.port, "user": sshd.user, "key_file": str(key), "slots": 8}
    settings = {"backend": "ssh", "ssh_hosts": [host], "remote_base_folder": str(root / "remote"), **pipelines}
    return start_cluster(root, database_url, scripts, max_active_pipelines=8, virtual_server_ttl=1000, **settings)


def _post(url: str, items: list[dict]) -> list[int]:
    answer = requests.post(url + "/pipeline", json=items, timeout=60)
    answer.raise_for_status()
    return [r["id"] for r in answer.json()["content"]]


def failover(root: Path, database_url: str, sshd, key: Path, lease: float) -> tuple[float, float]:
    """One run: (kill -9 -> first start by the new leader, SIGSTOP -> first start by another), seconds."""
    cluster = _ssh_cluster(root, database_url, sshd, key, dispatcher_lease=lease, poll_interval=0.2)
    engine = cluster.engine()
    try:
        install_audit(engine)
        count = int(40 + 4 * lease * 8)  # enough to keep 8 slots busy through both take-overs
        for n in range(0, count, 20):
            _post(cluster.replicas[n // 20 % 3].url, [{"type": "script", "script": "nap.sh"}] * 20)
        leader = wait_until(lambda: cluster.leader(engine), timeout=3 * lease, message="a leader")
        wait_until(lambda: first_start(engine, leader.name, 0), timeout=30, message="a first start")
        killed_at = time.time()
        leader.server.kill9()
        second = wait_until(lambda: cluster.leader(engine), timeout=3 * lease, message="a new leader")
        start = wait_until(lambda: first_start(engine, second.name, killed_at), timeout=3 * lease, message="kill -9")
        after_kill = start - killed_at
        stopped_at = time.time()
        second.signal(signal.SIGSTOP)
        third = next(r for r in cluster.replicas if r.alive() and r is not second)
        try:
            start = wait_until(
                lambda: first_start(engine, third.name, stopped_at), timeout=3 * lease, message="SIGSTOP"
            )
            after_stop = start - stopped_at
        except AssertionError as exc:  # no take-over in 3 x the lease: shown as inf, the reason on stderr
            print(f"fail-over run at lease {lease:g} s: {exc}", file=sys.stderr)
            after_stop = float("inf")
        second.signal(signal.SIGCONT)
        return after_kill, after_stop
    finally:
        engine.dispose()
        cluster.stop()
        _kill_jobs(root / "remote")


def _kill_jobs(remote: Path) -> None:
    for pid_file in remote.glob("**/pid"):
        with contextlib.suppress(OSError, ValueError):
            __import__("os").killpg(int(pid_file.read_text()), signal.SIGKILL)


def follower_latency(root: Path, database_url: str, sshd, key: Path, samples: int) -> dict[str, dict[str, float]]:
    """p50 (ms) per role ("leader", "follower": the port submitted to) of the same submissions, measured
    two ways: "queue" = the row's ``created_at`` (stamped by the replica taking the POST) -> its first
    transition out of ``queued`` (the leader assigned it: the wake-up and the assignment, no backend work);
    "start" = the client's time before the POST -> the script's first line on the ssh host (HTTP, the
    wake-up, the assignment, then staging and launch over ssh)."""
    cluster = _ssh_cluster(root, database_url, sshd, key)
    engine = cluster.engine()
    marks = root / "marks"
    marks.mkdir()
    try:
        leader = wait_until(lambda: cluster.leader(engine), timeout=30, message="a leader")
        follower = next(r for r in cluster.replicas if r is not leader)
        found: dict[str, dict[str, list[float]]] = {role: {"queue": [], "start": []} for role in ("leader", "follower")}
        for n in range(2 * samples + 8):
            role, replica = ("leader", leader) if n % 2 == 0 else ("follower", follower)
            target = marks / str(n)
            t0 = time.time()
            (pipeline_id,) = _post(replica.url, [{"type": "script", "script": "stamp.sh", "args": [str(target)]}])
            time.sleep(0.3)
            wait_until(lambda t=target: t.exists() and t.read_text().strip(), timeout=30, interval=0.02)
            if n >= 8:  # the first ones also take the slots
                found[role]["start"].append(float(target.read_text()) - t0)
                found[role]["queue"].append(_queue_wait(engine, pipeline_id))
        return {role: {k: statistics.median(v) * 1000 for k, v in ways.items()} for role, ways in found.items()}
    finally:
        engine.dispose()
        cluster.stop()


def _queue_wait(engine, pipeline_id: int) -> float:
    """created_at -> the first transition out of queued (seconds)."""
    from sqlalchemy import text

    query = text(
        "SELECT min(t.at) - p.created_at FROM pipelines p JOIN pipeline_transitions t ON t.pipeline_id = p.id"
        " WHERE p.id = :id AND t.from_status = 'queued' GROUP BY p.created_at"
    )
    with engine.connect() as connection:
        return connection.execute(query, {"id": pipeline_id}).scalar_one()


def throughput(root: Path, database_url: str | None, workers: int, count: int) -> tuple[float, float]:
    """(makespan s, pipelines/s) of ``count`` trivial pipelines on the local backend."""
    root.mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "scripts" / "true.sh").write_text("exit 0\n")
    section = {"local_scripts_folder": str(root / "scripts"), "max_active_pipelines": 8, "virtual_server_ttl": 1000}
    section.update({"poll_interval": 0.05, **({"database_url": database_url} if database_url else {})})
    config = root / "config.yaml"
    server_section = {"workers": workers, "max_body_bytes": 64 * 1024 * 1024}
    body = {"data_dir": str(root / "data"), "logging": {"level": "WARNING"}, "server": server_section}
    config.write_text(json.dumps({**body, "pipelines": section}))
    server = _started(ServeProcess(root, config))
    try:
        session = requests.Session()
        t0 = time.time()
        for _ in range(0, count, 50):  # 50 per POST: several connections, spread over the workers
            requests.post(server.url + "/pipeline", json=[{"type": "script", "script": "true.sh"}] * 50, timeout=60)

        def done():
            page = session.get(server.url + "/api/v1/pipelines", params={"status": "succeeded", "limit": 1}).json()
            return page["total"] >= count

        wait_until(done, timeout=600, interval=0.1, message=f"{count} succeeded")
        makespan = time.time() - t0
        return makespan, count / makespan
    finally:
        server.stop()
        _kill_jobs(root / "data" / "instances")


def _one_failover(root: Path, database_url: str, sshd, key: Path, lease: float) -> tuple[float, float]:
    try:
        return failover(root, database_url, sshd, key, lease)
    except AssertionError as exc:  # no take-over in 3 x the lease: shown as inf, the reason on stderr
        print(f"fail-over run at lease {lease:g} s: {exc}", file=sys.stderr)
        return float("inf"), float("inf")


def _started(server: ServeProcess) -> ServeProcess:
    """Started and answering (the master of ``--workers`` takes connections before its workers answer them)."""
    try:
        return server.start(timeout=60)
    except requests.ReadTimeout:
        wait_until(lambda: requests.get(server.url + "/", timeout=30).ok, timeout=60, interval=0.2)
        return server


def _failover_rows(root: Path, database, sshd, key, runs: dict[float, int]) -> list[tuple]:
    rows = []
    for lease, n in runs.items():
        if n == 0:
            continue
        results = [_one_failover(root / f"failover-{lease}-{i}", database(), sshd, key, lease) for i in range(n)]
        for k, label in enumerate(("kill -9", "SIGSTOP")):
            values = [r[k] for r in results]
            shown = ", ".join(f"{v:.2f}" for v in values)
            ok = all(v < lease + 1 for v in values)
            rows.append((f"(a) {label} -> next start, lease {lease:g} s", f"{shown} s", f"< {lease + 1:g} s", ok))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="fail-over runs at lease 5 s")
    parser.add_argument("--default-runs", type=int, default=1, help="fail-over runs at the default lease (15 s)")
    parser.add_argument("--samples", type=int, default=30, help="submissions per role for (b)")
    parser.add_argument("--count", type=int, default=1000, help="pipelines for (c)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        root = Path(tmp)
        key = generate_keypair(root / "id_ed25519")
        with postgres() as database, SSHServer([key.with_suffix(".pub").read_text()]) as sshd:
            rows = _failover_rows(root, database, sshd, key, {5.0: args.runs, 15.0: args.default_runs})
            p50 = follower_latency(root / "latency", database(), sshd, key, args.samples)
            for way, label in (("queue", "queue wait"), ("start", "submit -> script start")):
                leader, follower = p50["leader"][way], p50["follower"][way]
                rows.append((f"(b) {label} p50, via the leader", f"{leader:.1f} ms", "", None))
                ok = follower - leader < 5
                rows.append((f"(b) {label} p50, via a follower", f"{follower:.1f} ms", "leader + 5 ms", ok))
            for label, url, workers in (
                ("serve --workers 3, PostgreSQL", database(), 3),
                ("serve, PostgreSQL", database(), 1),
                ("serve, SQLite", None, 1),
            ):
                makespan, rate = throughput(root / f"tp-{workers}-{bool(url)}", url, workers, args.count)
                rows.append((f"(c) {args.count} trivial, {label}", f"{makespan:.1f} s, {rate:.1f}/s", "", None))
    print(f"| {'measure':<48} | {'result':>24} | {'goal':>13} | ok  |")
    print(f"|{'-' * 50}|{'-' * 26}|{'-' * 15}|-----|")
    for name, value, goal, ok in rows:
        print(f"| {name:<48} | {value:>24} | {goal:>13} | {'' if ok is None else ('yes' if ok else 'NO'):<3} |")


if __name__ == "__main__":
    main()
