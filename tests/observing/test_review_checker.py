"""Review of issue 13, finding 7: what the checker makes of scripts it used to misjudge."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler_server.observing.safety import checker
from scheduler_server.observing.service import PolicyRequest, check_schedule, run_schedule
from scheduler_server.observing.sky.site import ATACAMA

T0 = datetime(2023, 12, 3, 23, tzinfo=UTC)
T1 = datetime(2023, 12, 4, 13, tzinfo=UTC)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_dummy_answer_is_judged_safe_since_nothing_points(seed):
    request = PolicyRequest("dummy", {"seed": seed})
    result = run_schedule(T0, T1, request)
    assert "time.sleep(" in result.commands
    check = check_schedule(T0, result, request)
    assert check["safe"] and check["problems"] == []


def test_a_sleep_at_a_pointing_is_time_spent_there_and_a_negative_one_a_problem():
    # the sun at 12:00 UTC on 2023-12-04 is low in the east-south-east at the site: point at it and sleep
    start = datetime(2023, 12, 4, 12, tzinfo=UTC).timestamp()
    from scheduler_server.observing.sky import ephemerides as sky

    az, el = (float(v[0]) for v in sky.altaz("sun", ATACAMA, [start + 600.0]))
    text = f"from sorunlib import *\nacu.move_to({az:.2f}, {max(el, 20):.2f})\ntime.sleep(1200)\n"
    report = checker.check_script(text, 41.0, None, ATACAMA, start=start)
    assert not report.safe and report.violations and report.problems == []
    report = checker.check_script("import time\ntime.sleep(-5)\n", 41.0, None, ATACAMA, start=start)
    assert not report.safe and "negative" in report.lines()[0]


def _sat_script() -> str:
    request = PolicyRequest("sat", {}, "satp1")
    return run_schedule(T0, datetime(2023, 12, 4, 2, tzinfo=UTC), request).commands


def _judged(text: str):
    return checker.check_script(text, 41.0, None, ATACAMA, start=T0.timestamp())


def test_a_sat_script_as_emitted_passes_and_each_tampering_is_a_problem():
    text = _sat_script()
    assert _judged(text).safe
    second = text.replace("import numpy as np\n", "import numpy as np\n# platform: satp3\n", 1)
    assert any("second '# platform:'" in p for p in _judged(second).lines())
    line = next(x for x in text.splitlines() if x.startswith("run.acu.set_scan_params("))
    fast = text.replace(line, "run.acu.set_scan_params(az_speed=0.8, az_accel=9.0)", 1)
    assert any("az_accel" in p for p in _judged(fast).lines())
    wait = next(x for x in text.splitlines() if x.startswith("run.wait_until("))
    lax = text.replace(wait, wait[: wait.index("tolerance=")] + "tolerance=864000)", 1)
    assert any("tolerance of 864000" in p for p in _judged(lax).lines())
