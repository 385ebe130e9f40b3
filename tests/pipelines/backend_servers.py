"""A real ``scheduler-server serve`` on the ``local`` backend or on ``ssh`` against a real sshd, for API tests."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from devtools.sshd import SSHD, SSHServer

from .server import ServeProcess


@contextmanager
def serve(tmp_path: Path, backend: str, key: Path, **pipelines):
    """Yield ``(server, scripts folder)``; ``pipelines``: more settings of the pipelines section."""
    home = tmp_path / "home"
    scripts = home / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    settings = {"local_scripts_folder": str(scripts), "poll_interval": 0.05, **pipelines}
    sshd = None
    if backend == "ssh":
        if not Path(SSHD).exists():
            pytest.fail(f"{SSHD} missing: run scripts/setup.sh test (installs openssh-server)")
        sshd = SSHServer(authorized_keys=[key.with_suffix(".pub").read_text()], workdir=tmp_path / "sshd").start()
        settings.update(
            backend="ssh",
            remote_base_folder=str(tmp_path / "remote"),
            ssh_hosts=[{"address": sshd.host, "port": sshd.port, "user": sshd.user, "key_file": str(key)}],
        )
    config = home / "config.yaml"
    config.write_text(json.dumps({"pipelines": settings}))  # JSON is YAML
    server = ServeProcess(home, config).start()
    try:
        yield server, scripts
    finally:
        server.stop()
        if sshd is not None:
            sshd.stop()
