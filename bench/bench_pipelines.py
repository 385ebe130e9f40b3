"""Pipeline scheduler on the local backend, through a real `scheduler-server serve` process.

Prints one table:
  submit -> script start   p50 / p99 over single submissions 0.2 s apart, instances warm (goal p50 < 20 ms)
  throughput               pipelines/s for a batch of trivial scripts, submit to last success
  bulk POST                one POST /pipeline with 1,000 items (goal < 1 s)
  memory                   RSS of the serving process with 10,000 pipelines queued (goal < 300 MB)

Usage: .venv/bin/python bench/bench_pipelines.py [--latency-runs 100] [--batch 300]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from devtools.sshd import free_port  # noqa: E402

START_SCRIPT = 'echo "$EPOCHREALTIME" > "$1/$2"  # a bash builtin: no process of its own\n'
SLEEP_SCRIPT = "sleep 3600\n"


class Server:
    def __init__(self, root: Path, **pipelines):
        self.root = root
        self.port = free_port()
        scripts = root / "scripts"
        scripts.mkdir(parents=True, exist_ok=True)
        (scripts / "start.sh").write_text(START_SCRIPT)
        (scripts / "true.sh").write_text("exit 0\n")
        (scripts / "sleep.sh").write_text(SLEEP_SCRIPT)
        config = {
            "data_dir": str(root / "data"),
            "logging": {"level": "WARNING"},
            "server": {"max_body_bytes": 64 * 1024 * 1024},
            "pipelines": {"local_scripts_folder": str(scripts), **pipelines},
        }
        self.config = root / "config.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        exe = REPO / ".venv" / "bin" / "scheduler-server"
        self.process = subprocess.Popen(
            [str(exe), "serve", "--config", str(self.config), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "server.log", "ab"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/pipeline", timeout=1).raise_for_status()
                return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("server did not start; see " + str(self.root / "server.log"))

    def __exit__(self, *exc) -> None:
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        # Pipelines run detached from the service (so they survive it); end the ones still running.
        for pid_file in (self.root / "data" / "instances").glob("*/*/job-*/pid"):
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def rss_mb(self) -> float:
        procs = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        # The gunicorn worker holds the app; report the largest process.
        return max(p.memory_info().rss for p in procs) / 2**20


def script_item(script: str, args: list[str]) -> dict:
    return {"type": "script", "script": script, "args": args}


def latency(root: Path, runs: int) -> tuple[float, float]:
    marks = root / "marks"
    marks.mkdir()
    samples = []
    with Server(root / "latency", max_active_pipelines=16, virtual_server_ttl=1000, poll_interval=0.2) as server:
        session = requests.Session()
        for n in range(runs + 5):
            t0 = time.time()
            session.post(
                server.url + "/pipeline", json=script_item("start.sh", [str(marks), str(n)])
            ).raise_for_status()
            target = marks / str(n)
            # No busy wait: this process must not compete for the CPU while the service works.
            time.sleep(0.2)  # one submission at a time: latency of an idle service, not queueing
            while not target.exists() or not target.read_text().strip():
                time.sleep(0.05)
            if n >= 5:  # the first ones also create the instances
                samples.append(float(target.read_text()) - t0)
    samples.sort()
    return samples[len(samples) // 2] * 1000, samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000


def throughput(root: Path, batch: int) -> float:
    with Server(root / "throughput", max_active_pipelines=8, virtual_server_ttl=1000, poll_interval=0.05) as server:
        session = requests.Session()
        t0 = time.time()
        session.post(
            server.url + "/pipeline", json=[script_item("true.sh", []) for _ in range(batch)]
        ).raise_for_status()
        while True:
            page = session.get(server.url + "/api/v1/pipelines", params={"status": "succeeded", "limit": 1}).json()
            if page["total"] >= batch:
                break
            time.sleep(0.05)
        return batch / (time.time() - t0)


def bulk_and_memory(root: Path) -> tuple[float, float, float]:
    with Server(root / "bulk", max_active_pipelines=1, virtual_server_ttl=1000) as server:
        session = requests.Session()
        item = {
            "project": "p",
            "subject": "s",
            "session": "e",
            "host": "http://xnat",
            "user": "u",
            "pwd": "secret",
            "script": "sleep.sh",
        }
        t0 = time.time()
        response = session.post(server.url + "/pipeline", json=[item] * 1000)
        bulk = time.time() - t0
        response.raise_for_status()
        for _ in range(9):
            session.post(server.url + "/pipeline", json=[item] * 1000).raise_for_status()
        listed = session.get(server.url + "/pipeline").json()["content"]
        assert len(listed) >= 10_000, len(listed)
        time.sleep(1)
        return bulk, server.rss_mb(), len(listed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--batch", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pipelines-") as tmp:
        root = Path(tmp)
        p50, p99 = latency(root, args.latency_runs)
        rate = throughput(root, args.batch)
        bulk, rss, listed = bulk_and_memory(root)
    rows = [
        ("submit -> script start p50", f"{p50:.1f} ms", "< 20 ms", p50 < 20),
        ("submit -> script start p99", f"{p99:.1f} ms", "", None),
        (f"throughput ({args.batch} trivial, 8 active)", f"{rate:.1f} pipelines/s", "", None),
        ("bulk POST of 1,000", f"{bulk * 1000:.0f} ms", "< 1 s", bulk < 1),
        (f"RSS with {listed:,} queued (after GET /pipeline)", f"{rss:.0f} MB", "< 300 MB", rss < 300),
    ]
    print(f"| {'measure':<48} | {'result':>20} | {'goal':>9} | ok  |")
    print(f"|{'-' * 50}|{'-' * 22}|{'-' * 11}|-----|")
    for name, value, goal, ok in rows:
        print(f"| {name:<48} | {value:>20} | {goal:>9} | {'' if ok is None else ('yes' if ok else 'NO'):<3} |")


if __name__ == "__main__":
    main()
