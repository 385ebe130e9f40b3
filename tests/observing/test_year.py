"""A year of daily schedules from the generated master schedule passes the independent checker.

Every fifth day of 2025 here (73 days, all seasons); ``bench/bench_basic.py --year``
runs all 365.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler_server.observing.policies.basic.policy import BasicPolicy
from scheduler_server.observing.safety import checker as safety
from scheduler_server.observing.service import PolicyRequest, build_config, run_schedule
from scheduler_server.observing.sky.ephemerides import ATACAMA


def test_a_year_of_daily_schedules_has_no_violation():
    config = build_config("basic", BasicPolicy(), {})
    start = datetime(2025, 1, 1, tzinfo=UTC)
    observed = calibrations = 0
    for day in range(0, 365, 5):
        t0 = start + timedelta(days=day)
        result = run_schedule(t0, t0 + timedelta(days=1), PolicyRequest("basic", {}))
        # Checked again here, from scratch: the sun straight from the ephemeris, not the
        # policy's samples, and a finer step than the policy's.
        report = safety.check_script(result.commands, 41.0, config.telescope, ATACAMA, start=t0.timestamp(), step=5)
        assert report.safe, f"{t0:%Y-%m-%d}: {report.lines()[:3]}"
        observed += sum((b.t1 - b.t0).total_seconds() for b in result.blocks)
        calibrations += sum(b.kind == "calibration" for b in result.blocks)
    days = len(range(0, 365, 5))
    assert observed / (days * 86400) > 0.5  # safety did not empty the schedule
    assert calibrations > days / 2
