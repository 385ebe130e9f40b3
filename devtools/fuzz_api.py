"""Fuzz the HTTP API with schemathesis against a real `scheduler-server serve` (tests/test_fuzz_api.py, bench/bench_fuzz.py).

The server gets a token, a scripts folder holding the document's example
script, and a short observing window (``observing.max_window_hours``) so that a
valid schedule request stays cheap. Schemathesis runs every phase with every
check; its configuration (``schemathesis.toml``, written next to the server's
files) lets a schema-valid request be answered 400 only through the check in
``devtools/fuzz_hooks.py``, which accepts a 400 only for a business rule the
operation documents.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.serving import wait_until_serving
from devtools.sshd import free_port

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
TOKEN = "fuzz-token-1"
PHASES = "examples,coverage,fuzzing,stateful"

_CONFIG = """\
data_dir: {data}
observing:
  max_window_hours: 2
pipelines:
  backend: local
  local_scripts_folder: {scripts}
  tokens_file: {tokens}
  max_active_pipelines: 2
  pipeline_timeout: 5
{database}"""

# Statuses a schema-valid request may get: 400 only through devtools/fuzz_hooks.py's business-rule check.
_SCHEMATHESIS_TOML = """\
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "404", "409"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "404", "405", "413"]
"""


@dataclass
class FuzzResult:
    returncode: int
    output: str
    seconds: float
    cases: int | None
    server_log: str

    def summary_line(self) -> str:
        """The last lines schemathesis prints: what was tested and what failed."""
        tail = [line for line in self.output.splitlines() if line.strip()][-12:]
        return "\n".join(tail)


class FuzzServer:
    """`scheduler-server serve` on a free port with the fuzzing configuration, in ``home``."""

    def __init__(self, home: Path, database_url: str | None = None):
        self.home = home
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = home / "serve.log"

    def start(self, timeout: float = 30.0) -> FuzzServer:
        scripts = self.home / "scripts"
        scripts.mkdir(parents=True, exist_ok=True)
        (scripts / "qmroct.sh").write_text('#!/bin/bash\necho fuzzed "$@" | head -c 200\n')
        tokens = self.home / "tokens"
        tokens.write_text(TOKEN + "\n")
        config = self.home / "config.yaml"
        database = f"  database_url: {self.database_url}\n" if self.database_url else ""
        config.write_text(_CONFIG.format(data=self.home / "data", scripts=scripts, tokens=tokens, database=database))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_SERVER")}
        env.update(HOME=str(self.home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
        args = [str(BIN / "scheduler-server"), "serve", "--port", str(self.port), "--config", str(config)]
        self.process = subprocess.Popen(
            args, env=env, cwd=self.home, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT
        )
        wait_until_serving(self.url + "/", self.process, self.log, timeout)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> FuzzServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run_schemathesis(
    server: FuzzServer,
    *,
    max_examples: int,
    seed: int = 20261201,
    max_time: float | None = None,
    workers: int = 1,
    phases: str = PHASES,
) -> FuzzResult:
    """``st run`` over the server's own document; returncode 0 means no check failed."""
    toml = server.home / "schemathesis.toml"
    toml.write_text(_SCHEMATHESIS_TOML)
    report = server.home / "st-report"
    args = [
        str(BIN / "st"),
        "--config-file",
        str(toml),
        "--no-color",
        "run",
        f"{server.url}/api/v1/openapi.json",
        "--phases",
        phases,
        "--checks",
        "all",
        "--seed",
        str(seed),
        "--max-examples",
        str(max_examples),
        "--generation-deterministic",
        "--workers",
        str(workers),
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report",
        "ndjson",
        "--report-dir",
        str(report),
    ]
    if max_time is not None:
        args += ["--max-time", str(int(max_time))]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "devtools.fuzz_hooks", "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    done = subprocess.run(args, env=env, cwd=server.home, capture_output=True, text=True)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    return FuzzResult(done.returncode, output, seconds, _cases(output), server.log.read_text(errors="replace"))


def _cases(output: str) -> int | None:
    """Test cases generated, from schemathesis's summary ("Test cases: N generated, ...")."""
    found = re.search(r"(\d+) generated", output)
    return int(found.group(1)) if found else None
