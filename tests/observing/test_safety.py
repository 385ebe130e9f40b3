"""The independent checker: reads a script, reconstructs the pointing, reports every unsafe moment."""

from __future__ import annotations

import subprocess
from datetime import UTC

import numpy as np
import pytest

from scheduler_server.observing.policies.basic.blocks import iso
from scheduler_server.observing.safety import checker as safety
from scheduler_server.observing.sky import ephemerides as sky
from scheduler_server.observing.sky.ephemerides import ATACAMA
from scheduler_server.observing.telescope import TelescopeModel
from tests.observing.conftest import CLI, utc

# The hand-made timelines below were laid out for these durations (shorter than the defaults).
MODEL = TelescopeModel(uxm_setup_seconds=600, iv_curve_seconds=300, bias_dets_seconds=120)
NOON = utc(2024, 3, 4, 12, 30)  # morning: the sun at el ~27, where azimuth offsets are angles
SUN_AZ, SUN_EL = (float(x[0]) for x in sky.altaz("sun", ATACAMA, np.array([NOON + 1800.0])))
HEADER = "from sorunlib import *\nfrom nextline import disable_trace\n\nwith disable_trace():\n    initialize(test_mode=True)\n\nsmurf.uxm_setup()\nsmurf.iv_curve()\n\n"


def script(*blocks: str) -> str:
    return HEADER + "\n".join(blocks)


def block(az, el, t0, t1, width=10.0, name="x") -> str:
    return (
        f"# {name}\nacu.move_to({az}, {el})\nsmurf.bias_dets()\nwait_until('{iso(t0)}')\n"
        f"smurf.bias_step()\nseq.scan(description='{name}', stop_time='{iso(t1)}', width={width})\nsmurf.bias_step()\n"
    )


def check(text, start=None):
    return safety.check_script(text, 41.0, MODEL, ATACAMA, start=start)


def test_a_scan_over_the_sun_is_reported_with_its_line():
    text = script(block(SUN_AZ - 5, SUN_EL, NOON + 1200, NOON + 2400))
    report = check(text, start=NOON)
    assert not report.safe
    (worst,) = [v for v in report.violations if v.what.startswith("scan")]
    assert text.splitlines()[worst.line - 1].startswith("seq.scan(")
    assert worst.closest < 1.0 and "comes" in str(worst) and "deg from the sun" in str(worst)


def test_a_slew_across_the_sun_between_two_safe_places_is_caught():
    # Both ends are 60 deg of azimuth from the sun at its elevation; the path passes through it.
    left, right = SUN_AZ - 60, SUN_AZ + 60
    first = block(left, SUN_EL, NOON + 1200, NOON + 1500)
    second = block(right, SUN_EL, NOON + 1800, NOON + 2100)
    report = check(script(first, second), start=NOON + 600)
    kinds = {v.what.split()[0] for v in report.violations}
    assert kinds == {"slew"}, report.lines()
    assert report.violations[0].closest < 2.0
    # Each scan alone is safe.
    assert check(script(first), start=NOON + 600).safe
    assert check(script(second), start=NOON + 1700).safe


def test_waiting_where_the_sun_will_be_is_caught():
    later = NOON + 3 * 3600
    sun_az, sun_el = (float(x[0]) for x in sky.altaz("sun", ATACAMA, np.array([float(later)])))
    # Move to where the sun will be in three hours, then wait four hours for a scan elsewhere.
    text = script(f"# park\nacu.move_to({sun_az}, {sun_el})\nwait_until('{iso(NOON + 4 * 3600)}')\n")
    report = check(text, start=NOON)
    (v,) = report.violations
    assert v.what.startswith("waiting") and v.t0 < later < v.t1


def test_before_the_first_move_nothing_is_known_and_without_a_start_checking_begins_at_the_first_wait():
    text = script(block(SUN_AZ + 90, 60.0, NOON + 1200, NOON + 2400))
    assert check(text).safe and check(text, start=NOON).safe
    assert check(text).spans >= 1


