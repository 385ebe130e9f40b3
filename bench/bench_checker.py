"""The independent checker alone: what it costs on each policy's scripts, as the policies call it.

    .venv/bin/python bench/bench_checker.py [--runs N]

Schedules a 1-day and a 7-day window with ``basic`` (seed-shaped scripts) and ``sat`` preset satp1
(sequencer-shaped, the bundled SATp1 baseline), then times ``check_script`` on each script with the sun
already sampled (as the policies pass it): the best of N runs, wall and CPU, and the script's size.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from scheduler_server.observing.safety import checker
from scheduler_server.observing.service import PolicyRequest, run_schedule
from scheduler_server.observing.sky.ephemerides import ATACAMA, Samples
from scheduler_server.observing.telescope import TelescopeModel

CASES = [
    ("basic", None, datetime(2024, 3, 1, tzinfo=UTC), 1),
    ("basic", None, datetime(2024, 3, 1, tzinfo=UTC), 7),
    ("sat", "satp1", datetime(2023, 11, 10, tzinfo=UTC), 1),
    ("sat", "satp1", datetime(2023, 11, 10, tzinfo=UTC), 7),
]


def measure(text: str, t0: float, days: int, runs: int) -> tuple[float, float, checker.Report]:
    sun = Samples("sun", ATACAMA, int(t0) - 3600, int(t0) + days * 86400 + 5400, 10)
    wall = cpu = float("inf")
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        report = checker.check_script(text, 41.0, TelescopeModel(), ATACAMA, start=t0, sun=sun)
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    print("| policy | window | lines | calls checked | spans | best wall | best CPU | safe |")
    print("|---|---|---|---|---|---|---|---|")
    for name, preset, start, days in CASES:
        text = run_schedule(start, start + timedelta(days=days), PolicyRequest(name, {}, preset=preset)).commands
        wall, cpu, report = measure(text, start.timestamp(), days, runs)
        lines = text.count("\n")
        calls = sum(1 for line in text.splitlines() if line and not line.startswith(("#", "import", "from")))
        label = f"{name} {preset}" if preset else name
        print(
            f"| {label} | {days} d | {lines} | {calls} | {report.spans} | {wall * 1000:.1f} ms"
            f" | {cpu * 1000:.1f} ms | {report.safe} |"
        )


if __name__ == "__main__":
    main()
