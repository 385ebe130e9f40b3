"""XNAT budgets of issue 15, measured end to end against the simulator on loopback.

"verified single submission" (15C): `scheduler-server serve` twice, one with ``xnat.servers`` listing the
simulator (each submission exchanges the password for an alias token and looks the session up: two XNAT requests)
a third also with ``xnat.workflows`` (the workflow listing and the Queued entry's PUT too: four requests), and one
without (the seed's behaviour: no contact); the same single-pipeline POST /api/v1/pipelines to each,
alternating, N times; the added latency is the difference of the medians (budget: < 20 ms). The pipelines queue
behind one long-running one (max_active_pipelines 1), so what runs does not compete with the submissions.
The simulator and both servers are separate processes; the client is ``requests`` with a kept-alive session.

"launch a 1,000-session project" (15L): one `scheduler-server serve` listing the simulator; POST /api/v1/xnat/launch
on the default seed's project ``big`` (1,000 MR sessions), each run a fresh launch queuing 1,000 more pipelines
behind the same long-running one; the time from the POST to its 201, when every pipeline is committed as queued
(counted afterwards). XNAT is asked twice per launch (tokens/issue, the project's listing). Budget: under 3 s.

Usage: .venv/bin/python bench/bench_xnat.py [--runs 100] [--launch-runs 5] [--only verified|launch]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from devtools.xnat_sim import default_seed  # noqa: E402
from devtools.xnat_sim.process import XnatSimProcess  # noqa: E402
from tests.pipelines.server import ServeProcess  # noqa: E402

USER = default_seed()["users"][0]


def _serve(home: Path, xnat_url: str | None, workflows: bool = False) -> ServeProcess:
    (home / "scripts").mkdir(parents=True)
    # Waits while the benchmark's directory exists: the local backend's pipelines outlive the server (detached).
    (home / "scripts" / "wait.sh").write_text(f"while [ -d '{home}' ]; do sleep 0.5; done\n")
    settings = {
        "data_dir": str(home / "data"),
        "logging": {"level": "WARNING"},
        "pipelines": {"local_scripts_folder": str(home / "scripts"), "max_active_pipelines": 1},
    }
    if xnat_url:
        settings["xnat"] = {"servers": [{"url": xnat_url}], "workflows": workflows}
    (home / "config.yaml").write_text(yaml.safe_dump(settings))
    return ServeProcess(home, home / "config.yaml").start()


def _item(host: str) -> dict:
    return {
        "project": "test",
        "subject": "S01",
        "session": "S01_MR1",
        "host": host,
        "user": USER["name"],
        "pwd": USER["password"],
        "script": "wait.sh",
    }


def _post(http: requests.Session, server: ServeProcess, host: str) -> float:
    t0 = time.perf_counter()
    answer = http.post(server.url + "/api/v1/pipelines", json=_item(host), timeout=30)
    elapsed = (time.perf_counter() - t0) * 1000
    if answer.status_code != 201:
        raise SystemExit(f"{server.url}: {answer.status_code} {answer.text[:300]}")
    return elapsed


def _row(name: str, times: list[float]) -> str:
    q = statistics.quantiles(times, n=10)
    return f"| {name} | {statistics.median(times):.1f} | {q[0]:.1f} | {q[-1]:.1f} | {min(times):.1f} |"


def verified_single_submission(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, XnatSimProcess(Path(tmp) / "sim") as sim:
        listed = _serve(Path(tmp) / "listed", sim.url)
        logged = _serve(Path(tmp) / "workflows", sim.url, workflows=True)
        seed = _serve(Path(tmp) / "seed", None)
        try:
            http = requests.Session()
            for _ in range(5):  # warm up all three (first requests import and connect)
                _post(http, listed, sim.url), _post(http, logged, sim.url), _post(http, seed, "http://xnat.invalid")
            verified, with_workflows, unverified = [], [], []
            for _ in range(runs):
                verified.append(_post(http, listed, sim.url))
                with_workflows.append(_post(http, logged, sim.url))
                unverified.append(_post(http, seed, "http://xnat.invalid"))
        finally:
            listed.stop()
            logged.stop()
            seed.stop()
    load = os.getloadavg()[0]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {runs} runs each, load average {load:.1f}")
    print("| submission | p50 ms | p10 ms | p90 ms | min ms |\n|---|---|---|---|---|")
    print(_row("verified (listed host: token issue + session lookup)", verified))
    print(_row("verified, xnat.workflows on (+ workflow listing + Queued PUT: 4 requests)", with_workflows))
    print(_row("unverified (no xnat.servers: the seed's)", unverified))
    added = statistics.median(verified) - statistics.median(unverified)
    print(
        f"\nadded by verification: {added:.1f} ms at the median, {min(verified) - min(unverified):.1f} ms at the minima"
    )
    added = statistics.median(with_workflows) - statistics.median(unverified)
    print(f"added by verification with workflows: {added:.1f} ms at the median")


def _launch(http: requests.Session, server: ServeProcess, host: str) -> float:
    body = {"host": host, "user": USER["name"], "pwd": USER["password"], "project": "big", "script": "wait.sh"}
    t0 = time.perf_counter()
    answer = http.post(server.url + "/api/v1/xnat/launch", json=body, timeout=60)
    elapsed = time.perf_counter() - t0
    if answer.status_code != 201 or answer.json()["created"] != 1000:
        raise SystemExit(f"{server.url}: {answer.status_code} {answer.text[:300]}")
    return elapsed


def launch_a_project(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, XnatSimProcess(Path(tmp) / "sim") as sim:
        server = _serve(Path(tmp) / "listed", sim.url)
        try:
            http = requests.Session()
            _post(http, server, sim.url)  # warm up; and the one pipeline that runs while the rest queue
            times = [_launch(http, server, sim.url) for _ in range(runs)]
            queued = http.get(server.url + "/api/v1/pipelines", params={"status": "queued", "limit": 1}).json()
        finally:
            server.stop()
    load = os.getloadavg()[0]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {runs} launches of 1,000 sessions, load average {load:.1f}")
    print(
        f"POST to 201 (all queued), s: median {statistics.median(times):.2f}, min {min(times):.2f}, max {max(times):.2f}"
    )
    print(f"queued afterwards: {queued['total']} (expected {runs * 1000})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--launch-runs", type=int, default=5)
    parser.add_argument("--only", choices=["verified", "launch"], default=None)
    args = parser.parse_args()
    if args.only in (None, "verified"):
        verified_single_submission(args.runs)
    if args.only in (None, "launch"):
        launch_a_project(args.launch_runs)


if __name__ == "__main__":
    main()
