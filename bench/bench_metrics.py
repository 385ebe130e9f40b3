"""GET /metrics of a real ``scheduler-server serve`` with 10,000 pipelines in the database.

Milliseconds per scrape (median and p95 of --runs, one client, keep-alive), beside the health check
``GET /`` of the same server (the peer figure: one cheap database question and a JSON answer), for one
process and for ``server.workers: 2`` (every worker's metric files merged at each scrape). The rows are
inserted before the server starts (bench_ui's fill: finished but for --queued, which are cancelled).

    .venv/bin/python bench/bench_metrics.py [--runs 200] [--rows 10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.bench_ui import fill  # noqa: E402
from tests.pipelines.server import ServeProcess  # noqa: E402

WINDOW = {"t0": "2022-01-01 00:00", "t1": "2022-01-01 01:00", "policy": {"policy": "dummy"}}


def timed(session: requests.Session, url: str, runs: int) -> tuple[float, float]:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = session.get(url, timeout=30)
        took.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    took.sort()
    return statistics.median(took), took[int(0.95 * (len(took) - 1))]


def serve(rows: int, workers: int) -> ServeProcess:
    home = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    (home / "scripts").mkdir()
    url = f"sqlite:///{home / 'data' / 'pipelines.sqlite'}"
    config = home / "config.yaml"
    config.write_text(
        f"data_dir: {home / 'data'}\nlogging:\n  level: WARNING\nserver:\n  workers: {workers}\n"
        f"pipelines:\n  local_scripts_folder: {home / 'scripts'}\n  database_url: {url}\n"
    )
    fill(url, rows, 10)
    server = ServeProcess(home, config)
    try:
        return server.start(timeout=60)
    except requests.ReadTimeout:  # a worker still building the app took the first probe: wait for an answer
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(server.url + "/", timeout=10)
                return server
            except requests.RequestException:
                time.sleep(0.2)
        server.stop()
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    for workers in (1, 2):
        server = serve(args.rows, workers)
        try:
            session = requests.Session()
            for _ in range(20):  # series with children (the Schedule API's), and warm caches
                session.post(f"{server.url}/api/v1/schedule/", json=WINDOW, timeout=30)
            size = len(session.get(f"{server.url}/metrics", timeout=30).content)
            metrics = timed(session, f"{server.url}/metrics", args.runs)
            health = timed(session, f"{server.url}/", args.runs)
            print(
                f"workers {workers}: /metrics {metrics[0]:.2f} ms median, {metrics[1]:.2f} p95 ({size} bytes); "
                f"GET / {health[0]:.2f} ms median, {health[1]:.2f} p95"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
