"""The simulator as a separate process, for end-to-end tests and benchmarks.

``SimProcess(tmp_dir, boot_delay=..., faults=[...]).start()`` runs
``python -m devtools.openstack_sim`` from the repository root, waits for its
start line, and offers the ``/_sim`` control API as small methods.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


class SimProcess:
    def __init__(
        self, workdir: Path, *, keypairs: dict[str, Path] | None = None, faults: list[str] | None = None, **options
    ):
        self.workdir = Path(workdir)
        self.keypairs = keypairs or {}
        self.faults = faults or []
        self.options = options  # boot_delay=..., max_servers=..., fip_pool_size=... (command-line flags)
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    @property
    def clouds_yaml(self) -> Path:
        return self.workdir / "clouds.yaml"

    @property
    def openrc(self) -> Path:
        return self.workdir / "openrc.sh"

    @property
    def base_url(self) -> str:
        return self.info["auth_url"].removesuffix("/identity/v3")

    def start(self, timeout: float = 30.0) -> SimProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "devtools.openstack_sim",
            "--clouds-yaml",
            str(self.clouds_yaml),
            "--openrc",
            str(self.openrc),
        ]
        for name, path in self.keypairs.items():
            command += ["--keypair", f"{name}={path}"]
        for fault in self.faults:
            command += ["--fault", fault]
        for key, value in self.options.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / "sim.log", "ab"),
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"the simulator did not start: {(self.workdir / 'sim.log').read_text()[-2000:]}")
        self.info = json.loads(line)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the /_sim control API --------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs):
        response = requests.request(method, f"{self.base_url}/_sim{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def state(self) -> dict:
        return self._call("GET", "/state")

    def add_fault(self, **rule) -> None:
        self._call("POST", "/faults", json=rule)

    def configure(self, **values) -> dict:
        return self._call("PATCH", "/config", json=values)

    def vanish(self, server_id: str) -> None:
        self._call("POST", f"/servers/{server_id}/vanish")

    def requests_log(self) -> list[dict]:
        return self._call("GET", "/requests")["requests"]

    def leftovers(self) -> dict:
        state = self.state()
        return {
            "servers": [s["name"] for s in state["servers"]],
            "floating_ips": [f["address"] for f in state["floating_ips"]],
        }
