"""The sorunlib harness catches what a script gets wrong: each fault here must show in its report."""

from __future__ import annotations

import datetime as dt
import time
import types
from datetime import UTC, datetime

import pytest

from scheduler_server.observing.telescope import TelescopeModel

from .sorun import Durations, Platform, SunPolicy, run_script
from .sorun.agents import F, p
from .sorun.clock import ClockNotSimulated, SimClock, clock_in
from .sorun.harness import patched

T0 = datetime(2024, 3, 4, tzinfo=UTC)
HEAD = "from sorunlib import *\nfrom nextline import disable_trace\n\nwith disable_trace():\n    initialize(test_mode=True)\n"


def at(seconds: float) -> str:
    return datetime.fromtimestamp(T0.timestamp() + seconds, UTC).isoformat()


# Fixed figures, whatever the model's defaults become: uxm_setup 600 s, IV 300 s, slews 1 and 0.5 deg/s + 10 s.
MODEL = TelescopeModel(uxm_setup_seconds=600, iv_curve_seconds=300, az_speed=1.0, el_speed=0.5, settle_seconds=10)


def run(body: str, durations: Durations | None = None, **kwargs):
    return run_script(HEAD + body, T0, durations or Durations.of_model(MODEL), **kwargs)


def on_time(report) -> bool:
    """What the timeline part asserts of every preset's script."""
    return report.ok and not report.late_waits() and not report.skipped_scans() and not report.shortened_scans()


def test_a_well_formed_script_passes_and_its_operations_are_timed():
    report = run(
        f"acu.move_to(190, 50)\nsmurf.bias_step()\nwait_until({at(600)!r})\nseq.scan(description='p', stop_time={at(1200)!r}, width=10)\n"
    )
    assert report.ok and on_time(report), report.summary()
    go_to = next(op for op in report.ops if op.op == "go_to")
    assert (go_to.line, go_to.start - T0.timestamp(), go_to.end - go_to.start) == (6, 0.0, 10 / 0.5 + 10)
    scan = report.scans[0]
    assert (scan.started, scan.stopped, scan.endpoints) == (T0.timestamp() + 600, T0.timestamp() + 1200, (190, 200))
    assert report.end == T0.timestamp() + 1200


def test_a_move_outside_the_telescope_limits_fails():
    report = run("acu.move_to(180, 10)\n")
    assert report.error and report.error.startswith("line 6: RuntimeError"), report.error
    assert any("el=10" in f and "[20.0, 90.0]" in f for f in report.faults), report.faults
    assert not on_time(report)
    assert run("acu.move_to(500, 50)\n").error  # beyond satp's azimuth range, -90 to 480


def test_a_wrong_parameter_fails_at_the_agent():
    # sorunlib passes seq.scan's extra keywords through to the ACU's generate_scan, which refuses them
    report = run(f"seq.scan(description='p', stop_time={at(600)!r}, width=10, az_speed='fast')\n")
    assert report.error and report.error.startswith("line 6:"), report.error
    assert any("az_speed" in f and "required type" in f for f in report.faults), report.faults
    report = run(f"seq.scan(description='p', stop_time={at(600)!r}, width=10, scan_pattern=2)\n")
    assert any("unexpected values: ['scan_pattern']" in f for f in report.faults), report.faults


def test_a_wrong_parameter_fails_in_sorunlib():
    report = run("acu.move_to(az=180, elevation=50)\n")
    assert report.error and report.error.startswith("line 6: TypeError"), report.error


def test_a_wait_until_past_its_tolerance_fails():
    report = run(f"smurf.uxm_setup()\nwait_until({at(60)!r}, tolerance=10)\nacu.move_to(180, 50)\n")
    assert report.error and report.error.startswith("line 7: ValueError") and "past deadline" in report.error
    assert report.waits[0].late == 600 - 60  # uxm_setup lasts 600 s in the model
    assert not any(op.op == "go_to" for op in report.ops)


def test_a_late_wait_until_shortens_the_scan_after_it():
    report = run(
        f"smurf.uxm_setup()\nwait_until({at(60)!r})\nseq.scan(description='p', stop_time={at(1200)!r}, width=10)\n"
    )
    assert report.ok and [w.late for w in report.late_waits()] == [540]
    assert [(s.description, s.wait_late) for s in report.shortened_scans()] == [("p", 540)]
    assert not on_time(report)
    assert on_time(run(f"smurf.uxm_setup()\nwait_until({at(60)!r})\n", durations=Durations.instant()))


