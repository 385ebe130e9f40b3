"""The service as a separate process on the simulator: its config, start, kill -9, and API helpers."""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from devtools.openstack_sim.process import SimProcess
from devtools.serving import wait_until_serving
from devtools.sshd import free_port

BIN = Path(sys.executable).parent
KEYPAIR = "scheduler"
FINAL = ("succeeded", "failed", "cancelled")

SCRIPT = """#!/bin/bash
# The seed's argument contract: -project P -subject S -session E -host H -user U -pwd X
while [ $# -gt 0 ]; do
  case "$1" in -session) session=$2; shift ;; esac
  shift
done
echo "$session $SSH_CONNECTION" >> {markers}/started
sleep {work}
echo "$session" >> {markers}/done
"""


def seed_config(tmp: Path, sim: SimProcess, ssh_key: Path, *, work: float = 0.5, **overrides) -> Path:
    """A config in the seed's own upper-case keys, credentials from the simulator's openrc (CREDENTIALS_FILE)."""
    scripts, markers = tmp / "scripts", tmp / "markers"
    scripts.mkdir(exist_ok=True)
    markers.mkdir(exist_ok=True)
    (scripts / "qmroct.sh").write_text(SCRIPT.format(markers=markers, work=work))
    config = {
        "HOST": "127.0.0.1",
        "PORT": free_port(),
        "data_dir": str(tmp / "data"),
        "MAX_ACTIVE_PIPELINES": 2,
        "VIRTUAL_SERVER_TTL": 1,
        "LOCAL_SCRIPTS_FOLDER": str(scripts),
        # Simulated servers share this machine's disk: an absolute per-test folder keeps tests apart.
        "REMOTE_BASE_FOLDER": str(tmp / "remote"),
        "MAX_CONNECTION_RETRIES": 20,
        "CONNECTION_RETRY_INTERVAL": 0.5,
        "SSH_USER": getpass.getuser(),
        "SSH_KEY": str(ssh_key),
        "MAX_ATTEMPTS": 3,
        "CREDENTIALS_FILE": str(sim.openrc),
        "IMAGE_ID": "ubuntu-22.04",
        "FLAVOR": "m1.small",
        "AUTH_KEYNAME": KEYPAIR,
        "SECURITY_GROUP": "default",
        "USE_FLOATING_IP": True,
        "IP_POOL": "public",
        "NETWORK_ID": "private",
        "IDLE_TIMEOUT": 1,
        "pipelines": {
            "backend": "openstack",
            "poll_interval": 0.1,
            "retry_backoff": 0.2,
            "dispatcher_lease": 2,
            "openstack": {
                "ssh_port": sim.info["ssh_port"],
                "status_poll_interval": 0.1,
                "api_timeout": 5,
                "boot_timeout": 60,
            },
        },
    }
    _merge(config, overrides)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _merge(config: dict, overrides: dict) -> None:
    """``overrides`` into ``config``, two levels of sections deep (``pipelines: {openstack: {...}}``)."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            for sub, inner in value.items():
                if isinstance(inner, dict):
                    config[key].setdefault(sub, {}).update(inner)
                else:
                    config[key][sub] = inner
        else:
            config[key] = value


class Service:
    """``scheduler-server serve --config`` in its own session, so kill -9 takes every process of it."""

    def __init__(self, config: Path, log: Path):
        self.config = config
        self.log = log
        self.port = yaml.safe_load(config.read_text())["PORT"]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Service:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_SERVER", "OS_"))}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        self.proc = subprocess.Popen(
            [str(BIN / "scheduler-server"), "serve", "--config", str(self.config)],
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        wait_until_serving(self.url + "/", self.proc, self.log, timeout)
        return self

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    # --- API ----------------------------------------------------------------------------

    def post_pipelines(self, sessions: list[str]) -> list[int]:
        items = [pipeline_item(s) for s in sessions]
        answer = requests.post(f"{self.url}/pipeline", json=items, timeout=10).json()
        assert answer["request"] == "success", answer
        return [r["id"] for r in answer["content"]]

    def pipeline(self, pipeline_id: int) -> dict:
        return requests.get(f"{self.url}/api/v1/pipelines/{pipeline_id}", timeout=10).json()

    def wait_final(self, ids: list[int], timeout: float = 90.0) -> dict[int, dict]:
        deadline = time.monotonic() + timeout
        while True:
            views = {i: self.pipeline(i) for i in ids}
            if all(v.get("status") in FINAL for v in views.values()):
                return views
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not final after {timeout} s: {[(i, v.get('status'), v.get('reason')) for i, v in views.items()]}"
                )
            time.sleep(0.2)


def pipeline_item(session: str) -> dict:
    return {
        "project": "test",
        "subject": "XNAT_S00013",
        "session": session,
        "host": "http://xnat.example/xnat/",
        "user": "admin",
        "pwd": "admin",
        "script": "qmroct.sh",
    }


def markers(tmp: Path, name: str) -> list[str]:
    path = tmp / "markers" / name
    return path.read_text().splitlines() if path.exists() else []
