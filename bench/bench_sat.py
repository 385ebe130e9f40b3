"""Speed of the `sat` observing policy (preset satp1, the bundled SATp1 baseline): warm in-process and as a fresh CLI.

    .venv/bin/python bench/bench_sat.py             # the table
    .venv/bin/python bench/bench_sat.py --runs 3    # fewer timed runs per window

Windows of 1, 2, 4 and 7 days starting 2023-11-01 00:00 UTC (inside the baseline's 2023-10-31..2023-12-31),
the policy taken from the registry (``available_policies()["sat"]``, through ``run_schedule`` as the API does).
"warm": the process has scheduled the window before (imports done, sky tables and source tracks cached), each
timed run a *different* window (shifted by a day), median wall and CPU time of the runs; "first": windows of the
same lengths each scheduled for the first time in a process that has run another day (no two sharing a day,
3 of each length from 2023-11-01; the disk cache filled by the CLI runs beforehand), so the per-day caches
are filled on the spot; peak memory is what
tracemalloc saw during one warm run. "fresh CLI": a new `scheduler-server schedule --policy sat --preset
satp1` process (imports included), median of 3, with its peak RSS (``/usr/bin/time``). A last row schedules
2023-12-01 with the bundled sample CMB, calibration-target and wiregrid plans.

Goals (issue 13): 1 day < 48 ms and 7 days < 320 ms warm, fresh CLI (1 day) < 1.5 s, memory for 7 days
< 150 MB, cost linear in the window. The peer: schedlib's SATP1Policy, about 48 s for a day and 322 s for
a week on this machine kind (the issue's figure, measured 2026-12; a synthetic plan of 60-minute CMB
blocks at el 60 and the observatory's sun policy).
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

START = datetime(2023, 11, 1, tzinfo=UTC)
DAYS = (1, 2, 4, 7)
FIRST_RUNS = 3  # 3 x (1 + 2 + 4 + 7) days from START, then the warm-up day: all inside the baseline
FIRST_WARMUP = datetime(2023, 12, 20, tzinfo=UTC)
PLANS_DAY = datetime(2023, 12, 1, tzinfo=UTC)
PLANS = {"cmb_plan": "sample_cmb.txt", "cal_plan": "sample_cal_targets.txt", "wiregrid_plan": "sample_wiregrid.txt"}
CLI = str(Path(sys.executable).parent / "scheduler-server")
SCHEDLIB_SECONDS = {1: 48.0, 7: 322.0}  # SATP1Policy on this machine kind, 2026-12 (issue 13)
GOALS_MS = {1: 48.0, 7: 320.0}
CLI_GOAL_S, MEMORY_GOAL_MB = 1.5, 150.0


def _request(config: dict | None = None):
    from scheduler_server.observing.service import PolicyRequest, available_policies

    if "sat" not in available_policies():
        raise SystemExit("no policy 'sat' is registered (entry point scheduler_server.policies: sat)")
    return PolicyRequest("sat", dict(config or {}), "satp1")


def _timed(t0: datetime, t1: datetime, request) -> tuple[float, float]:
    from scheduler_server.observing.service import run_schedule

    began, began_cpu = time.perf_counter(), time.process_time()
    run_schedule(t0, t1, request)
    return time.perf_counter() - began, time.process_time() - began_cpu


def first(runs: int) -> dict[int, tuple[float, float]]:
    """Windows each scheduled for the first time in this process, no two sharing a day (median wall, CPU)."""
    request = _request()
    _timed(FIRST_WARMUP, FIRST_WARMUP + timedelta(days=1), request)  # imports and the bundled plan, other days
    out, cursor = {}, START
    for days in DAYS:
        results = []
        for _ in range(runs):
            results.append(_timed(cursor, cursor + timedelta(days=days), request))
            cursor += timedelta(days=days)
        out[days] = (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results))
    assert cursor <= FIRST_WARMUP, "the first-time windows must stay clear of the warm-up day"
    return out


def warm(days: int, runs: int, start: datetime = START, config: dict | None = None) -> tuple[float, float, float]:
    """Windows scheduled before in this process: median wall and CPU, and one run's tracemalloc peak (MiB)."""
    from scheduler_server.observing.service import run_schedule

    request = _request(config)
    length = timedelta(days=days)
    windows = [(start + timedelta(days=k), start + timedelta(days=k) + length) for k in range(runs)]
    for t0, t1 in windows:
        run_schedule(t0, t1, request)
    results = [_timed(t0, t1, request) for t0, t1 in windows]
    tracemalloc.start()
    run_schedule(*windows[0], request)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results), peak / 2**20


