"""The simulator as a separate process, for end-to-end tests and benchmarks that want XNAT outside their own.

``XnatSimProcess(workdir, seed=None, fail_500="^/data/experiments$").start()`` writes the seed (default: the
fixture's) to ``workdir/seed.yaml`` (mode 0600), runs ``python -m devtools.xnat_sim --seed <that file>`` from the
repository root, and reads its start line; ``.url``, ``.state()`` (``/_sim/state``: tokens without secrets,
sessions, workflows), ``.stop()``. Keyword options become the command line's fault and lifetime flags; no
password is ever one of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from .seed import default_seed

REPO = Path(__file__).resolve().parents[2]


class XnatSimProcess:
    def __init__(self, workdir: Path, seed: dict | None = None, **options):
        self.workdir = Path(workdir)
        self.seed = default_seed() if seed is None else seed
        self.options = options  # fail_500=..., slow=..., token_lifetime=..., refuse_logins=True, ...
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    @property
    def url(self) -> str:
        return self.info["url"]

    def start(self) -> XnatSimProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        seed_file = self.workdir / "seed.yaml"
        seed_file.touch(mode=0o600)
        seed_file.write_text(yaml.safe_dump(self.seed))
        command = [sys.executable, "-m", "devtools.xnat_sim", "--seed", str(seed_file)]
        for key, value in self.options.items():
            flag = "--" + key.replace("_", "-")
            command += [flag] if value is True else [flag, str(value)]
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / "xnat_sim.log", "ab"),
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(
                f"the XNAT simulator did not start: {(self.workdir / 'xnat_sim.log').read_text()[-2000:]}"
            )
        self.info = json.loads(line)
        return self

    def state(self) -> dict:
        return requests.get(self.url + "/_sim/state", timeout=10).json()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> XnatSimProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
