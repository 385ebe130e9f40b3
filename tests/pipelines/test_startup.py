"""Several processes starting at once on one database: the schema is created or migrated once,
under the schema lock, and every one of them starts (before the lock, 2 starts in 19 of
`gunicorn -w 4` on a fresh data directory died with "database is locked" in create_all).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
import requests
from sqlalchemy import create_engine, text

from devtools.sshd import free_port
from scheduler_server.pipelines.storage import migrations
from scheduler_server.web.auth import OPEN_WARNING

from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)
from .server import BIN, clean_env

# Each process imports once, then opens a store on round r's database at the same instant as the others.
OPENER = textwrap.dedent(
    """
    import sys, time
    from scheduler_server.pipelines.storage.store import Store
    start, urls = float(sys.argv[1]), sys.argv[2:]
    for r, url in enumerate(urls):
        time.sleep(max(0.0, start + r * 0.6 - time.time()))
        Store(url).close()
    """
)


def open_together(urls: list[str], processes: int, tmp_path) -> None:
    start = time.time() + 3.0  # after every process has imported
    logs = [tmp_path / f"opener{i}.log" for i in range(processes)]
    running = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(start), *urls], stdout=open(log, "wb"), stderr=subprocess.STDOUT
        )
        for log in logs
    ]
    codes = [p.wait(120) for p in running]
    failures = [log.read_text()[-1500:] for code, log in zip(codes, logs) if code != 0]
    assert not failures, failures[0]


def test_processes_opening_a_fresh_sqlite_database_at_once_all_start(tmp_path):
    urls = [f"sqlite:///{tmp_path / f'round{r}' / 'pipelines.sqlite'}" for r in range(8)]
    open_together(urls, processes=6, tmp_path=tmp_path)
    for url in urls:
        assert migrations.current(url) == migrations.head()


def test_processes_opening_a_fresh_postgresql_database_at_once_all_start(postgres_server, tmp_path):
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    names = [f"startup_{r}_{int(time.time() * 1000) % 10**8}" for r in range(5)]
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    urls = [postgres_server.rsplit("/", 1)[0] + f"/{name}" for name in names]
    open_together(urls, processes=6, tmp_path=tmp_path)
    for url in urls:
        assert migrations.current(url) == migrations.head()


def start_gunicorn(home, data_dir, workers: int = 4, database_url: str | None = None):
    port = free_port()
    config = home / "config.yaml"
    config.write_text(
        f"data_dir: {data_dir}\n" + (f"pipelines:\n  database_url: '{database_url}'\n" if database_url else "")
    )
    env = clean_env(home) | {"SCHEDULER_SERVER_CONFIG": str(config)}
    log = home / f"gunicorn-{port}.log"
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-w", str(workers), "--bind", f"127.0.0.1:{port}", "scheduler_server.app:app"],
        cwd=home,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    return process, port, log


def wait_all_workers_serving(process, port: int, log, workers: int, timeout: float = 60.0) -> str:
    """Every worker built the app and the service answers. The API is open: that is said once, by one worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = log.read_text(errors="replace")
        assert process.poll() is None, f"gunicorn exited {process.returncode}:\n{output[-3000:]}"
        if built(process, port, workers) >= workers:
            output = log.read_text(errors="replace")
            assert output.count(OPEN_WARNING) == 1, output[-3000:]
            assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
            return output
        time.sleep(0.1)
    raise AssertionError(f"not every worker started within {timeout} s:\n{log.read_text()[-3000:]}")


def built(process, port: int, workers: int) -> int:
    """How many of gunicorn's workers built the app: ``workers`` connections are held open at once, and a
    worker accepts one only once it has (then it reads it until it closes)."""
    pids = {child.pid for child in psutil.Process(process.pid).children()}
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(workers)]
    except ConnectionRefusedError:
        return 0  # not listening yet
    mine = {sock.getsockname()[1] for sock in held}
    holders: set[int] = set()
    try:
        deadline = time.monotonic() + 0.5
        while len(holders) < workers and time.monotonic() < deadline:
            holders |= {pid for pid in pids if _holds(pid, port, mine)}
            time.sleep(0.02)
    finally:
        for sock in held:
            sock.close()
    return len(holders)


def _holds(pid: int, port: int, clients: set[int]) -> bool:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    return any(c.laddr.port == port and c.raddr and c.raddr.port in clients for c in connections)


def stop(process) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.mark.slow
def test_gunicorn_with_four_workers_starts_every_time_on_a_fresh_and_on_an_existing_data_directory(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # The process tests above repeat the race cheaply; here the real thing: two fresh directories, then one again.
    data_dirs = [tmp_path / f"fresh{r}" for r in range(2)]
    for data_dir in [*data_dirs, data_dirs[0]]:
        fresh = not data_dir.exists()
        process, port, log = start_gunicorn(home, data_dir)
        try:
            output = wait_all_workers_serving(process, port, log, workers=4)
        finally:
            stop(process)
        assert "database is locked" not in output and "Traceback" not in output
        # The schema was made by one worker; the others found it done.
        assert output.count("creating the pipeline schema") == (1 if fresh else 0)
        assert migrations.current(f"sqlite:///{data_dir / 'pipelines.sqlite'}") == migrations.head()


@pytest.mark.slow
def test_gunicorn_with_four_workers_starts_on_a_fresh_postgresql_database(postgres_url, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    process, port, log = start_gunicorn(home, tmp_path / "data", database_url=postgres_url)
    try:
        output = wait_all_workers_serving(process, port, log, workers=4)
    finally:
        stop(process)
    assert "Traceback" not in output and output.count("creating the pipeline schema") == 1
    assert migrations.current(postgres_url) == migrations.head()