def fresh(days: int, env: dict, runs: int = 3) -> tuple[float, float, float]:
    """A new CLI process: median wall and CPU (user + sys) seconds, and the largest peak RSS (MiB)."""
    command = [CLI, "schedule", "--policy", "sat", "--preset", "satp1"]
    command += ["--t0", f"{START:%Y-%m-%d %H:%M}", "--t1", f"{START + timedelta(days=days):%Y-%m-%d %H:%M}"]
    times, cpus, peaks = [], [], []
    for _ in range(runs):
        began = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S %M", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        times.append(time.perf_counter() - began)
        if done.returncode != 0:
            raise SystemExit(f"the CLI failed: {done.stderr.strip()[-2000:]}")
        user, system, rss = done.stderr.strip().splitlines()[-1].split()
        cpus.append(float(user) + float(system))
        peaks.append(int(rss) / 1024)
    return statistics.median(times), statistics.median(cpus), max(peaks)


def _verdict(wall: float, cpu: float, goal: float) -> str:
    said = {True: "met", False: "**missed**"}
    return f"< {goal:g}: wall {said[wall < goal]}, CPU {said[cpu < goal]}"


def _row(days: int, rows: dict, cli: dict) -> str:
    wall, cpu, peak, first_wall, first_cpu = rows[days]
    notes = []
    if days in GOALS_MS:
        notes.append(f"warm ms {_verdict(wall * 1000, cpu * 1000, GOALS_MS[days])}")
        notes.append(f"{SCHEDLIB_SECONDS[days] / wall:,.0f}x schedlib (wall)")
    cli_s, cli_cpu, rss = cli.get(days, (None, None, None))
    if days == 7:
        notes.append(f"memory {'met' if max(peak, rss) < MEMORY_GOAL_MB else '**missed**'} (< {MEMORY_GOAL_MB:g} MB)")
    cli_text = f"{cli_s:8.2f} | {cli_cpu:8.2f} | {rss:8.0f}" if cli_s is not None else f"{'':8} | {'':8} | {'':8}"
    return (
        f"{days:>4} d | {wall * 1000:8.1f} | {cpu * 1000:7.1f} | {cpu * 1000 / days:10.1f} | {first_wall * 1000:8.1f}"
        f" | {first_cpu * 1000:9.1f} | {peak:8.1f} | {cli_text} | {'; '.join(notes)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per window (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SCHEDULER_SERVER_CACHE_DIR"] = cache
        env = {**os.environ, "SCHEDULER_SERVER_CACHE_DIR": cache}
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        cli = {days: fresh(days, env) for days in (1, 7)}  # also fills the disk cache for the windows timed
        firsts = first(FIRST_RUNS)
        rows = {days: (*warm(days, args.runs), *firsts[days]) for days in DAYS}
        print(
            f"{'window':>6} | {'warm ms':>8} | {'cpu ms':>7} | {'cpu ms/day':>10} | {'first ms':>8} | {'first cpu':>9}"
            f" | {'peak MiB':>8} | {'CLI s':>8} | {'CLI cpu':>8} | {'CLI MiB':>8} | goals"
        )
        print("-" * 130)
        for days in DAYS:
            print(_row(days, rows, cli))
        per_day = [rows[d][1] / d for d in DAYS]
        print(
            f"CPU per day from 1 to 7 days: {min(per_day) * 1000:.1f}..{max(per_day) * 1000:.1f} ms (linear if close)"
        )
        print(f"fresh CLI, 1 day: {cli[1][0]:.2f} s wall, {cli[1][1]:.2f} s CPU: {_verdict(*cli[1][:2], CLI_GOAL_S)} s")
        wall, cpu, peak = warm(1, 3, PLANS_DAY, PLANS)  # the sample plans cover 2023-12-01..04
        print(f"1 d from {PLANS_DAY:%Y-%m-%d} with the sample CMB, calibration and wiregrid plans: warm {wall * 1000:.1f} ms"
              f" ({cpu * 1000:.1f} ms CPU, peak {peak:.1f} MiB)")  # fmt: skip
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
