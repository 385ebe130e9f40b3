"""The sat policy's operations, rule by rule: what each state and visit makes the telescope do, in which order."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scheduler_server.observing.policies.sat import events
from scheduler_server.observing.policies.sat import operations as ops
from scheduler_server.observing.policies.sat.ops_config import DetSetup
from scheduler_server.observing.policies.sat.steps import SatState, Visit

T = 1_700_000_000.0
HOUR = 3600.0
CFG = ops.OpsConfig()
# Detectors set up and relocked a moment ago at (el 50, boresight 0), HWP spinning ccw: nothing is due.
SETTLED = SatState(
    t=T,
    az=100.0,
    el=50.0,
    boresight=0.0,
    hwp_spinning=True,
    hwp_dir=True,
    last_relock=T - 60,
    last_iv=T - 60,
    last_bias_step=T - 60,
    biased=True,
    iv_at=(50.0, 0.0),
    bias_step_at=(50.0, 0.0),
)


def visit(kind: str = "master", **kw) -> Visit:
    base = dict(kind=kind, name="field", t0=T + HOUR, t1=T + 2 * HOUR, az=100.0, el=50.0, throw=30.0, boresight=0.0)
    return Visit(**{**base, **kw})


def names(op_list) -> list[str]:
    return [op.name for op in op_list]


def lines(op_list) -> list[str]:
    return [line for op in op_list for line in op.commands]


def test_nothing_due_means_no_operations():
    out, after = ops.before_scan(SETTLED, visit(hwp_dir=True), CFG)
    assert out == [] and after == SETTLED


def test_a_boresight_change_spins_the_hwp_down_first_then_up_again():
    out, after = ops.before_scan(SETTLED, visit(boresight=45.0, hwp_dir=True), CFG)
    assert names(out) == ["hwp.spin_down", "boresight", "det_setup", "hwp.spin_up"]
    assert "run.acu.set_boresight(45.0)" in lines(out)
    assert after.boresight == 45.0 and after.hwp_spinning and after.hwp_dir is True
    assert after.t == T + CFG.hwp_spin_down + CFG.boresight_duration + CFG.det_setup_duration + CFG.hwp_spin_up


def test_a_boresight_within_a_degree_is_not_moved_and_rotation_can_be_off():
    assert ops.boresight(SETTLED, visit(boresight=0.9), CFG) == ([], SETTLED)
    assert ops.boresight(SETTLED, visit(boresight=45.0), replace(CFG, apply_boresight_rot=False)) == ([], SETTLED)


def test_cryo_stabilisation_waits_after_the_rotation():
    out, after = ops.boresight(SETTLED, visit(boresight=-45.0), replace(CFG, cryo_stabilization_time=300.0))
    assert names(out) == ["hwp.spin_down", "boresight", "sleep"]
    assert out[-1].commands == ("time.sleep(300.0)",)
    assert after.t == T + CFG.hwp_spin_down + CFG.boresight_duration + 300.0


def test_a_reversal_spins_down_then_up_the_other_way():
    out, after = ops.before_scan(SETTLED, visit(hwp_dir=False), CFG)
    assert names(out) == ["hwp.spin_down", "hwp.spin_up"]
    assert lines(out)[-1] == "run.hwp.spin_up(freq=-2)"
    assert after.hwp_dir is False and after.hwp_spinning


@pytest.mark.parametrize("hwp_dir", [None, True])
def test_the_same_or_no_direction_keeps_the_hwp_spinning(hwp_dir):
    out, _ = ops.before_scan(SETTLED, visit(hwp_dir=hwp_dir), CFG)
    assert "hwp.spin_up" not in names(out) and "hwp.spin_down" not in names(out)


def test_a_stopped_hwp_with_no_direction_anywhere_spins_as_schedlib_does():
    state = SETTLED.at(hwp_spinning=False, hwp_dir=None)
    out, after = ops.before_scan(state, visit(hwp_dir=None), CFG)
    assert lines(out) == ["run.hwp.spin_up(freq=-2)"] and after.hwp_dir is False


@pytest.mark.parametrize(("el", "spins_down"), [(39.0, True), (61.0, True), (40.0, False), (60.0, False)])
def test_a_move_out_of_the_hwp_range_spins_down_first(el, spins_down):
    out, after = ops.move(SETTLED, 200.0, el, CFG, duration=30.0)
    assert names(out) == (["hwp.spin_down", "move"] if spins_down else ["move"])
    assert out[-1].commands == (f"run.acu.move_to(az=200.0, el={float(el)})",)
    assert after.hwp_spinning is not spins_down and (after.az, after.el) == (200.0, el)
    assert after.t == T + 30.0 + (CFG.hwp_spin_down if spins_down else 0.0)


def test_brake_hwp_chooses_an_active_or_coasting_stop():
    out, _ = ops.move(SETTLED, 100.0, 30.0, replace(CFG, brake_hwp=False))
    assert lines(out)[-2] == "run.hwp.spin_down(active=False)"
    out, _ = ops.move(SETTLED, 100.0, 30.0, CFG)
    assert lines(out)[-2] == "run.hwp.spin_down(active=True)"


def test_no_spin_up_where_the_hwp_may_not_spin():
    state = SETTLED.at(hwp_spinning=False, el=30.0, iv_at=(30.0, 0.0), bias_step_at=(30.0, 0.0))
    out, after = ops.before_scan(state, visit(el=30.0, hwp_dir=True), CFG)
    assert "hwp.spin_up" not in names(out) and not after.hwp_spinning
    assert not any(line.startswith("run.hwp") for line in lines(out))


def test_det_setup_after_an_elevation_change_not_for_a_small_one():
    moved, _ = ops.before_scan(SETTLED.at(el=45.0), visit(el=45.0), CFG)
    assert names(moved) == ["det_setup"]
    still, _ = ops.before_scan(SETTLED.at(el=50.5), visit(el=50.5), CFG)
    assert still == []


def test_det_setup_on_iv_cadence_and_after_a_relock():
    late = SETTLED.at(last_iv=T - CFG.iv_cadence - 1)
    assert names(ops.before_scan(late, visit(), CFG)[0]) == ["det_setup"]
    assert ops.before_scan(SETTLED.at(last_iv=T - CFG.iv_cadence + 60), visit(), CFG)[0] == []
    out, after = ops.before_scan(SETTLED.at(last_relock=T - 25 * HOUR), visit(), CFG)
    assert names(out) == ["relock", "det_setup"]
    assert after.biased and after.last_relock == T and after.last_iv == T + CFG.relock_duration


def test_det_setup_always_before_a_calibration_scan():
    out, _ = ops.before_scan(SETTLED, visit("calibration"), CFG)
    assert names(out) == ["det_setup"]
    assert ops.before_scan(SETTLED, visit("calibration"), replace(CFG, det_setup_before_cal=False))[0] == []


def test_relock_on_its_cadence_only():
    assert ops.before_scan(SETTLED.at(last_relock=T - 23 * HOUR), visit(), CFG)[0] == []
    out, _ = ops.before_scan(SETTLED.at(last_relock=None), visit(), CFG)
    assert names(out)[0] == "relock" and "run.smurf.uxm_relock(concurrent=True)" in lines(out)
    assert "relock" not in names(
        ops.before_scan(SETTLED.at(last_relock=None), visit(), replace(CFG, relock_cadence=None))[0]
    )


def test_bias_step_on_its_cadence_before_a_cmb_scan_and_after_a_calibration():
    due = SETTLED.at(last_bias_step=T - CFG.bias_step_cadence)
    out, after = ops.before_scan(due, visit(), CFG)
    assert names(out) == ["bias_step"] and after.last_bias_step == T and after.t == T + 60
    assert out[0].commands == ("run.smurf.bias_step(concurrent=True)",)  # no wait to its planned end
    assert ops.before_scan(SETTLED.at(last_bias_step=T - 600), visit(), CFG)[0] == []
    assert names(ops.after_scan(due, visit("calibration"), CFG)[0]) == ["bias_step"]
    assert ops.after_scan(due, visit("master"), CFG)[0] == []


def test_wiregrid_needs_the_hwp_spinning_and_its_elevation():
    gain = visit("wiregrid", name="wiregrid_gain", wiregrid_kind="wiregrid_gain", t0=T, t1=T + 600)
    out, after = ops.scan(SETTLED, gain, CFG)
    assert lines(out)[0].startswith("run.wiregrid.calibrate(") and after.t == T + 600
    assert names(ops.scan(SETTLED.at(hwp_spinning=False), gain, CFG)[0]) == ["skip"]
    assert names(ops.scan(SETTLED.at(el=45.0), replace(gain, el=45.0), CFG)[0]) == ["skip"]
    spun, _ = ops.before_scan(SETTLED.at(hwp_spinning=False), gain, CFG)
    assert names(spun) == ["hwp.spin_up"]


def test_wiregrid_time_constant_reverses_the_hwp():
    tc = visit("wiregrid", name="wiregrid_time_const", wiregrid_kind="wiregrid_time_const", t0=T, t1=T + 900)
    out, after = ops.scan(SETTLED, tc, CFG)
    assert lines(out)[0] == "run.wiregrid.time_constant(num_repeats=1)"
    assert after.hwp_dir is False and after.hwp_spinning
    assert ops.scan(after, replace(tc, t0=after.t, t1=after.t + 900), CFG)[1].hwp_dir is True
    assert names(ops.scan(after, tc, CFG)[0]) == ["skip"]  # its end has passed


def test_disable_hwp_emits_no_hwp_command():
    cfg = replace(CFG, disable_hwp=True, home_at_end=True)
    state = SatState(t=T)
    out: list = []
    steps = [
        lambda s: ops.start(s, cfg),
        lambda s: ops.move(s, 100.0, 50.0, cfg),
        lambda s: ops.before_scan(s, visit(hwp_dir=True, boresight=45.0), cfg),
        lambda s: ops.scan(s, visit(), cfg),
        lambda s: ops.before_scan(s, visit("wiregrid", wiregrid_kind="wiregrid_gain"), cfg),
        lambda s: ops.scan(s, visit("wiregrid", wiregrid_kind="wiregrid_gain"), cfg),
        lambda s: ops.wrap_up(s, cfg),
    ]
    for step in steps:
        more, state = step(state)
        out += more
    assert not any("hwp" in line for line in lines(out) if not line.startswith("#"))
    assert not state.hwp_spinning and "scan" in names(out)


def test_a_scan_waits_for_its_start_sets_params_once_and_skips_when_too_short():
    first, state = ops.scan(SETTLED, visit(), CFG)
    assert names(first) == ["wait", "scan_params", "scan"] and state.t == T + 2 * HOUR
    again, _ = ops.scan(state, visit(t0=state.t, t1=state.t + HOUR), CFG)
    assert names(again) == ["scan"]
    faster, _ = ops.scan(state, visit(t0=state.t, t1=state.t + HOUR, az_speed=0.8), CFG)
    assert names(faster) == ["scan_params", "scan"] and "az_speed=0.8" in faster[0].commands[0]
    short, same = ops.scan(SETTLED, visit(t0=T, t1=T + 599), CFG)
    assert names(short) == ["skip"] and same == SETTLED


def test_home_at_end_spins_down_and_stows():
    out, after = ops.wrap_up(SETTLED, replace(CFG, home_at_end=True), stow=(180.0, 48.0), duration=40.0)
    assert names(out) == ["hwp.spin_down", "move"] and not after.hwp_spinning
    out, after = ops.wrap_up(SETTLED, CFG)
    assert out == [] and after.hwp_spinning


def test_platform_det_setup_commands_are_data():
    p3 = replace(CFG, det_setup=DetSetup(iv_kwargs=None, settle=300.0, take_noise=False))
    text = lines(ops.before_scan(SETTLED.at(biased=False), visit(), p3)[0])
    assert "run.smurf.iv_curve(concurrent=True)" in text and "time.sleep(300.0)" in text
    assert not any("take_noise" in line for line in text)


@pytest.mark.parametrize(
    ("state", "expect"),
    [
        (SETTLED, "assert (hwp_state['direction'] == 'ccw') == True, 'HWP direction check failed'"),
        (
            SETTLED.at(hwp_spinning=False),
            "assert hwp_state['gripper']['grip_state'] == 'ungripped', 'HWP gripper check failed'",
        ),
    ],
)
def test_preamble_checks_the_state_the_plan_starts_from(state, expect):
    text = ops.preamble(state, "satp2", {"min_angle": 41}, None)
    assert expect in text
    assert "assert socket.gethostname() == 'daq-satp2-sequencer', 'platform check failed'" in text
    assert "assert sun_data['policy']['exclusion_radius'] <= 41.0, 'sun avoidance angle too small'" in text
    assert any("Elevation current position'], 50.0" in line for line in text)


def timeline(state: SatState, cfg: ops.OpsConfig, visits: list[Visit]):
    """Lay ops as the planner does (each op where the previous ended), returning (t0, op) pairs."""
    timed, t = [], state.t
    steps = (
        lambda s, v: ops.move(s, v.az, v.el, cfg, duration=60.0),
        lambda s, v: ops.before_scan(s, v, cfg),
        lambda s, v: ops.scan(s, v, cfg),
        lambda s, v: ops.after_scan(s, v, cfg),
    )
    for v in visits:
        for step in steps:
            out, state = step(state, v)
            for op in out:
                timed.append((t, op))
                t += op.duration
            assert t == pytest.approx(state.t)
    return timed, state


def test_event_lanes_follow_the_ops():
    start = SatState(t=T, el=50.0, az=100.0)
    visits = [visit(hwp_dir=True), visit(t0=T + 3 * HOUR, t1=T + 4 * HOUR, boresight=45.0, hwp_dir=False)]
    timed, end = timeline(start, CFG, visits)
    lanes = events.lanes(start, timed)
    hwp = [e for e in lanes if e["lane"] == "hwp"]
    assert [e["state"] for e in hwp] == [
        "stopped",
        "spin_up",
        "spinning",
        "spin_down",
        "stopped",
        "spin_up",
        "spinning",
    ]
    assert hwp[2]["direction"] == "ccw" and hwp[-1]["direction"] == "cw" and hwp[4]["direction"] is None
    assert all(a["t1"] == b["t0"] for a, b in zip(hwp, hwp[1:], strict=False))
    bore = [(e["state"], e["angle"]) for e in lanes if e["lane"] == "boresight"]
    assert bore == [("fixed", 0.0), ("rotating", 45.0), ("fixed", 45.0)]
    dets = [e["state"] for e in lanes if e["lane"] == "detectors"]
    assert dets == ["relock", "setup", "setup"]
    assert lanes == sorted(lanes, key=lambda e: e["t0"])
    assert hwp[0]["t0"] == "2023-11-14T22:13:20+00:00" and hwp[-1]["t1"] == "2023-11-15T02:13:20+00:00"
    assert end.t == T + 4 * HOUR


def test_event_lanes_show_a_time_constant_reversal():
    tc = visit("wiregrid", wiregrid_kind="wiregrid_time_const", t0=T, t1=T + 900)
    out, _ = ops.scan(SETTLED, tc, CFG)
    lanes = events.lanes(SETTLED, [(T, out[0])], t1=T + 1800)
    assert [(e["state"], e["direction"]) for e in lanes if e["lane"] == "hwp"] == [
        ("spinning", None),
        ("spinning", "cw"),
    ]


def test_a_type3_nod_leaving_the_hwp_range_stops_the_hwp_or_keeps_it_stopped():
    nodding = visit(el=59.5, scan_type=3, el_amp=1.0, hwp_dir=True)
    state = SETTLED.at(el=59.5, iv_at=(59.5, 0.0), bias_step_at=(59.5, 0.0))
    out, after = ops.before_scan(state, nodding, CFG)
    assert names(out) == ["hwp.spin_down", "comment"] and not after.hwp_spinning
    stopped, _ = ops.before_scan(after, nodding, CFG)
    assert names(stopped) == ["comment"]  # not spun up
    assert names(ops.scan(state, nodding, CFG)[0]) == ["skip"]  # a planner that skipped before_scan
    inside, _ = ops.before_scan(state, replace(nodding, el_amp=0.5), CFG)
    assert inside == []


def test_preamble_does_not_assert_a_direction_nobody_gave():
    text = ops.preamble(SETTLED.at(hwp_dir=None), "satp1", 41.0)
    assert not any("direction" in line and line.startswith("assert") for line in text)
    assert "# hwp spinning in a direction not given: not checked" in text
