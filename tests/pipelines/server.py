"""`scheduler-server serve` as a separate process, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from devtools.serving import wait_until_serving
from devtools.sshd import free_port

BIN = Path(sys.executable).parent


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_SERVER")}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


class ServeProcess:
    def __init__(self, home: Path, config: Path | None = None, port: int | None = None):
        self.home = home
        self.config = config
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = home / f"serve-{self.port}.log"

    def start(self, timeout: float = 30.0) -> ServeProcess:
        args = [str(BIN / "scheduler-server"), "serve", "--port", str(self.port)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        self.process = subprocess.Popen(
            args, env=clean_env(self.home), cwd=self.home, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT
        )
        wait_until_serving(self.url + "/", self.process, self.log, timeout)
        return self

    def service_pids(self) -> list[int]:
        """The service's process (and any worker processes); not the pipelines' own processes."""
        main = psutil.Process(self.process.pid)
        workers = [c for c in main.children() if "bash" not in c.name()]
        return [main.pid, *(w.pid for w in workers)]

    def kill9(self) -> None:
        for pid in self.service_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()
