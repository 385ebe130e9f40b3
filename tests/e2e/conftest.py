"""Starting the real service as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devtools.sshd import free_port

BIN = Path(sys.executable).parent


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer at {url} within {timeout} s")


@pytest.fixture
def isolated_env(tmp_path):
    """An environment whose HOME is empty, so no user config file is picked up."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_SERVER")}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


@pytest.fixture
def seed_gunicorn(tmp_path, isolated_env):
    """The seed's launch line, `gunicorn --bind localhost:8010 scheduler_server.app:app`, on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        ["gunicorn", "--bind", f"localhost:{port}", "scheduler_server.app:app"],
        cwd=tmp_path,
        env=isolated_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
