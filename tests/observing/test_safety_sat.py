"""The independent checker on the sequencer's script shape (``import sorunlib as run``): its hazards, each named
by its line, the platform's limits from the checker's own data or the script's header, and the sun as before."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from scheduler_server.observing.safety import checker as safety
from scheduler_server.observing.safety import platforms
from scheduler_server.observing.safety.script_reader import _read_ast, _read_simple
from scheduler_server.observing.sky import ephemerides as sky
from scheduler_server.observing.sky.ephemerides import ATACAMA
from tests.observing.conftest import CLI, utc

T0 = utc(2023, 11, 5, 2, 0)  # 23:00 local: the sun far below the horizon, so only the hazards count


def iso(t: float) -> str:
    from scheduler_server.observing.safety.findings import iso as as_iso

    return as_iso(t)


def preamble(platform="satp1", el=50.0, boresight=0.0, hwp=False, direction="ccw", header=()) -> str:
    lines = [
        "# scheduler-server 0.1.0",
        "# policy: sat, preset: satp1",
        *([f"# platform: {platform}"] if platform else []),
        "# cmb plan: test",
        *header,
        "import numpy as np",
        "import sorunlib as run",
        "from nextline import disable_trace",
        "import socket",
        "import time",
        "",
        "with disable_trace():",
        "    run.initialize()",
        "",
        "acu = run.CLIENTS['acu']",
        f"assert socket.gethostname() == 'daq-{platform}-sequencer', 'platform check failed'",
        "acu_data = acu.monitor.status().session['data']",
        "sun_data = acu.monitor_sun.status().session['data']",
        "hwp_state = run.CLIENTS['hwp'].monitor.status().session['data']['hwp_state']",
        f"assert np.isclose(acu_data['StatusDetailed']['Elevation current position'], {el}, atol=1, rtol=0), 'el'",
        f"assert np.isclose(acu_data['StatusDetailed']['Boresight current position'], {boresight}, atol=0.1, rtol=0)",
    ]
    if hwp is not None:
        lines.append(f"assert hwp_state['is_spinning'] == {hwp}, 'HWP spinning check failed'")
        if hwp:
            lines.append(f"assert (hwp_state['direction'] == 'ccw') == {direction == 'ccw'}, 'HWP direction'")
        else:
            lines.append("assert hwp_state['gripper']['grip_state'] == 'ungripped', 'HWP gripper check failed'")
    lines.append("assert sun_data['policy']['exclusion_radius'] <= 41.0, 'sun avoidance angle too small'")
    return "\n".join(lines) + "\n\n"


def scan(stop: float, width=40.0, name="cmb", **extra) -> str:
    more = "".join(f", {k}={v!r}" for k, v in extra.items())
    return (
        f"run.seq.scan(description={name!r}, stop_time='{iso(stop)}', width={width}, az_drift=0.0, el_amp=0.0,"
        f" el_freq=0.0, scan_type=1, subtype='cmb', tag='x', min_duration=600.0{more})"
    )


RELOCK = "# relock\nwith disable_trace():\n    run.initialize()\nrun.smurf.zero_biases()\ntime.sleep(120)\nrun.smurf.uxm_relock(concurrent=True)\n"
SETUP = (
    "# detector setup\nrun.smurf.iv_curve(concurrent=True, iv_kwargs={'run_serially': False, 'cool_wait': 300})\n"
    "run.smurf.bias_dets(rfrac=0.5, concurrent=True)\ntime.sleep(180)\nrun.smurf.bias_step(concurrent=True)\n"
    "run.smurf.take_noise(concurrent=True, tag='bias_check')\n"
)
BODY = (
    f"run.wait_until('{iso(T0)}', tolerance=60)\n{RELOCK}"
    "run.acu.move_to(az=100.0, el=50.0)\nrun.acu.set_boresight(45.0)\n"
    f"{SETUP}run.hwp.spin_up(freq=-2)\n"
    "run.acu.set_scan_params(az_speed=0.8, az_accel=1.5, turnaround_method='standard')\n"
    f"{scan(T0 + 7200)}\nrun.acu.move_to(az=140.0, el=55.0)\nrun.smurf.bias_step(concurrent=True)\n"
    f"run.wait_until('{iso(T0 + 7260)}')\n{scan(T0 + 10800, width=30.0, name='second')}\n"
    "run.hwp.spin_down(active=True)\nrun.acu.move_to(az=180.0, el=60.0)\n"
)


def check(text: str, min_angle: float = 41.0, start: float | None = T0):
    return safety.check_script(text, min_angle, None, ATACAMA, start=start)


def spans_of(text: str, start: float):
    from scheduler_server.observing.safety.findings import Report
    from scheduler_server.observing.safety.script_reader import read_script

    reading = read_script(text)
    return safety._sat_replay(reading, start, Report(41.0)).run(reading.calls)


def line_of(text: str, fragment: str, nth: int = 0) -> int:
    found = [n for n, line in enumerate(text.splitlines(), start=1) if fragment in line]
    return found[nth]


def hazards(report, kind: str):
    return [v for v in report.violations if v.kind == kind]


def test_a_safe_sequencer_script_passes():
    text = preamble() + BODY
    report = check(text)
    assert report.safe, report.lines()
    assert report.platform == "satp1" and report.limit_deg == 41.0 and report.spans >= 5
    assert report.sun_samples and report.sun_samples[-1][0] >= T0 + 10800 - 60
    # The same script read line by line and by the syntax tree alone.
    assert _read_simple(text).calls == _read_ast(text).calls


def test_the_hwp_spinning_outside_its_elevation_range_is_refused_at_the_line():
    text = preamble() + BODY.replace("run.acu.move_to(az=140.0, el=55.0)", "run.acu.move_to(az=140.0, el=65.0)")
    v, then = hazards(check(text), "hwp_el")  # the move, and the scan there
    assert then.line == line_of(text, "run.seq.scan", 1)
    assert v.line == line_of(text, "el=65.0") and "el 65" in v.what and "40..60" in v.what
    # Spun up where it may not spin.
    text = preamble() + BODY.replace("el=50.0)", "el=62.0)", 1)
    found = hazards(check(text), "hwp_el")
    assert [v.line for v in found][:1] == [line_of(text, "run.hwp.spin_up")]
    # A type 3 scan's elevation swing leaves the range.
    text = preamble() + BODY.replace("el_amp=0.0, el_freq=0.0, scan_type=1", "el_amp=12.0, el_freq=0.1, scan_type=3", 1)
    (v,) = hazards(check(text), "hwp_el")
    assert v.line == line_of(text, "scan_type=3") and "38..62" in v.what
    # The preamble asserts a spinning HWP at an elevation outside the range.
    text = preamble(el=30.0, hwp=True)
    assert [v.line for v in hazards(check(text), "hwp_el")] == [line_of(text, "is_spinning")]


def test_a_boresight_move_while_the_hwp_spins_is_refused():
    text = preamble(hwp=True) + BODY
    (v,) = hazards(check(text), "boresight")
    assert v.line == line_of(text, "set_boresight(45.0)") and "while the HWP spins" in v.what
    # Without an assert of the HWP's state it may be spinning: refused as well.
    text = preamble(hwp=None) + BODY
    (v,) = hazards(check(text), "boresight")
    assert "may spin" in v.what
    # Spun down first, it is fine.
    text = preamble(hwp=True) + BODY.replace(
        "run.acu.set_boresight(45.0)", "run.hwp.spin_down(active=True)\nrun.acu.set_boresight(45.0)"
    )
    assert not hazards(check(text), "boresight")


def test_a_scan_without_detectors_biased_since_the_last_relock_is_refused():
    text = preamble() + BODY.replace("run.smurf.bias_dets(rfrac=0.5, concurrent=True)\n", "")
    found = hazards(check(text), "bias")
    assert [v.line for v in found] == [line_of(text, "run.seq.scan"), line_of(text, "run.seq.scan", 1)]
    assert f"line {line_of(text, 'iv_curve')}" in found[0].what
    # A relock between the scans unbiases them again.
    text = preamble() + BODY.replace("run.smurf.bias_step(concurrent=True)\nrun.wait_until", RELOCK + "run.wait_until")
    (v,) = hazards(check(text), "bias")
    assert v.line == line_of(text, "run.seq.scan", 1) and f"line {line_of(text, 'uxm_relock', 1)}" in v.what


def test_time_running_backwards_or_late_is_refused():
    # The relock and setup take at least 32 minutes: a wait for 10 minutes after the start with a minute's
    # tolerance is reached late.
    late = preamble() + BODY.replace(
        "run.hwp.spin_up(freq=-2)", f"run.wait_until('{iso(T0 + 600)}', tolerance=60)\nrun.hwp.spin_up(freq=-2)"
    )
    found = hazards(check(late), "time")
    assert [v.line for v in found] == [line_of(late, f"'{iso(T0 + 600)}'")] and "late" in found[0].what
    # A tolerance may be a deadline: an ISO time.
    deadline = late.replace("tolerance=60)\nrun.hwp", f"tolerance='{iso(T0 + 900)}')\nrun.hwp")
    assert [v.line for v in hazards(check(deadline), "time")] == [line_of(late, f"'{iso(T0 + 600)}'")]
    assert not hazards(check(deadline.replace(iso(T0 + 900), iso(T0 + 3600))), "time")
    # Without a tolerance sorunlib does not mind; a stated time before an earlier one is time running backwards.
    assert not hazards(check(late.replace(", tolerance=60)\nrun.hwp", ")\nrun.hwp")), "time")
    back = preamble() + BODY.replace(f"'{iso(T0 + 7260)}'", f"'{iso(T0 + 7000)}'")
    found = hazards(check(back), "time")
    assert [v.line for v in found] == [line_of(back, f"'{iso(T0 + 7000)}'")] and "backwards" in found[0].what
    assert f"stop_time {iso(T0 + 7200)} on line {line_of(back, 'run.seq.scan')}" in found[0].what
    # Stop times out of order.
    swapped = preamble() + BODY.replace(f"'{iso(T0 + 10800)}'", f"'{iso(T0 + 5400)}'")
    whats = {v.what for v in hazards(check(swapped), "time")}
    assert any("backwards" in w for w in whats) and any("skipped" in w for w in whats)
    # A slew is not counted against a tolerance (schedlib plans moves as taking no time; the mount's speed is
    # not known to the checker), though its span is laid at the platform's nominal speed for the sun.
    slewing = preamble() + BODY.replace(
        "run.acu.move_to(az=140.0, el=55.0)",
        f"run.acu.move_to(az=400.0, el=55.0)\nrun.wait_until('{iso(T0 + 7210)}', tolerance=10)\n"
        "run.acu.move_to(az=140.0, el=55.0)",
    )
    report = check(slewing)
    assert report.safe, report.lines()
    (slew,) = [s for s in spans_of(slewing, T0) if s.doing == "slew" and s.target[0] == 400.0]
    assert slew.t1 - slew.t0 == pytest.approx(300.0)  # 300 deg at 1 deg/s
    # A scan its min_duration can no longer fit is skipped by sorunlib: refused.
    short = preamble() + BODY.replace(f"'{iso(T0 + 7200)}'", f"'{iso(T0 + 2400)}'")
    (v,) = [v for v in hazards(check(short), "time") if "skipped" in v.what]
    assert v.line == line_of(short, "run.seq.scan") and "min_duration" in v.what


def test_pointings_outside_the_platforms_ranges_are_refused():
    cases = {
        "run.acu.move_to(az=410.0, el=50.0)": ("az range -45..405", "az=410.0"),
        "run.acu.move_to(az=100.0, el=15.0)": ("el range 18.5..90", "el=15.0"),
        "run.acu.move_to(az=380.0, el=50.0)": ("az range -45..405", "run.seq.scan"),  # the 40 deg throw: to 420
        "run.acu.set_boresight(60.0)": ("boresight range -55..55", "set_boresight(60.0)"),
    }
    for replacement, (message, where) in cases.items():
        original = "run.acu.set_boresight(45.0)" if "boresight" in replacement else "run.acu.move_to(az=100.0, el=50.0)"
        text = preamble() + BODY.replace(original, replacement)
        found = hazards(check(text), "range")
        assert found and found[0].line == line_of(text, where) and message in found[0].what, (replacement, found)


def test_a_wiregrid_run_needs_the_hwp_spinning_and_the_elevation():
    run = (
        "run.wiregrid.calibrate(continuous=False, elevation_check=True, boresight_check=False, temperature_check=False)"
    )
    spinning = preamble() + BODY.replace("run.hwp.spin_down(active=True)", run + "\nrun.hwp.spin_down(active=True)")
    assert check(spinning).safe
    stopped = preamble() + BODY.replace("run.hwp.spin_down(active=True)", "run.hwp.spin_down(active=True)\n" + run)
    (v,) = hazards(check(stopped), "wiregrid")
    assert v.line == line_of(stopped, "run.wiregrid.calibrate") and "HWP stopped" in v.what
    low = preamble() + BODY.replace("el=55.0)", "el=45.0)").replace(
        "run.hwp.spin_down(active=True)", "run.wiregrid.time_constant(num_repeats=1)\nrun.hwp.spin_down(active=True)"
    )
    (v,) = hazards(check(low), "wiregrid")
    assert "el 45" in v.what
    # time_constant reverses the HWP: spinning up the other way afterwards is a reversal without a stop.
    reversed_ = preamble() + BODY.replace(
        "run.hwp.spin_down(active=True)", "run.wiregrid.time_constant(num_repeats=1)\nrun.hwp.spin_up(freq=-2)"
    )
    (v,) = hazards(check(reversed_), "hwp")
    assert v.line == line_of(reversed_, "run.hwp.spin_up", 1) and "without stopping" in v.what


def test_header_declared_limits_narrow_the_platforms_and_cannot_widen_them():
    narrow = preamble(header=["# limit el: 52 60"]) + BODY
    found = hazards(check(narrow), "range")  # the move to el 50 and the scan there
    assert [v.line for v in found] == [line_of(narrow, "el=50.0"), line_of(narrow, "run.seq.scan")]
    assert "el range 52..60" in found[0].what
    assert check(preamble(header=["# limit sun: 50 3600"]) + BODY).limit_deg == 50.0
    for wide in ("# limit el: 10 90", "# limit hwp_el: 30 70", "# limit sun: 20", "# limit speed: 1 2"):
        report = check(preamble(header=[wide]) + BODY)
        assert not report.safe and any(wide[2:] in p for p in report.problems), (wide, report.problems)


def test_an_unknown_or_missing_platform_is_a_clear_problem():
    for platform, words in (("satp9", "unknown platform 'satp9'"), (None, "no '# platform: <name>' header line")):
        report = check(preamble(platform=platform) + BODY)
        assert not report.safe and any(words in p for p in report.problems), report.problems
        assert all(name in report.problems[0] for name in platforms.names())


def test_what_it_cannot_follow_in_the_sequencer_shape_makes_the_script_fail():
    cases = {
        "run.acu.fly_to(az=1, el=2)\n": "unknown command run.acu.fly_to()",
        "acu.move_to(1, 2)\n": "unknown command acu.move_to()",  # the OCS client itself, not sorunlib's
        "acu.stop_and_clear(1)\n": "acu.stop_and_clear() takes no arguments",
        "acu = run.CLIENTS['hwp']\nacu.stop_and_clear()\n": "unknown command acu.stop_and_clear()",
        "acu.go_to(az=1, el=2)\n": "unknown command acu.go_to()",
        "assert run.acu.move_to(az=1, el=2) is None\n": "cannot tell what `assert run.acu.move_to",
        "run = 3\n": "cannot tell what `run = 3`",
        "import os\n": "cannot tell what `import os`",
        "run.acu.move_to(az=1)\n": "run.acu.move_to() is missing el",
        "run.seq.scan(description='a', stop_time='2023-11-05T03:00:00', width=1, num_scans=3)\n": "num_scans",
        "run.hwp.spin_up(freq='fast')\n": "freq must be a number",
    }
    for snippet, problem in cases.items():
        report = check(preamble() + BODY + snippet)
        assert not report.safe and any(problem in p for p in report.problems), (snippet, report.problems)


def test_the_sun_in_the_sequencer_shape_with_the_platforms_limit():
    noon = utc(2023, 11, 5, 13, 0)
    sun_az, sun_el = (float(x[0]) for x in sky.altaz("sun", ATACAMA, np.array([noon + 1800.0])))
    near = (sun_az - 50.0 - 40.0) % 360.0  # the 40 deg throw ends 50 deg short of the sun in azimuth
    text = (
        preamble(el=round(sun_el, 1))
        + f"run.wait_until('{iso(noon)}')\nrun.acu.move_to(az={near:.1f}, el={sun_el:.1f})\n"
        + f"run.smurf.bias_dets()\n{scan(noon + 3600)}\n"
    )
    # Asked for 10 deg, the platform's 41 holds; 50 deg in azimuth at el ~60 is less than 41 deg.
    report = check(text, min_angle=10.0, start=None)
    assert report.limit_deg == 41.0
    (v,) = [v for v in report.violations if v.kind == "sun"]
    assert v.line == line_of(text, "run.seq.scan") and v.closest < 41.0
    assert check(text.replace(f"az={near:.1f}", f"az={(near - 120) % 360:.1f}"), start=None).safe


def test_check_script_command_on_a_sequencer_script(tmp_path):
    safe = tmp_path / "safe.py"
    safe.write_text(preamble() + BODY)
    done = subprocess.run(
        [CLI, "check-script", str(safe), "--start", "2023-11-05 02:00"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("safe: "), done.stdout + done.stderr
    unsafe = tmp_path / "unsafe.py"
    text = preamble(hwp=True) + BODY
    unsafe.write_text(text)
    done = subprocess.run(
        [CLI, "check-script", str(unsafe), "--start", "2023-11-05 02:00"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "UNSAFE" in done.stderr
    assert f"line {line_of(text, 'set_boresight')}: set_boresight(45) while the HWP spins" in done.stdout


@pytest.mark.parametrize("name", ["satp1", "satp2", "satp3"])
def test_each_sat_platform_has_the_observatorys_limits(name):
    p = platforms.platform(name)
    assert p.az == (-45.0, 405.0) and p.hwp_el == (40.0, 60.0) and (p.sun_min_angle, p.sun_min_time) == (41.0, 1980.0)
    assert p.el[0] < 20.0 and p.el[1] == 90.0


def test_an_asserted_azimuth_makes_the_first_slew_judged():
    noon = utc(2023, 11, 5, 13, 0)
    sun_az, sun_el = (float(x[0]) for x in sky.altaz("sun", ATACAMA, np.array([noon + 60.0])))
    left, right = (sun_az - 60.0) % 360.0, (sun_az + 60.0) % 360.0
    lo, hi = sorted((left, right))
    if hi - lo > 180:  # go the way that passes the sun's azimuth
        lo, hi = hi - 360.0, lo
    body = f"run.wait_until('{iso(noon)}')\nrun.acu.move_to(az={hi:.1f}, el={sun_el:.1f})\n"
    text = preamble(el=round(sun_el, 1)) + body
    assert check(text, start=None).safe  # from an unknown azimuth nothing is known of the slew
    where = f"assert np.isclose(acu_data['StatusDetailed']['Azimuth current position'], {lo:.1f}, atol=1, rtol=0)\n"
    text = preamble(el=round(sun_el, 1)) + where + body
    (v,) = check(text, start=None).violations
    assert v.kind == "sun" and v.what.startswith("slew") and v.line == line_of(text, "run.acu.move_to")


def test_the_hostname_check_must_name_the_headers_platform_and_hazards_without_a_clock_still_print():
    text = preamble().replace("'daq-satp1-sequencer'", "'daq-satp2-sequencer'") + BODY
    report = check(text)
    assert any("'daq-satp2-sequencer'" in p and "satp1" in p for p in report.problems), report.problems
    # Before any wait_until and without a start, a hazard has no time: it says so by leaving it out.
    text = preamble(el=70.0) + "run.hwp.spin_up(freq=2)\n"
    (v,) = check(text, start=None).violations
    assert v.t0 is None and str(v) == f"line {line_of(text, 'spin_up')}: {v.what}" and "el 70" in v.what


def test_the_wiregrid_checks_are_sorunlibs():
    run = (
        "run.wiregrid.calibrate(continuous=False, elevation_check=True, boresight_check=True, temperature_check=False)"
    )
    base = BODY.replace("run.acu.set_boresight(45.0)", "run.acu.set_boresight(0.4)")
    for el, boresight, bad in ((47.6, "0.4", False), (47.5, "0.4", True), (55.0, "0.5", True)):
        body = base.replace("el=55.0)", f"el={el})").replace("set_boresight(0.4)", f"set_boresight({boresight})")
        text = preamble() + body.replace("run.hwp.spin_down(active=True)", run + "\nrun.hwp.spin_down(active=True)")
        found = hazards(check(text), "wiregrid")
        assert bool(found) == bad, (el, boresight, found)
