"""A throwaway PostgreSQL server for the store's PostgreSQL tests, started with the Debian binaries.

``postgres_server`` (session-scoped) runs initdb in a temporary directory, starts the server on a
free port on 127.0.0.1 (trust auth, unix socket in the same directory) and yields its SQLAlchemy URL;
it stops the server at the end. ``postgres_url`` gives each test a fresh, empty database on it.
PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` system user
(created by Debian's ``postgresql`` package) through ``runuser``.
Without the binaries the tests fail (they do not skip): ``scripts/setup.sh test`` installs them.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SETUP_HINT = "run `scripts/setup.sh test` (it installs Debian's postgresql package)"


def _find_binaries() -> tuple[Path, Path]:
    """initdb and pg_ctl from the newest /usr/lib/postgresql/<version>/bin that has both."""

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    for bin_dir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        initdb, pg_ctl = Path(bin_dir) / "initdb", Path(bin_dir) / "pg_ctl"
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return initdb, pg_ctl
    pytest.fail(f"PostgreSQL tests need initdb and pg_ctl under /usr/lib/postgresql/*/bin: {SETUP_HINT}", pytrace=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[str], as_user: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(as_user + command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _wait_for_connections(url: str, log_file: Path, timeout: float = 30.0) -> None:
    import psycopg  # noqa: F401  (fail here, clearly, if the driver is missing)
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                return
            except Exception as exc:  # noqa: BLE001  (not up yet)
                if time.monotonic() > deadline:
                    log = log_file.read_text() if log_file.exists() else "(no server log)"
                    raise RuntimeError(
                        f"PostgreSQL did not accept connections within {timeout} s: {exc}\n{log}"
                    ) from exc
                time.sleep(0.1)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """Start a PostgreSQL server for the session; yields ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``."""
    initdb, pg_ctl = _find_binaries()
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.fail(
                "PostgreSQL tests run as root need `runuser` (util-linux) to start the server as `postgres`",
                pytrace=False,
            )
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(f"PostgreSQL tests run as root need the `postgres` system user: {SETUP_HINT}", pytrace=False)
        as_user = ["runuser", "-u", "postgres", "--"]
    # A short path of its own directly under the temp dir: the unix socket path has a ~100 character
    # limit, and the postgres user could not get through pytest's 0700 tmp_path parents.
    root = Path(tempfile.mkdtemp(prefix="scheduler-pg-"))
    if as_user:
        shutil.chown(root, "postgres", "postgres")
    data_dir, log_file = root / "data", root / "server.log"
    started = False
    try:
        _run([str(initdb), "-D", str(data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"], as_user)
        port = _free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off -c max_connections=200"
        _run([str(pg_ctl), "-D", str(data_dir), "-l", str(log_file), "-o", options, "-w", "-t", "60", "start"], as_user)
        started = True
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        _wait_for_connections(url, log_file)
        yield url
    finally:
        if started:
            subprocess.run(
                as_user + [str(pg_ctl), "-D", str(data_dir), "-m", "immediate", "-w", "stop"], capture_output=True
            )
        shutil.rmtree(root, ignore_errors=True)


_database_numbers = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the session's server (tests do not see each other's rows)."""
    from sqlalchemy import create_engine, text

    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    engine = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A database URL of each kind in turn: a SQLite file of the test, or the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("postgres_url")
