"""One step of a rolling upgrade (docs/replicas.md "Rolling upgrade"), with the previous version's real code.

The previous version is this repository's code from just before the newest migration was added (``git
archive`` of that commit's ``src/``, run through ``PYTHONPATH``). A replica of it runs on PostgreSQL; the
database is then migrated to head with this version's ``scheduler-server db upgrade`` while that replica
runs. The running old replica keeps serving and dispatching (migrations are expand-only), a *new* start of
the old version is refused (the database has a revision it does not know), and a replica of this version
joins, takes over when the old one stops, and runs what is submitted to it.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from scheduler_server.pipelines.storage import migrations

from .conftest import wait_until
from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)
from .server import BIN, ServeProcess, clean_env

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = "src/scheduler_server/pipelines/storage/migrations/versions"


def previous_version(target: Path) -> tuple[str, str]:
    """Unpack into ``target`` the ``src/`` of the newest commit without this code's newest migration file;
    returns that commit and the newest migration's file name."""
    newest = next(p for p in sorted((ROOT / VERSIONS).glob("0*.py"), reverse=True))
    path = f"{VERSIONS}/{newest.name}"
    added = _git("log", "-1", "--diff-filter=A", "--format=%H", "--", path).strip()
    commit = f"{added}^" if added else "HEAD"  # not committed yet: HEAD is the previous version
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    assert not (target / path).exists(), f"{commit} already has {newest.name}"
    return _git("rev-parse", "--short", commit).strip(), newest.name


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"the rolling-upgrade test needs this repository's git history ({exc})", pytrace=False)


def _home(tmp_path: Path, name: str, database_url: str, key: str) -> tuple[Path, Path]:
    home = tmp_path / name
    (home / "scripts").mkdir(parents=True)
    (home / "scripts" / "ok.sh").write_text("echo ok\n")
    section = {
        "database_url": database_url,
        "secret_key": key,
        "local_scripts_folder": str(home / "scripts"),
        "poll_interval": 0.1,
        "dispatcher_lease": 3,
    }
    config = home / "config.yaml"
    config.write_text(json.dumps({"data_dir": str(home / "data"), "pipelines": section}))
    return home, config


def _runs_one(server: ServeProcess) -> dict:
    answer = requests.post(server.url + "/pipeline", json=[{"type": "script", "script": "ok.sh"}], timeout=30)
    assert answer.status_code == 200, answer.text
    pipeline_id = answer.json()["content"][0]["id"]

    def ended():
        p = requests.get(f"{server.url}/api/v1/pipelines/{pipeline_id}", timeout=10).json()
        return p if p["status"] in ("succeeded", "failed", "cancelled") else None

    pipeline = wait_until(ended, timeout=30, interval=0.1, message=f"pipeline {pipeline_id} to end")
    assert pipeline["status"] == "succeeded", pipeline
    return pipeline


def _start_old(server: ServeProcess, old_src: Path, monkeypatch) -> ServeProcess:
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", str(old_src))
        return server.start()


@pytest.mark.slow
def test_a_replica_of_the_previous_version_keeps_working_on_a_database_migrated_ahead(
    tmp_path, postgres_url, monkeypatch
):
    old_src = tmp_path / "previous"
    commit, _ = previous_version(old_src)
    old_src = old_src / "src"
    key = Fernet.generate_key().decode()
    old_home, old_config = _home(tmp_path, "old", postgres_url, key)
    new_home, new_config = _home(tmp_path, "new", postgres_url, key)
    old, new = ServeProcess(old_home, old_config), None
    try:
        _start_old(old, old_src, monkeypatch)
        before = migrations.current(postgres_url)
        assert before is not None and before != migrations.head(), (commit, before)
        _runs_one(old)

        # Step 1: migrate first, with the new version's command, while the old replica runs.
        done = subprocess.run(
            [str(BIN / "scheduler-server"), "db", "upgrade", "--config", str(new_config)],
            env=clean_env(new_home),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and f"{before} -> {migrations.head()}" in done.stdout, done
        assert old.process.poll() is None
        _runs_one(old)  # the running old replica still takes submissions and dispatches

        # A fresh start of the old version is refused: the database is newer than it knows.
        refused = ServeProcess(*_home(tmp_path, "old-again", postgres_url, key))
        try:
            with pytest.raises(RuntimeError, match=f"revision {migrations.head()} is newer than this"):
                _start_old(refused, old_src, monkeypatch)
        finally:
            refused.stop()

        # Step 2: replace the old replica by one of this version.
        new = ServeProcess(new_home, new_config).start()
        old.stop()
        _runs_one(new)  # it leads now (the old one handed the lease over or let it lapse) and dispatches
    finally:
        old.stop()
        if new is not None:
            new.stop()
