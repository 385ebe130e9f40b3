"""A database or key file the service cannot use: one line naming the file and the problem at start
(under `scheduler-server serve` and under plain gunicorn), a 503 with the reason while running, and
`GET /` not ready while the database cannot take writes.

Read-only and full file systems are real: a small tmpfs mounted (read-only, or filled up) under the
test's directory, which needs root, as the suite runs in CI. A read-only database while running is
PostgreSQL's `default_transaction_read_only` (a mounted file system cannot turn read-only under open files).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from devtools.sshd import free_port

from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)
from .server import BIN, ServeProcess, clean_env

ITEM = {"type": "script", "script": "ok.sh", "args": []}


@pytest.fixture
def tmpfs(tmp_path):
    """A 4 MB tmpfs at tmp_path/mnt, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail(
            "these tests mount a small tmpfs (a real read-only or full file system): run them as root, as CI does",
            pytrace=False,
        )
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def write_config(home: Path, data_dir: Path, scripts: Path, **pipelines) -> Path:
    home.mkdir(exist_ok=True)
    lines = [f"data_dir: {data_dir}", "pipelines:", f"  local_scripts_folder: {scripts}", "  poll_interval: 0.05"]
    lines += [f"  {key}: '{value}'" for key, value in pipelines.items()]
    config = home / "config.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def make_database(config: Path) -> None:
    """A working database (and key file) in the configured data directory, made by a real start."""
    done = subprocess.run(
        [str(BIN / "scheduler-server"), "pipelines", "list", "--config", str(config)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    return filler


def start_failure(kind: str, home: Path, config: Path) -> str:
    """Start `serve` or plain gunicorn (2 workers); it must exit, without a traceback. Its output."""
    port = free_port()
    if kind == "serve":
        args = [str(BIN / "scheduler-server"), "serve", "--port", str(port), "--config", str(config)]
    else:
        args = [str(BIN / "gunicorn"), "-w", "2", "--bind", f"127.0.0.1:{port}", "scheduler_server.app:app"]
    env = clean_env(home) | {"SCHEDULER_SERVER_CONFIG": str(config)}
    try:
        done = subprocess.run(args, cwd=home, env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{kind} kept running on a broken environment: {exc.stdout}\n{exc.stderr}") from None
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in _without_gunicorns_double_halt(output), output
    return output


def _without_gunicorns_double_halt(output: str) -> str:
    """gunicorn 27's arbiter, when both workers exit with APP_LOAD_ERROR in one reap, raises HaltServer
    again while halting and prints that traceback of its own (arbiter.py reap_workers -> halt -> stop ->
    reap_workers). It runs through no code of ours and follows our one line; anything else is kept."""
    if "gunicorn.errors.HaltServer: <HaltServer 'App failed to load.' 4>" not in output:
        return output
    head, _, tail = output.partition("Traceback (most recent call last):")
    frames = [line for line in tail.splitlines() if line.strip().startswith("File ")]
    return head if all("/gunicorn/" in frame or "/bin/gunicorn" in frame for frame in frames) else output


def one_line_about(output: str, *words: str) -> str:
    lines = [line for line in output.splitlines() if all(word in line for word in words)]
    assert lines, f"no line with {words} in:\n{output}"
    # gunicorn prints the line once per worker that booted; each is the one line.
    assert len(set(line.split("]")[-1] for line in lines)) == 1, lines
    return lines[0]


@pytest.mark.parametrize("kind", ["serve", "gunicorn"])
def test_a_corrupt_database_file_stops_the_start_with_one_line(kind, tmp_path, scripts):
    data = tmp_path / "data"
    data.mkdir()
    (data / "pipelines.sqlite").write_bytes(b"this is not an SQLite database, it was overwritten\n" * 100)
    output = start_failure(kind, tmp_path / "home", write_config(tmp_path / "home", data, scripts))
    one_line_about(output, str(data / "pipelines.sqlite"), "not a database")


def test_the_pipelines_command_on_a_corrupt_database_says_so_on_one_line(tmp_path, scripts):
    data = tmp_path / "data"
    data.mkdir()
    (data / "pipelines.sqlite").write_bytes(b"overwritten\n" * 1000)
    config = write_config(tmp_path / "home", data, scripts)
    done = subprocess.run(
        [str(BIN / "scheduler-server"), "pipelines", "list", "--config", str(config)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert (
        done.stderr.strip()
        == f"Error: cannot start: pipelines database {data / 'pipelines.sqlite'}: not a database (corrupt, or not an SQLite file)"
    )


@pytest.mark.parametrize("kind", ["serve", "gunicorn"])
def test_a_read_only_file_system_stops_the_start_with_one_line(kind, tmp_path, scripts, tmpfs):
    config = write_config(tmp_path / "home", tmpfs, scripts)
    make_database(config)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    output = start_failure(kind, tmp_path / "home", config)
    one_line_about(output, str(tmpfs), "read-only file system")


def test_a_full_disk_stops_the_start_with_one_line(tmp_path, scripts, tmpfs):
    config = write_config(tmp_path / "home", tmpfs, scripts)
    make_database(config)
    fill(tmpfs)
    output = start_failure("serve", tmp_path / "home", config)
    one_line_about(output, str(tmpfs), "no space left")


def test_an_unreadable_key_file_stops_the_start_with_one_line(tmp_path, scripts):
    data = tmp_path / "data"
    (data / "pipelines.key").mkdir(parents=True)  # unreadable as a file, even by root
    output = start_failure("serve", tmp_path / "home", write_config(tmp_path / "home", data, scripts))
    one_line_about(output, f"key file {data / 'pipelines.key'}: cannot read it")


def test_an_empty_database_file_is_initialised_and_says_so(tmp_path, scripts):
    data = tmp_path / "data"
    data.mkdir()
    (data / "pipelines.sqlite").touch()
    server = ServeProcess(tmp_path / "home", config=write_config(tmp_path / "home", data, scripts)).start()
    try:
        answer = requests.post(server.url + "/api/v1/pipelines", json=[ITEM], timeout=10)
        assert answer.status_code in (200, 201, 202), answer.text
    finally:
        server.stop()
    assert (
        f"{data / 'pipelines.sqlite'} is an empty (0-byte) file: initialising it as a new pipeline database"
        in server.log.read_text()
    )


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def assert_unavailable(server, reason_words: tuple[str, ...]) -> None:
    """Submissions on both APIs answer 503 with the reason, and GET / reports not ready."""
    answer = requests.post(server.url + "/api/v1/pipelines", json=[ITEM], timeout=30)
    assert answer.status_code == 503, answer.text
    assert all(word in answer.json()["message"] for word in reason_words), answer.json()
    assert answer.headers["Retry-After"]
    seed = requests.post(server.url + "/pipeline", json=ITEM, timeout=30)
    assert seed.status_code == 503 and seed.json()["request"] == "error", seed.text
    assert all(word in seed.json()["content"] for word in reason_words), seed.json()
    # A Response is falsy when not ok: wrapped in a list for wait_for.
    health = wait_for(lambda: [r] if (r := requests.get(server.url + "/", timeout=30)).status_code == 503 else None)
    assert health, "GET / stayed ready"
    health = health[0]
    content = health.json()["content"]
    assert health.json()["request"] == "error" and content["status"] == "unavailable" and content["version"]
    assert all(word in content["reason"] for word in reason_words), content


def assert_ready_again(server) -> None:
    assert wait_for(lambda: requests.get(server.url + "/", timeout=30).status_code == 200), (
        "GET / did not become ready again"
    )
    answer = requests.post(server.url + "/api/v1/pipelines", json=[ITEM], timeout=30)
    assert answer.status_code in (200, 201, 202), answer.text


def test_a_disk_that_fills_while_running_gives_503_with_the_reason_and_not_ready(tmp_path, scripts, tmpfs):
    server = ServeProcess(tmp_path / "home", config=write_config(tmp_path / "home", tmpfs, scripts)).start()
    try:
        assert requests.get(server.url + "/", timeout=10).status_code == 200
        filler = fill(tmpfs)
        assert_unavailable(server, ("disk full", str(tmpfs)))
        filler.unlink()
        assert_ready_again(server)
    finally:
        server.stop()
    assert "Traceback" not in server.log.read_text()


def test_a_database_that_turns_read_only_while_running_gives_503_with_the_reason_and_not_ready(
    tmp_path, scripts, postgres_url
):
    server = ServeProcess(
        tmp_path / "home", config=write_config(tmp_path / "home", tmp_path / "data", scripts, database_url=postgres_url)
    ).start()
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = postgres_url.rsplit("/", 1)[1]

    def set_read_only(on: bool) -> None:
        with admin.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}')
            )
            # Sessions read the setting when they start: end the service's current ones.
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )

    try:
        assert requests.get(server.url + "/", timeout=10).status_code == 200
        set_read_only(True)
        assert_unavailable(server, ("read-only", name))
        set_read_only(False)
        assert_ready_again(server)
    finally:
        server.stop()
        admin.dispose()
    # The dispatcher says so once, without a traceback per tick.
    log = server.log.read_text()
    assert "Traceback" not in log and log.count("dispatcher waiting for the database") <= 2, log[-3000:]


def test_health_checks_do_not_write_on_every_call(make_client, monkeypatch):
    from scheduler_server.pipelines.storage import health as store_health

    client = make_client()
    health = client.application.extensions["pipelines"].service.store.health
    probes = []
    real_probe = health._probe
    monkeypatch.setattr(health, "_probe", lambda: probes.append(1) or real_probe())
    assert client.post("/api/v1/pipelines", json=[ITEM]).status_code == 201  # a write just went through
    assert all(client.get("/").status_code == 200 for _ in range(20))
    assert probes == []
    monkeypatch.setattr(store_health, "FRESH_SECONDS", 0.0)  # no recent write: probes decide, one a second at most
    started = time.monotonic()
    assert all(client.get("/").status_code == 200 for _ in range(20))
    assert 1 <= len(probes) <= 1 + int(time.monotonic() - started)


def test_a_job_the_database_drops_under_logs_one_line_and_no_traceback(make_service, caplog):
    """A connection ended under a worker's job (the read-only test above ends every session) is the
    database's problem, said on one line; the job runs again at a later tick."""
    from scheduler_server.pipelines.storage.errors import StoreUnavailable

    service = make_service(start=False)

    def dropped():
        raise StoreUnavailable("the server is shutting down or not accepting connections")

    with caplog.at_level("WARNING", logger="scheduler_server.pipelines.scheduling.dispatcher"):
        service.dispatcher._job(("reap",), dropped)
    # Only this job's record: threads of other services in the process may log meanwhile.
    [record] = [r for r in caplog.records if "('reap',)" in r.getMessage()]
    assert record.exc_info is None
    assert "('reap',)" in record.getMessage() and "not accepting connections" in record.getMessage()
    assert not service.dispatcher.busy(("reap",))
