"""What one request to the XNAT simulator costs, as the baseline under the issue's XNAT budgets.

The simulator runs as its own process (``python -m devtools.xnat_sim``, the default seed), the client is
``requests`` with a kept-alive session, as the scheduler's XnatClient is. For each request a verified submission or
a launch makes, N runs: median and min-max in milliseconds. Budgets it sits under: a verified submission adds
< 20 ms over an unverified one; a 1,000-session launch queues everything in < 3 s (one listing of the project).

Usage: .venv/bin/python bench/bench_xnat_sim.py [--runs 50]
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from devtools.xnat_sim import default_seed  # noqa: E402
from devtools.xnat_sim.process import XnatSimProcess  # noqa: E402

USER = default_seed()["users"][0]
CASES = [
    ("token issue (password)", "GET", "/data/services/tokens/issue", {}),
    ("project item", "GET", "/data/projects/test", {"format": "json"}),
    ("subject's experiments", "GET", "/data/projects/test/subjects/S01/experiments", {"format": "json"}),
    ("experiment item", "GET", "/data/projects/test/subjects/S01/experiments/S01_MR1", {"format": "json"}),
    (
        "project listing, 1,000 sessions",
        "GET",
        "/data/projects/big/experiments",
        {"format": "json", "columns": "ID,label,subject_label,xsiType,project"},
    ),
]


def _measure(http: requests.Session, url: str, method: str, path: str, params: dict, runs: int) -> list[float]:
    http.request(method, url + path, params=params, timeout=30).raise_for_status()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        http.request(method, url + path, params=params, timeout=30).raise_for_status()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f}, {args.runs} runs each")
    with tempfile.TemporaryDirectory() as tmp, XnatSimProcess(Path(tmp)) as sim:
        http = requests.Session()
        http.auth = (USER["name"], USER["password"])
        token = http.get(sim.url + "/data/services/tokens/issue", timeout=30).json()
        with_token = requests.Session()
        with_token.auth = (token["alias"], token["secret"])
        rows = [(name, http, method, path, params) for name, method, path, params in CASES]
        rows.insert(1, ("experiment item (token auth)", with_token, *CASES[3][1:]))
        print("| request | median ms | min-max ms |\n|---|---|---|")
        for name, session, method, path, params in rows:
            times = _measure(session, sim.url, method, path, params, args.runs)
            print(f"| {name} | {statistics.median(times):.1f} | {min(times):.1f}-{max(times):.1f} |")


if __name__ == "__main__":
    main()
