"""Speed of the `basic` observing policy: warm in-process and as a fresh CLI process.

    .venv/bin/python bench/bench_basic.py            # the table
    .venv/bin/python bench/bench_basic.py --year     # also: 365 daily schedules through the checker

Windows of 1 h, 24 h, 7 d and 30 d starting 2024-03-04 00:00 UTC, default config.
"warm": the process has run the policy before and the disk cache holds the sky
tables and generated months; each timed run asks for a *different* window (shifted
by a day) so per-window work is really done; the median wall and CPU time of the
runs is shown (CPU time is the fairer figure on a shared machine), and peak memory
is what tracemalloc saw during one run. "fresh CLI": a new
`scheduler-server schedule --policy basic` process (imports included), median of
3, with its peak RSS. The last row is a fresh CLI with an empty cache (sky tables
computed on the spot; the month's master schedule is shipped in the package for
2024-2027), median of 3 runs, each with its own empty cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2024, 3, 4, tzinfo=UTC)
WINDOWS = [
    ("1 h", timedelta(hours=1)),
    ("24 h", timedelta(days=1)),
    ("7 d", timedelta(days=7)),
    ("30 d", timedelta(days=30)),
]
CLI = str(Path(sys.executable).parent / "scheduler-server")


def warm(length: timedelta, runs: int = 5) -> tuple[float, float, float]:
    from scheduler_server.observing.service import PolicyRequest, run_schedule

    request = PolicyRequest("basic", {})
    for k in range(runs):  # fill the disk and memory caches for every window timed below
        run_schedule(START + timedelta(days=k), START + timedelta(days=k) + length, request)
    times, cpu = [], []
    for k in range(runs):
        t0 = START + timedelta(days=k)
        began, began_cpu = time.perf_counter(), time.process_time()
        run_schedule(t0, t0 + length, request)
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    tracemalloc.start()
    run_schedule(START, START + length, request)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), statistics.median(cpu), peak / 2**20


def fresh(length: timedelta, env: dict, runs: int = 3) -> tuple[float, float]:
    # Peak RSS through /usr/bin/time: a child forked from this (large) process would
    # report this process's size as its own peak.
    times, peaks = [], []
    for _ in range(runs):
        command = [
            CLI,
            "schedule",
            "--policy",
            "basic",
            "--t0",
            f"{START:%Y-%m-%d %H:%M}",
            "--t1",
            f"{START + length:%Y-%m-%d %H:%M}",
        ]
        began = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        times.append(time.perf_counter() - began)
        assert done.returncode == 0, done.stderr
        peaks.append(int(done.stderr.strip().splitlines()[-1]) / 1024)
    return statistics.median(times), max(peaks)


def year(env: dict) -> None:
    from scheduler_server.observing.policies.basic.policy import BasicPolicy
    from scheduler_server.observing.safety import checker as safety
    from scheduler_server.observing.service import PolicyRequest, build_config, run_schedule
    from scheduler_server.observing.sky.ephemerides import ATACAMA

    config = build_config("basic", BasicPolicy(), {})
    start = datetime(2025, 1, 1, tzinfo=UTC)
    violations = problems = blocks = 0
    observed = 0.0
    began = time.perf_counter()
    for day in range(365):
        t0 = start + timedelta(days=day)
        result = run_schedule(t0, t0 + timedelta(days=1), PolicyRequest("basic", {}))
        report = safety.check_script(result.commands, 41.0, config.telescope, ATACAMA, start=t0.timestamp(), step=5)
        violations += len(report.violations)
        problems += len(report.problems)
        blocks += len(result.blocks)
        observed += sum((b.t1 - b.t0).total_seconds() for b in result.blocks)
    print(
        f"\nyear 2025, 365 daily schedules: {violations} violations, {problems} problems, {blocks} scans,"
        f" {observed / (365 * 86400):.0%} of the time observing, {time.perf_counter() - began:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--year", action="store_true", help="also run and check 365 daily schedules")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as warm_cache, tempfile.TemporaryDirectory() as cold_cache:
        os.environ["SCHEDULER_SERVER_CACHE_DIR"] = warm_cache
        env = {**os.environ, "SCHEDULER_SERVER_CACHE_DIR": warm_cache}
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        print(
            f"{'window':>6} | {'warm ms':>8} | {'cpu ms':>7} | {'cpu ms/day':>10} | {'warm peak MiB':>13} | {'fresh CLI s':>11} | {'CLI peak RSS MiB':>16}"
        )
        print("-" * 93)
        for label, length in WINDOWS:
            seconds, cpu, peak = warm(length)
            cli_seconds, rss = fresh(length, env)
            days = length / timedelta(days=1)
            print(
                f"{label:>6} | {seconds * 1000:8.1f} | {cpu * 1000:7.1f} | {cpu * 1000 / days:10.1f} | {peak:13.1f} | {cli_seconds:11.2f} | {rss:16.0f}"
            )
        cold = []
        for run in range(3):  # each run with its own empty cache
            cold_env = {**os.environ, "SCHEDULER_SERVER_CACHE_DIR": os.path.join(cold_cache, str(run))}
            cold.append(fresh(timedelta(days=1), cold_env, runs=1))
        cli_seconds, rss = statistics.median(c[0] for c in cold), max(c[1] for c in cold)
        print(
            f"{'24 h':>6} | {'':8} | {'':7} | {'':10} | {'':13} | {cli_seconds:11.2f} | {rss:16.0f}  (fresh CLI, empty cache, median of 3)"
        )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if args.year:
            year(env)


if __name__ == "__main__":
    main()
