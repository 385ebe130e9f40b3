"""Fixtures for the pipeline scheduler: a scripts folder, fast settings, a running service, an app."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.sshd import SSHServer, generate_keypair
from scheduler_server.config import Settings
from tests.waiting import wait_until  # noqa: F401  (re-exported to the tests here)

# Prints every argument on its own line, so tests see exactly what the script received.
ARGS_SCRIPT = 'for a in "$@"; do printf "%s\\n" "$a"; done\n'


@pytest.fixture(scope="session")
def key(tmp_path_factory) -> Path:
    """A client key pair for the SSH tests (the private key's path; ``.pub`` beside it)."""
    return generate_keypair(tmp_path_factory.mktemp("keys") / "id_ed25519")


@pytest.fixture
def sshd(key, tmp_path):
    """A real OpenSSH server on a loopback port that accepts ``key``."""
    server = SSHServer(authorized_keys=[key.with_suffix(".pub").read_text()], workdir=tmp_path / "sshd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def scripts(tmp_path) -> Path:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "args.sh").write_text(ARGS_SCRIPT)
    (folder / "ok.sh").write_text("echo ok\n")
    (folder / "fail.sh").write_text("echo failing >&2; exit 3\n")
    # Sleeps for its last argument when that is a number (30 s otherwise).
    (folder / "sleep.sh").write_text(
        'last="${@: -1}"; case "$last" in ""|*[!0-9.]*) last=30;; esac; echo started; sleep "$last"\n'
    )
    return folder


@pytest.fixture
def make_settings(tmp_path, scripts):
    def make(**pipelines) -> Settings:
        values = {
            "local_scripts_folder": str(scripts),
            "poll_interval": 0.05,
            "retry_backoff": 0.05,
            "kill_grace": 1.0,
            "connection_retry_interval": 0.1,
            "max_connection_retries": 3,
            **pipelines,
        }
        return Settings(data_dir=tmp_path / "data", pipelines=values)

    return make


@pytest.fixture
def make_service(make_settings):
    from scheduler_server.pipelines.service import PipelineService

    made = []

    def make(start: bool = True, **pipelines):
        settings = make_settings(**pipelines)
        service = PipelineService(settings.pipelines, settings.data_path)
        made.append(service)
        if start:
            service.ensure_started()
        return service

    yield make
    for service in made:
        _clean_up(service)


def _clean_up(service) -> None:
    """Stop the service and whatever its pipelines still run (they are detached, so they would outlive the test)."""
    service.close()
    if service.backend.name == "local":
        for info in service.backend.list_instances(include_untagged=True):
            service.backend.destroy(info)


@pytest.fixture
def make_client(make_settings):
    from scheduler_server.app import create_app

    apps = []

    def make(**pipelines):
        app = create_app(make_settings(**pipelines))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        _clean_up(app.extensions["pipelines"].service)


def xnat(**fields) -> dict:
    item = {
        "project": "p",
        "subject": "s",
        "session": "e",
        "host": "http://xnat",
        "user": "u",
        "pwd": "s3cr3t-pw",
        "script": "ok.sh",
    }
    item.update(fields)
    return item


def script(name: str, *args: str, **fields) -> dict:
    return {"type": "script", "script": name, "args": list(args), **fields}


def wait_status(service, pipeline_id: int, statuses, timeout: float = 20.0):
    statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)

    def check():
        p = service.store.get_pipeline(pipeline_id)
        return p if p is not None and p.status in statuses else None

    return wait_until(check, timeout, message=f"pipeline {pipeline_id} to be {'/'.join(statuses)}")


def submit_ok(service, *items) -> list[int]:
    results = service.submit(list(items))
    assert all(r.accepted for r in results), results
    return [r.id for r in results]