def test_what_it_cannot_follow_makes_the_script_fail():
    cases = {
        "import os\n": "cannot tell what",
        "acu.move_to(az=120)\n": "is missing el",
        "x = 3\n": "cannot tell what `x = 3`",
        "acu.move_to(120, elevation)\n": "arguments must be literal values",
        "acu.fly_to(1, 2)\n": "unknown command acu.fly_to()",
        "acu.move_to(100, 50)\nseq.scan('a', '2024-03-04T12:00:00+02:00', 10)\n": "only UTC times",
        "wait_until('tomorrow')\n": "not an ISO 8601 time",
        "acu.move_to(120, 50\n": "not valid Python",
        "seq.scan('a', '2024-03-04T12:00:00', 10)\n": "before any acu.move_to()",
    }
    for snippet, problem in cases.items():
        report = check(HEADER + snippet)
        assert not report.safe and any(problem in p for p in report.problems), (snippet, report.problems)


def test_a_drifting_scan_covers_its_drift():
    # 0.05 deg/s for 20 minutes moves the scan 60 deg further in azimuth, onto the sun.
    plain = block(SUN_AZ - 70, SUN_EL, NOON + 1200, NOON + 2400, width=10.0)
    drifting = plain.replace("width=10.0)", "width=10.0, az_drift=0.05)")
    assert check(script(plain), start=NOON).safe
    assert not check(script(drifting), start=NOON).safe