def test_a_scan_whose_stop_time_has_passed_is_reported_skipped():
    report = run(f"smurf.iv_curve()\nseq.scan(description='gone', stop_time={at(120)!r}, width=10)\n")
    assert report.ok  # sorunlib returns silently
    assert [s.description for s in report.skipped_scans()] == ["gone"]
    assert "had passed" in report.scans[0].skipped and not on_time(report)
    assert not any(op.op == "generate_scan" for op in report.ops)


def test_a_scan_that_cannot_last_its_min_duration_is_reported_skipped():
    report = run(
        f"smurf.iv_curve()\nseq.scan(description='short', stop_time={at(600)!r}, width=10, min_duration=600)\n"
    )
    assert "min_duration=600" in report.skipped_scans()[0].skipped and not on_time(report)


def test_times_must_be_utc():
    report = run("wait_until('2024-03-04T01:00:00+01:00')\n")
    assert report.error and "Unsupported timezone" in report.error, report.error


def test_a_script_that_cannot_be_parsed_is_reported_with_its_line():
    assert run("acu.move_to(180, \n").error.startswith("line 6:")


def test_the_host_name_is_simulated_for_scripts_that_assert_it():
    body = "import socket\nassert socket.gethostname() == 'ocs-satp1', 'wrong platform'\n"
    assert run(body, hostname="ocs-satp1").ok
    assert "wrong platform" in run(body, hostname="ocs-satp2").error


def test_the_real_smurf_class_is_found_outside_test_mode():
    text = "from sorunlib import *\ninitialize(test_mode=False)\nsmurf.bias_step()\n"
    report = run_script(text, T0, platform=Platform(test_mode=False))
    assert report.ok and sum(op.op == "take_bias_steps" for op in report.ops) == 2
    report = run_script(text, T0)  # only file emulators online: sorunlib finds no pysmurf-controller
    assert "below failure threshold (0 < 1)" in report.error


def test_the_hwp_spins_up_and_down_for_as_long_as_the_table_says():
    report = run("hwp.spin_up(freq=2.0)\nhwp.spin_down()\n")
    assert report.ok, report.summary()
    took = {op.op: op.end - op.start for op in report.ops if op.agent == "hwp-supervisor"}
    assert took == {"enable_driver_board": 0, "pid_to_freq": 420, "brake": 900, "disable_driver_board": 0}
    assert run("hwp.set_freq(freq='fast')\n").faults  # target_freq must be a float


def test_the_real_controller_refuses_what_only_the_emulator_takes():
    # sorunlib's uxm_relock(test_mode=True) passes test_mode on; pysmurf-controller's uxm_relock has no such param
    text = "from sorunlib import *\ninitialize(test_mode=False)\nsmurf.uxm_relock(test_mode=True)\n"
    report = run_script(text, T0, platform=Platform(test_mode=False))
    assert any("unexpected values: ['test_mode']" in f for f in report.faults), report.summary()


def test_what_is_not_simulated_fails_explicitly():
    report = run("hwp.spin_up(freq=2.0)\n", platform=Platform(hwp=False))  # sorunlib then has no 'hwp' client
    assert report.error and report.error.startswith("line 6: KeyError"), report.error
    report = run("wiregrid.insert()\n")  # no wiregrid actuator online: sorunlib's client for it is None
    assert report.error == "line 6: AttributeError: 'NoneType' object has no attribute 'insert'", report.error


def test_a_script_sleeping_sleeps_on_the_simulated_clock():
    text = "import time\nimport sorunlib as run\nrun.initialize(test_mode=True)\nrun.smurf.bias_dets(concurrent=True)\ntime.sleep(180)\nrun.smurf.bias_step(concurrent=True)\n"
    report = run_script(text, T0, Durations.of_model(MODEL))
    assert report.ok, report.summary()
    bias_step = next(op for op in report.ops if op.op == "take_bias_steps")
    assert bias_step.start - T0.timestamp() == MODEL.bias_dets_seconds + 180


def test_the_acu_refuses_a_move_or_scan_near_the_sun_when_its_sun_avoidance_is_on():
    noon = datetime(2024, 3, 4, 16, tzinfo=UTC)  # the sun near az 33, el 70
    guarded = Platform(sun=SunPolicy(exclusion_radius=20, min_sun_time=3600))
    report = run_script(HEAD + "acu.move_to(33, 60)\n", noon, platform=guarded)
    assert report.error and any("not Sun-safe" in f for f in report.faults), report.summary()
    assert run_script(HEAD + "acu.move_to(213, 50)\n", noon, platform=guarded).ok
    assert run_script(HEAD + "acu.move_to(33, 60)\n", noon).ok  # off by default: a site configures it
    # from az 353 (13 deg from the sun at el 70) a 40 deg sweep passes through it
    body = "acu.move_to(353, 70)\nseq.scan(description='p', stop_time='2024-03-04T16:10:00+00:00', width=40)\n"
    report = run_script(HEAD + body, noon, platform=Platform(sun=SunPolicy(10, 600)))
    assert [f.split(": ", 1)[0] for f in report.faults] == ["line 7"], report.summary()
    assert "Scan is not Sun-safe" in report.faults[0] and report.error


