"""Speed of the sat policy's calibration planning (``plan_calibration``) alone, warm, in-process.

    .venv/bin/python bench/bench_sat_calibration.py

Two loads, each over 1-day and 7-day windows from 2023-12-01 00:00 UTC, with the observatory's sun policy
(41 deg, 1980 s, sun sampled every 10 s) and SATp1's az range: the bundled sample calibration plan
(rows with their own windows, 2023-12-01..04), and four config-style targets per day of the window
(Jupiter, Saturn at boresight 45, RCW 38, the Moon with allow_partial: no row window, so every crossing in
the window is a candidate). Warm: one untimed run first (sky tables and day tracks cached), then each timed
run a window shifted by a whole number of minutes so the schedule's own work is redone; median wall and CPU
of 7 runs.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from importlib.resources import files

from scheduler_server.observing.policies.basic.avoidance import SunGuard
from scheduler_server.observing.policies.sat import plans
from scheduler_server.observing.policies.sat.calibration import plan_calibration
from scheduler_server.observing.policies.sat.targets import CalTarget
from scheduler_server.observing.sky.ephemerides import ATACAMA, Samples

START = datetime(2023, 12, 1, tzinfo=UTC).timestamp()
DAY = 86400.0
DAILY = [
    CalTarget("jupiter", "ws0", 45.0, boresight=0.0),
    CalTarget("saturn", "left", 45.0, boresight=45.0),
    CalTarget("rcw38", "ws0,ws1", 50.0, boresight=0.0),
    CalTarget("moon", "all", 40.0, boresight=0.0, allow_partial=True),
]


def run(targets, cmb, days: float, shift: float):
    t0 = START + shift
    t1 = t0 + days * DAY
    guard = SunGuard(Samples("sun", ATACAMA, t0 - DAY, t1 + DAY, 10), 41.0, 1980.0)
    wall, cpu = time.perf_counter(), time.process_time()
    found = plan_calibration(targets, cmb, ATACAMA, t0, t1, platform="satp1", sun_guard=guard, az_limits=(-45, 405))
    return time.perf_counter() - wall, time.process_time() - cpu, found


def main() -> None:
    data = files("scheduler_server.observing.policies.sat") / "data"
    cal = plans.read_cal_plan((data / "sample_cal_targets.txt").read_text(), "sample_cal_targets.txt")
    cmb = plans.read_cmb_plan((data / "sample_cmb.txt").read_text(), "sample_cmb.txt")
    print("| load | window | targets | scans | warm wall | warm CPU |")
    print("|---|---|---|---|---|---|")
    for label, make in (("sample plan", lambda days: cal), ("4 targets a day", lambda days: DAILY * int(days))):
        for days in (1, 7):
            targets = make(days)
            run(targets, cmb, days, 0.0)
            runs = [run(targets, cmb, days, 60.0 * k) for k in range(1, 8)]
            wall = statistics.median(r[0] for r in runs) * 1e3
            cpu = statistics.median(r[1] for r in runs) * 1e3
            print(f"| {label} | {days} d | {len(targets)} | {len(runs[0][2])} | {wall:.1f} ms | {cpu:.1f} ms |")


if __name__ == "__main__":
    main()