def test_check_script_command_exit_codes(tmp_path):
    unsafe = tmp_path / "unsafe.py"
    unsafe.write_text(script(block(SUN_AZ - 5, SUN_EL, NOON + 1200, NOON + 2400)))
    done = subprocess.run(
        [CLI, "check-script", str(unsafe), "--start", "2024-03-04 12:30"], capture_output=True, text=True, timeout=60
    )
    assert (
        done.returncode == 1
        and "line " in done.stdout
        and "deg from the sun" in done.stdout
        and "UNSAFE" in done.stderr
    )
    safe = tmp_path / "safe.py"
    safe.write_text(script(block(SUN_AZ + 150, 60.0, NOON + 1200, NOON + 2400)))
    done = subprocess.run(
        [CLI, "check-script", str(safe), "--start", "2024-03-04 12:30"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("safe: ")
    done = subprocess.run(
        [CLI, "check-script", str(safe), "--set", "telescope.bogus=1"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "policy.config.telescope.bogus" in done.stderr


def test_the_fast_reader_and_the_syntax_tree_agree():
    from datetime import datetime

    from scheduler_server.observing.safety.script_reader import _read_ast, _read_simple, read_script
    from scheduler_server.observing.service import PolicyRequest, run_schedule

    text = run_schedule(
        datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 4, tzinfo=UTC), PolicyRequest("basic", {})
    ).commands
    fast = _read_simple(text)
    assert fast is not None and fast.calls == _read_ast(text).calls and len(fast.calls) > 100
    # A line the expressions do not read is read by the syntax tree alone (from it to where it parses),
    # the same way as the whole script's tree reads it; one that never parses sends the whole script there.
    odd = text.replace("smurf.bias_dets()", "smurf.bias_dets()  # biased", 1)
    assert _read_simple(odd).calls == read_script(odd).calls == fast.calls
    for tricky, whole in (
        ("acu.move_to(1, 2); import os\n", False),
        ("acu.move_to(1, el=2, el=3)\n", False),  # parses, yet Python refuses it: a problem both ways
        ("acu.move_to(el=2, 1)\n", True),
        ("acu.move_to(1_0, 2)\n", False),
        ("acu.move_to(1,\n    2)\n", False),
        ('x = ("""\nacu.move_to(1, 2)\n""")\n', False),
    ):
        simple, tree = _read_simple(HEADER + tricky), _read_ast(HEADER + tricky)
        assert (simple is None) == whole, tricky
        if simple is not None:
            assert (simple.calls, simple.problems) == (tree.calls, tree.problems), tricky
    assert any("keyword argument repeated" in p for p in read_script(HEADER + "acu.move_to(1, el=2, el=3)\n").problems)


def test_the_checkers_box_distance_is_the_minimum_over_a_dense_sample_of_the_box():
    rng = np.random.default_rng(12)
    for _ in range(40):
        az_lo, el_lo = rng.uniform(-20, 340), rng.uniform(0, 80)
        box = (
            az_lo,
            az_lo + rng.choice([0.0, rng.uniform(0, 90), 400.0]),
            el_lo,
            min(90.0, el_lo + rng.choice([0.0, rng.uniform(0, 40)])),
        )
        sun_az, sun_el = rng.uniform(0, 360), rng.uniform(-30, 90)
        grid_az, grid_el = np.meshgrid(
            np.linspace(box[0], min(box[1], box[0] + 360), 400), np.linspace(box[2], box[3], 200)
        )
        brute = np.radians(90 - grid_el), np.radians(grid_az)
        sun = np.radians(90 - sun_el), np.radians(sun_az)
        cos_brute = (
            np.cos(brute[0]) * np.cos(sun[0]) + np.sin(brute[0]) * np.sin(sun[0]) * np.cos(brute[1] - sun[1])
        ).max()
        got = safety._cos_to_box(np.array([sun_az]), np.array([sun_el]), np.array([box]))[0]
        assert got >= cos_brute - 1e-12  # never farther than a point of the box
        assert np.degrees(np.arccos(min(got, 1.0))) == pytest.approx(
            np.degrees(np.arccos(min(cos_brute, 1.0))), abs=0.3
        )


def test_the_checker_reads_sun_positions_off_the_grid_and_between_and_beyond_it():
    from scheduler_server.observing.sky.geometry import angular_distance

    start = NOON - 6 * 3600
    sun = sky.Samples("sun", ATACAMA, start, start + 86400, 10)
    rng = np.random.default_rng(1)
    t = np.sort(
        np.concatenate(
            [
                np.arange(start, start + 86000, 10.0),
                rng.uniform(start, start + 86400, 2000),
                [sun.t[0], sun.t[-1], start - 900, sun.t[-1] + 7],
            ]
        )
    )
    az, el = safety._sun(t, ATACAMA, sun)
    exact_az, exact_el = sky.altaz("sun", ATACAMA, t)
    assert angular_distance(az, el, exact_az, exact_el).max() < 1e-4
    on_grid = np.isin(t, sun.t)
    assert np.array_equal(el[on_grid], sun.el[np.searchsorted(sun.t, t[on_grid])])


def test_the_report_carries_the_sun_distance_once_a_minute_over_the_whole_script():
    first = block(SUN_AZ - 80, SUN_EL, NOON + 1200, NOON + 2400, name="near")
    second = block(SUN_AZ + 150, 60.0, NOON + 3000, NOON + 4200, name="far")
    report = check(script(first, second), start=NOON)
    samples = report.sun_samples
    times = [t for t, _ in samples]
    assert report.limit_deg == 41.0 and times == sorted(set(times))
    assert all(t % 60 == 0 for t in times) and times[-1] == NOON + 4260  # the closing bias step ends then
    # Every minute from the first move (after the header's 15 min of detector setup, before which
    # the pointing is unknown) to the last scan's end is there, none twice.
    assert times[0] == NOON + 900
    assert len(times) == (times[-1] - times[0]) // 60 + 1
    # During each scan, a minute's figure is the sun's distance to the swept arc at its closest moment.
    from scheduler_server.observing.sky.geometry import angular_distance

    during = dict(samples)
    for (az, el), (a, b) in (((SUN_AZ - 80, SUN_EL), (1260, 2340)), ((SUN_AZ + 150, 60.0), (3060, 4140))):
        minutes = np.array([t for t in times if NOON + a <= t < NOON + b], dtype=float)
        sun_az, sun_el = sky.altaz("sun", ATACAMA, minutes)
        arc = np.linspace(az, az + 10.0, 201)
        expected = angular_distance(arc[None, :], el, sun_az[:, None], sun_el[:, None]).min(axis=1)
        got = np.array([during[t] for t in minutes])
        assert np.all(got <= expected + 0.01) and np.all(got >= expected - 0.3)
    assert min(d for _, d in samples) == pytest.approx(report.closest, abs=0.01)
