"""`serve --workers N` and `gunicorn -w N`: real processes on one SQLite data directory.

Which process answered a request is seen from outside: the test opens a connection, finds the
worker process that holds its server end (psutil), then sends the request on it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil

from devtools.sshd import free_port
from scheduler_server.web.auth import OPEN_WARNING
from tests.e2e.conftest import BIN, wait_for_http

# Records its pid, sleeps $3 s, then appends its name to `ran`: each pipeline's runs are counted.
MARK = 'echo $$ > "$1/$2.pid"; sleep "$3"; echo "$2" >> "$1/ran"\n'


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    scripts, marks = tmp_path / "scripts", tmp_path / "marks"
    scripts.mkdir()
    marks.mkdir()
    (scripts / "mark.sh").write_text(MARK)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\npipelines:\n  local_scripts_folder: {scripts}\n"
        "  poll_interval: 0.1\n  max_active_pipelines: 4\n"
    )
    return config, marks


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _serve(tmp_path, env, config, workers: int, port: int) -> subprocess.Popen:
    args = [str(BIN / "scheduler-server"), "serve", "--port", str(port), "--workers", str(workers)]
    proc = _start([*args, "--config", str(config)], env, tmp_path / f"serve-{port}.log")
    wait_for_http(f"http://127.0.0.1:{port}/", proc)
    return proc


def _children(proc: subprocess.Popen, count: int, timeout: float = 20.0) -> set[int]:
    """The service's worker processes (not the pipelines' shells), once there are ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        found = {c.pid for c in psutil.Process(proc.pid).children() if "bash" not in c.name()}
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _request(port: int, workers: set[int], method: str, path: str, body=None) -> tuple[int, int, dict]:
    """(the pid of the worker that answered, status, JSON body), on a connection of its own."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        pid = _holder(port, sock.getsockname()[1], workers)
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(data)}\r\n"
        sock.sendall((head + "Content-Type: application/json\r\n\r\n").encode() + data)
        answer = _read_all(sock)
    finally:
        sock.close()
    head, _, content = answer.partition(b"\r\n\r\n")
    return pid, int(head.split()[1]), json.loads(content)


def _read_all(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def _holder(port: int, client_port: int, workers: set[int]) -> int:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for pid in workers:
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            if any(c.laddr.port == port and c.raddr and c.raddr.port == client_port for c in conns):
                return pid
        time.sleep(0.01)
    raise AssertionError("no worker accepted the connection")


def _submit(port, workers, marks: Path, name: str, seconds: int = 0) -> tuple[int, int]:
    item = {"type": "script", "script": "mark.sh", "args": [str(marks), name, str(seconds)]}
    pid, status, body = _request(port, workers, "POST", "/api/v1/pipelines", item)
    assert status == 201, body
    return pid, body["pipelines"][0]["id"]


def _wait_status(port, workers, ids, wanted: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for pipeline in ids:
        while (status := _request(port, workers, "GET", f"/api/v1/pipelines/{pipeline}")[2]["status"]) != wanted:
            assert time.monotonic() < deadline, f"pipeline {pipeline} is {status}, not {wanted}"
            time.sleep(0.1)


def _lease(data: Path) -> tuple[int, float]:
    """(the pid in the dispatcher lease's holder, its expiry); (0, 0.0) while there is no lease."""
    with sqlite3.connect(data / "pipelines.sqlite") as db:
        rows = db.execute("SELECT holder, expires_at FROM leases").fetchall()
    assert len(rows) <= 1, rows
    if not rows:
        return 0, 0.0
    return int(rows[0][0].split(":")[1]), rows[0][1]


def _leader(data: Path, among: set[int], timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while (pid := _lease(data)[0]) not in among or _lease(data)[1] < time.time():
        assert time.monotonic() < deadline, f"the lease is held by {pid}, none of {among}"
        time.sleep(0.05)
    return pid


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> float:
    """Signal the master, return how long it took to exit; kills the group if it hangs."""
    started = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        raise AssertionError("the master did not stop within 15 s") from None
    return time.monotonic() - started


def _answering(port: int, workers: set[int]) -> set[int]:
    """The workers seen answering GET / within 300 connections (all of them, as soon as each has)."""
    answered = set()
    for _ in range(300):
        pid, status, body = _request(port, workers, "GET", "/")
        assert status == 200 and body["content"]["status"] == "ok"
        answered.add(pid)
        if answered == workers:
            break
    return answered


def _replaced(proc: subprocess.Popen, victim: int, count: int) -> set[int]:
    deadline = time.monotonic() + 20
    while victim in (found := _children(proc, count)) or len(found) != count:
        assert time.monotonic() < deadline, f"no worker replaced {victim}: {found}"
        time.sleep(0.1)
    return found


def _leading(port: int, workers: set[int]) -> dict[int, float]:
    """/metrics' leadership gauge by pid, once every worker has one (the dead worker's is gone)."""
    deadline = time.monotonic() + 10
    while True:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            text = _read_all(sock).decode()
        found = re.findall(r'^scheduler_server_dispatcher_leading\{pid="(\d+)"\} (\S+)$', text, re.M)
        series = {int(pid): float(value) for pid, value in found}
        if set(series) == workers or time.monotonic() > deadline:
            return series
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _ran(marks: Path) -> list[str]:
    path = marks / "ran"
    return sorted(path.read_text().split()) if path.exists() else []


def test_three_workers_one_port_one_leader_respawn_and_graceful_stop(tmp_path, isolated_env):
    config, marks = _setup(tmp_path)
    data, port = tmp_path / "data", free_port()
    proc = _serve(tmp_path, isolated_env, config, 3, port)
    try:
        workers = _children(proc, 3)
        assert len(workers) == 3
        assert _answering(port, workers) == workers  # every worker accepts on the one port
        leader = _leader(data, workers)
        # submissions on any worker run, each exactly once
        submitted = [_submit(port, workers, marks, f"p{i}") for i in range(6)]
        _wait_status(port, workers, [pipeline for _, pipeline in submitted], "succeeded")
        assert _ran(marks) == [f"p{i}" for i in range(6)]
        assert _lease(data)[0] == leader  # one leader all along
        # a worker killed with SIGKILL is replaced; the others answer meanwhile
        victim = next(iter(workers - {leader}))
        os.kill(victim, signal.SIGKILL)
        assert _request(port, workers - {victim}, "GET", "/")[1] == 200
        respawned = _replaced(proc, victim, 3)
        assert len(respawned - workers) == 1
        assert _leading(port, respawned) == {pid: 1.0 if pid == leader else 0.0 for pid in respawned}
        assert _request(port, respawned, "GET", "/")[1] == 200
        # SIGTERM: a running script keeps running, the lease is handed over, all exit 0
        _, long_one = _submit(port, respawned, marks, "long", seconds=5)
        _wait_status(port, respawned, [long_one], "running")
        script = int((marks / "long.pid").read_text())
        took = _stop(proc)
    finally:
        if proc.poll() is None:
            _stop(proc)
    assert proc.returncode == 0
    # no tokens_file: said once, by the master, not by each worker (nor by the respawned one)
    assert (tmp_path / f"serve-{port}.log").read_text().count(OPEN_WARNING) == 1
    assert took < 8, f"stopping took {took:.1f} s"
    assert not any(_alive(pid) for pid in respawned)
    assert _lease(data)[1] <= time.time()  # released at once, not left to expire
    assert psutil.pid_exists(script) and "long" not in _ran(marks)  # the job outlived the service
    # the next start leads at once and re-attaches the running pipeline
    again = _serve(tmp_path, isolated_env, config, 2, port)
    try:
        started = time.monotonic()
        second = _children(again, 2)
        _leader(data, second, timeout=3.0)
        assert time.monotonic() - started < 3.0
        _wait_status(port, second, [long_one], "succeeded")
        assert _ran(marks).count("long") == 1
    finally:
        assert _stop(again) < 8 and again.returncode == 0


def test_port_taken_is_one_line_and_no_worker_starts(tmp_path, isolated_env):
    config, _ = _setup(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        args = [str(BIN / "scheduler-server"), "serve", "--port", str(port), "--workers", "3"]
        done = subprocess.run(
            [*args, "--config", str(config)], env=isolated_env, capture_output=True, text=True, timeout=30
        )
    finally:
        taken.close()
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "started worker" not in done.stdout + done.stderr
    assert not (tmp_path / "data" / "pipelines.sqlite").exists()  # no worker ever opened the database


def test_no_worker_can_start_exits_with_the_reason_once(tmp_path, isolated_env):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = tmp_path / "config.yaml"
    database = f"sqlite:///{blocker}/pipelines.sqlite"  # under a regular file: cannot be opened
    config.write_text(f"data_dir: {tmp_path / 'data'}\npipelines:\n  database_url: '{database}'\n")
    args = [str(BIN / "scheduler-server"), "serve", "--port", str(free_port()), "--workers", "3"]
    started = time.monotonic()
    done = subprocess.run(
        [*args, "--config", str(config)], env=isolated_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: cannot start: ") and str(blocker) in errors[0]
    assert "Traceback" not in done.stderr
    assert done.stderr.count("started worker") == 3  # no respawn loop: all three failed, the master stopped
    assert time.monotonic() - started < 30


def test_gunicorn_workers_all_answer_one_dispatches_and_stop_gracefully(tmp_path, isolated_env):
    workers = 3
    config, marks = _setup(tmp_path)
    data, port = tmp_path / "data", free_port()
    env = {**isolated_env, "SCHEDULER_SERVER_CONFIG": str(config)}
    args = [str(BIN / "gunicorn"), "-w", str(workers), "--bind", f"127.0.0.1:{port}", "scheduler_server.app:app"]
    proc = _start(args, env, tmp_path / "gunicorn.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", proc)
        pids = _children(proc, workers)
        assert len(pids) == workers
        # three connections held open at once: each sync worker takes one, so all three answer
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(workers)]
        holders = {_holder(port, s.getsockname()[1], pids) for s in held}
        for s in held:
            s.close()
        assert holders == pids
        submitted = [_submit(port, pids, marks, f"g{i}") for i in range(9)]
        assert len({pid for pid, _ in submitted}) >= 2  # spread over the workers
        _wait_status(port, pids, [pipeline for _, pipeline in submitted], "succeeded")
        assert _ran(marks) == sorted(f"g{i}" for i in range(9))
        assert _leader(data, pids) in pids
        took = _stop(proc)
    finally:
        if proc.poll() is None:
            _stop(proc)
    assert proc.returncode == 0 and took < 10
    assert (tmp_path / "gunicorn.log").read_text().count(OPEN_WARNING) == 1  # by the first worker only
    assert _lease(data)[1] <= time.time()  # the leading worker handed the lease over on its way out