def test_a_parameter_declared_without_a_default_is_required_as_in_ocs():
    assert p(F).get("x", {}) == ("Param 'x' is required and must not be None", None)
    assert p(F).get("x", {"x": None})[0]  # None counts as missing
    assert p(F, None).get("x", {}) == (None, None)  # an explicit default=None is optional
    report = run("acu.set_boresight(None)\n")  # socs: @param('target', type=float), no default
    assert report.error and any("'target' is required" in f for f in report.faults), report.summary()
    report = run("hwp.set_freq(freq=None)\n")  # socs: @param('target_freq', type=float)
    assert any("'target_freq' is required" in f for f in report.faults), report.summary()


def test_move_to_with_no_azimuth_moves_only_the_elevation_as_socs_go_to_does():
    # socs 0.6.4 go_to: @param('az', type=float, default=None): None leaves that axis uncommanded
    report = run(f"acu.move_to(None, 50)\nseq.scan(description='p', stop_time={at(600)!r}, width=10)\n")
    assert report.ok, report.summary()
    go_to = next(op for op in report.ops if op.op == "go_to")
    assert go_to.end - go_to.start == 10 / 0.5 + 10 and report.scans[0].endpoints == (180, 190)  # az stays at park


def test_the_scan_parameters_take_the_choices_socs_declares():
    body = (
        f"seq.scan(description='p', stop_time={at(600)!r}, width=10, az_start='mid_inc', turnaround_method='two_leg')\n"
    )
    assert run(body).ok, run(body).summary()
    report = run("acu.set_scan_params(1.0, 1.0, turnaround_method='sharp')\n")
    assert any("'turnaround_method'=sharp is not in allowed set" in f for f in report.faults), report.summary()


def test_a_module_holding_the_wall_clock_itself_is_refused_by_name():
    holder = types.ModuleType("sorunlib.future")
    holder.datetime = dt.datetime  # as `from datetime import datetime` would
    with pytest.raises(ClockNotSimulated, match=r"sorunlib.future.datetime is datetime.datetime"):
        with clock_in([holder], SimClock(0.0)):
            pass
    plain = types.ModuleType("sorunlib.plain")
    with pytest.raises(ClockNotSimulated, match=r"sorunlib.plain"):  # needed, but it has no clock to swap
        with clock_in([plain], SimClock(0.0), needs=("sorunlib.plain",)):
            pass
    plain.time = time
    with clock_in([plain], SimClock(5.0), needs=("sorunlib.plain",)):
        assert plain.time.time() == 5.0
    assert plain.time is time


def test_every_sorunlib_module_that_reads_the_clock_is_swapped_while_a_script_runs():
    import sorunlib.seq
    import sorunlib.smurf

    with patched(sorunlib.seq, "time", time.time):  # a release doing `from time import time`: the run fails loudly
        with pytest.raises(ClockNotSimulated, match="sorunlib.seq.time is time.time"):
            run("acu.move_to(180, 50)\n")
    with patched(sorunlib.smurf, "time", None), pytest.raises(ClockNotSimulated, match=r"\['sorunlib.smurf'\]"):
        run("acu.move_to(180, 50)\n")  # a release without its `import time`: nothing found to swap there
    assert run("acu.move_to(180, 50)\n").ok


def test_the_script_reads_time_time_from_the_simulated_clock_and_may_not_read_datetime_now():
    report = run("import time\nt = time.time()\ntime.sleep(60)\nprint(t, time.time(), time.monotonic())\n")
    t0 = T0.timestamp()
    assert report.ok and [float(x) for x in report.output.split()] == [t0, t0 + 60, t0 + 60], report.output
    report = run("import datetime\nprint(datetime.datetime.now())\n")
    assert report.error and report.error.startswith("line 7: the script reads the wall clock (.now())"), report.error


def test_an_operation_left_running_makes_the_run_not_ok_and_is_named():
    scan = (
        "import sorunlib\nacu = sorunlib.CLIENTS['acu']\nacu.generate_scan.start(az_endpoint1=180, az_endpoint2=190)\n"
    )
    report = run(scan)
    assert not report.ok and report.running and "acu-satp1.generate_scan" in report.running[0], report.summary()
    assert "running: acu-satp1.generate_scan" in report.summary() and "line 8" in report.running[0]
    stopped = run(scan + "acu.generate_scan.stop()\n")
    assert stopped.ok and not stopped.running, stopped.summary()
