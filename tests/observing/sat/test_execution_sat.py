"""sat-shaped scripts under the real sorunlib (tests/observing/sorun): the SAT's agents, their state and refusals.

Hand-written scripts in the shape the sat policy emits (the preamble's platform checks, ``import sorunlib as
run``, HWP, boresight, SMuRF and wiregrid calls) prove what the harness simulates; the policy's own scripts
are run below them, for each preset.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from ..sorun import SAT, Durations, SunPolicy, run_script

T0 = datetime(2024, 3, 4, tzinfo=UTC)
HOST = "daq-satp1-sequencer"
HEAD = """# scheduler-server 0.0.0
# policy: sat, preset: satp1
# platform: satp1
import numpy as np
import sorunlib as run
from nextline import disable_trace
import socket
import time

with disable_trace():
    run.initialize()

assert socket.gethostname() == 'daq-satp1-sequencer', 'platform check failed'
acu = run.CLIENTS['acu']
acu_data = acu.monitor.status().session['data']
sun_data = acu.monitor_sun.status().session['data']
hwp_state = run.CLIENTS['hwp'].monitor.status().session['data']['hwp_state']
assert np.isclose(acu_data['StatusDetailed']['Elevation current position'], {el}, atol=1, rtol=0), 'Elevation check failed'
assert np.isclose(acu_data['StatusDetailed']['Boresight current position'], {boresight}, atol=0.1, rtol=0), 'Boresight angle check failed'
assert hwp_state['is_spinning'] == {spinning}, 'HWP spinning check failed'
{hwp_check}
assert sun_data['policy']['exclusion_radius'] <= 41, 'sun avoidance angle too small'
"""
HEAD_LINES = HEAD.count("\n") + 1  # the body's first line


def head(el=60, boresight=0, direction=None) -> str:
    spinning = direction is not None
    check = (
        f"assert (hwp_state['direction'] == 'ccw') == {direction == 'ccw'}, 'HWP direction check failed'"
        if spinning
        else "assert hwp_state['gripper']['grip_state'] == 'ungripped', 'HWP gripper check failed'"
    )
    return HEAD.format(el=el, boresight=boresight, spinning=spinning, hwp_check=check)


def at(seconds: float) -> str:
    return datetime.fromtimestamp(T0.timestamp() + seconds, UTC).isoformat()


def run(body: str, platform=SAT, durations=None, **state):
    return run_script(head(**state) + body, T0, durations or Durations.schedlib_sat(), platform, hostname=HOST)


def scan(stop: float, **extra) -> str:
    args = "".join(f", {k}={v!r}" for k, v in extra.items())
    return f"run.seq.scan(description='p', stop_time={at(stop)!r}, width=20.0, az_drift=0, el_amp=0, scan_type=1, subtype='cmb', tag='u', min_duration=600{args})\n"


DET_SETUP = """run.smurf.zero_biases()
time.sleep(120)
run.smurf.uxm_relock(concurrent=True)
run.smurf.iv_curve(concurrent=True, iv_kwargs={'run_serially': False, 'cool_wait': 60*5})
run.smurf.bias_dets(rfrac=0.5, concurrent=True)
time.sleep(180)
run.smurf.bias_step(concurrent=True)
run.smurf.take_noise(concurrent=True, tag='bias_check')
"""


def states(report, lane: str) -> list[tuple]:
    keys = {"hwp": "direction", "boresight": "angle"}
    return [(e["state"], e.get(keys.get(lane, ""))) for e in report.lane(lane)]


def test_a_sat_script_runs_its_hwp_boresight_detector_and_wiregrid_calls_on_the_simulated_agents():
    body = (
        DET_SETUP
        + "run.acu.set_boresight(45)\nrun.acu.move_to(az=200.0, el=50.0)\nrun.hwp.spin_up(freq=2)\n"
        + "run.acu.set_scan_params(az_speed=0.8, az_accel=1.5)\n"
        + f"run.wait_until({at(7200)!r}, tolerance=600)\n"
        + scan(9000)
        + "run.wiregrid.calibrate(continuous=False, elevation_check=True, boresight_check=False, temperature_check=False)\n"
        + f"run.wait_until({at(10800)!r})\nrun.wiregrid.time_constant(num_repeats=1)\nrun.wait_until({at(14400)!r})\n"
        + scan(16200, el_freq=0.1, az_start="mid_dec", step_time=0.05).replace("el_amp=0, scan_type=1", "el_amp=1.0, scan_type=3")
        + "run.hwp.spin_down(active=True)\nrun.acu.set_boresight(0)\nacu.stop_and_clear()\n"
    )  # fmt: skip
    report = run(body)
    assert report.ok and not report.hazards, report.summary()
    assert report.late_waits() == [] and report.skipped_scans() == [], report.summary()
    took = {(op.agent, op.op): op.end - op.start for op in report.ops if op.agent in ("hwp-supervisor", "acu-satp1")}
    assert took["hwp-supervisor", "pid_to_freq"] == 420 and took["acu-satp1", "set_boresight"] == 60
    # the HWP as commanded: up ccw, reversed by the time-constant run (brake, then cw), braked at the end
    assert states(report, "hwp") == [("stopped", None), ("spin_up", "ccw"), ("spinning", "ccw"), ("spin_down", "ccw"),
                                     ("spin_up", "cw"), ("spinning", "cw"), ("spin_down", "cw"), ("stopped", None)]  # fmt: skip
    assert states(report, "boresight")[:3] == [("fixed", 0.0), ("rotating", 45.0), ("fixed", 45.0)]
    assert [e["state"] for e in report.lane("detectors")][:5] == ["relock", "iv", "bias", "bias_step", "noise"]
    wiregrid = [op.op for op in report.ops if op.agent == "wg-actuator"]
    assert wiregrid == ["motor_on", "insert", "eject", "insert", "eject"]
    type3 = [op for op in report.ops if op.op == "generate_scan"][-1]
    ends = (type3.params["el_endpoint1"], type3.params["el_endpoint2"])
    assert ends == (49.0, 51.0) and type3.params["az_start"] == "mid_dec"  # el_amp 1 about el 50


@pytest.mark.parametrize(
    "state, platform, failed",
    [
        ({"el": 40}, SAT, "Elevation check failed"),
        ({"boresight": 30}, SAT, "Boresight angle check failed"),
        ({"direction": "ccw"}, SAT, "HWP spinning check failed"),
        ({"direction": "ccw"}, SAT.at(hwp_direction="cw"), "HWP direction check failed"),
        ({}, SAT.at(hwp_grip_state="warm"), "HWP gripper check failed"),
    ],
)
def test_the_preamble_checks_pass_only_when_the_telescope_is_as_the_script_says(state, platform, failed):
    assert run("", platform, **state).error.endswith(failed)
    same = {"park": (180.0, state.get("el", 60)), "boresight": state.get("boresight", 0.0)}
    spun = platform.at(hwp_direction=state.get("direction"), hwp_grip_state="ungripped", **same)
    assert run("", spun, **state).ok


def test_the_host_name_check_fails_elsewhere():
    report = run_script(head() + "", T0, Durations.schedlib_sat(), SAT, hostname="daq-satp2-sequencer")
    assert report.error.endswith("AssertionError: platform check failed"), report.error


@pytest.mark.parametrize(
    "body, refused",
    [
        ("run.hwp.spin_up(freq=2)\nrun.acu.set_boresight(30)\n", "Motion in third not permitted"),
        ("run.hwp.spin_up(freq=-2)\nrun.acu.move_to(az=180, el=70)\n", "Motion in el not permitted"),
        ("run.acu.move_to(az=180, el=30)\nrun.hwp.spin_up(freq=2)\n", "ACU elevation is 30.0 deg, outside"),
        ("run.acu.set_boresight(60)\n", "boresight=60.0 not in accepted range, [-55.0, 55.0]"),
        ("run.hwp.spin_up(freq=2)\nrun.hwp.spin_down(active=True)\nrun.acu.set_boresight(30)\n", None),
    ],
)
def test_the_acu_and_the_hwp_supervisor_refuse_what_the_hwp_forbids(body, refused):
    report = run(body)
    if refused is None:  # spun down first: the boresight may turn
        assert report.ok, report.summary()
        assert report.ops[-1].op == "set_boresight" and report.ops[-1].start - report.ops[-2].end == 0
        return
    assert report.error and any(refused in f for f in report.faults), report.summary()


def test_a_reversal_while_spinning_is_accepted_as_socs_does_but_noted_as_a_hazard():
    report = run("run.hwp.spin_up(freq=2)\nrun.hwp.spin_up(freq=-2)\n")
    assert report.ok and report.hazards == [
        f"line {HEAD_LINES + 1}: HWP commanded to cw while spinning ccw (not spun down first)"
    ]
    assert states(report, "hwp")[-1] == ("spinning", "cw")


def test_sorunlib_makes_its_own_wiregrid_checks_on_the_simulated_telescope():
    calibrate = (
        "run.wiregrid.calibrate(continuous=False, elevation_check=True, boresight_check=True, temperature_check=True)\n"
    )
    report = run("run.acu.move_to(az=180, el=45)\nrun.hwp.spin_up(freq=2)\n" + calibrate)
    assert "Telescope not at > 48 deg elevation" in report.error, report.summary()
    report = run("run.acu.set_boresight(10)\nrun.hwp.spin_up(freq=2)\n" + calibrate)
    assert "Telescope not at 0 deg boresight" in report.error, report.summary()
    assert run("run.hwp.spin_up(freq=2)\n" + calibrate).ok
    stopped = run(calibrate)  # sorunlib does not check the HWP; an unspun calibration is a hazard
    assert stopped.ok and stopped.hazards and "HWP not spinning" in stopped.hazards[0]
    inside = run(
        "run.hwp.spin_up(freq=2)\nrun.wiregrid.time_constant(num_repeats=1)\n", SAT.at(wiregrid_position="inside")
    )
    assert "already inserted" in inside.error, inside.summary()
    offline = run(calibrate, SAT.at(wiregrid=False))  # sorunlib's wiregrid clients are None then
    assert "'NoneType' object has no attribute" in offline.error, offline.summary()


def test_a_preamble_reading_an_iboot_needs_it_online():
    body = "from ocs.ocs_client import OCSClient\nassert OCSClient('power-iboot-smurf-1').acq().session['data']['outletStatus_0']['status'] == 1, 'vent'\n"
    assert run(body, SAT.at(iboots=("power-iboot-smurf-1",))).ok
    assert run(body).error


def test_a_sweep_ends_where_the_scan_has_got_to_and_the_next_slew_starts_there():
    # 50 s at 0.8 deg/s over 20 deg: out to 220 (25 s), back 20 deg to 200 (25 s); then 10 s more: 208
    body = "run.acu.set_scan_params(az_speed=0.8, az_accel=1.5)\nrun.acu.move_to(az=200.0, el=50.0)\n"
    body += f"run.wait_until({at(600)!r})\n" + scan(660).replace("min_duration=600", "min_duration=None")
    body += "run.acu.move_to(az=240.0, el=50.0)\n"
    report = run(body)
    assert report.ok, report.summary()
    last = [op for op in report.ops if op.op == "go_to"][-1]
    table = Durations.schedlib_sat()
    assert last.end - last.start == pytest.approx((240 - 208) / table.az_speed + table.settle)


def test_a_spin_down_without_the_brake_turns_the_pmx_off_and_waits_for_the_hwp_to_stop():
    report = run("run.hwp.spin_up(freq=-2)\nrun.hwp.spin_down(active=False)\n")
    assert report.ok, report.summary()
    pmx = next(op for op in report.ops if op.op == "pmx_off")
    assert pmx.params["wait_stop"] is True and pmx.end - pmx.start == 900
    # no time stopped before the spin-up nor spinning before the spin-down: zero-length intervals are left out
    assert states(report, "hwp") == [("spin_up", "cw"), ("spin_down", "cw"), ("stopped", None)]


def test_a_scan_after_a_relock_without_biasing_the_detectors_is_a_hazard():
    relock = "run.smurf.zero_biases()\ntime.sleep(120)\nrun.smurf.uxm_relock(concurrent=True)\n"
    body = relock + f"run.wait_until({at(1200)!r})\n" + scan(1900)
    report = run(body)
    assert report.ok and report.hazards == [
        f"line {HEAD_LINES + 4}: a scan started with the detectors of smurf-1, smurf-2 not biased since their relock"
    ], report.summary()
    assert not run(relock + "run.smurf.bias_dets(rfrac=0.5, concurrent=True)\n" + scan(1900)).hazards
    assert run(scan(600), SAT.at(detectors_biased=False)).hazards  # the state the script starts in


# --- the sat policy's own scripts, per preset -------------------------------------------------------------------

SAMPLES = {"cmb_plan": "sample_cmb.txt", "cal_plan": "sample_cal_targets.txt", "wiregrid_plan": "sample_wiregrid.txt"}
SPUN = {"state": {"az": 180.0, "el": 50.0, "boresight": 45.0, "hwp_spinning": True, "hwp_dir": "ccw"}}
# (preset, window, config): the bundled SATp1 baseline, and the sample CMB, calibration and wiregrid plans
# (2023-12-01 has a wiregrid gain calibration, 12-02 a time-constant run, both have planets to calibrate on)
POLICY_CASES = [
    *[(p, ("2023-11-05", "2023-11-06"), {}) for p in ("satp1", "satp2", "satp3")],
    *[(p, ("2023-12-01", "2023-12-02"), SAMPLES) for p in ("satp1", "satp2", "satp3")],
    ("satp1", ("2023-12-02", "2023-12-03"), SAMPLES | SPUN),
    *[(p, ("2023-11-05", "2023-11-12"), {}) for p in ("satp1", "satp2", "satp3")],
    *[(p, ("2023-12-01", "2023-12-08"), SAMPLES) for p in ("satp1", "satp2", "satp3")],  # the plans end on 12-04
]
POLICY_IDS = [f"{p}-{w[0][5:]}..{w[1][5:]}-{'plans' if c else 'baseline'}{'-spun' if 'state' in c else ''}"
              for p, w, c in POLICY_CASES]  # fmt: skip
SCANNED = ("master", "calibration")  # block kinds run as seq.scan; "wiregrid" blocks are wiregrid runs


def utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


class PolicyRuns(dict):
    """Each case scheduled and run once, when a test first asks for it."""

    def __missing__(self, case):
        from scheduler_server.observing.policies.sat import settings
        from scheduler_server.observing.policies.sat.policy import SatPolicy
        from scheduler_server.observing.service import PolicyRequest, build_config, run_schedule

        preset, (d0, d1), config = POLICY_CASES[case]
        t0, t1 = utc(d0), utc(d1)
        result = run_schedule(t0, t1, PolicyRequest("sat", config, preset=preset))
        resolved = build_config("sat", SatPolicy(), config, preset)
        ops, model, state = settings.ops_config(resolved), settings.slew_model(resolved), resolved.state
        platform = SAT.at(
            park=(state.az, state.el), boresight=state.boresight, hwp_el=(ops.min_hwp_el, ops.max_hwp_el),
            hwp_direction=state.hwp_dir if state.hwp_spinning else None, sun=SunPolicy(),
            iboots=("power-iboot-smurf-1",),
        )  # fmt: skip
        host = f"daq-{resolved.platform}-sequencer"
        report = run_script(result.commands, t0, Durations.of_sat(ops, model), platform, hostname=host)
        self[case] = result, report, model
        return self[case]


@pytest.fixture(scope="module")
def policy_runs():
    return PolicyRuns()


def calls_in(text: str, name: str) -> int:
    return len(re.findall(rf"^{re.escape(name)}\(", text, re.M))


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(POLICY_CASES)), ids=POLICY_IDS)
def test_the_policy_script_runs_to_its_end_on_time_every_call_accepted(policy_runs, case):
    result, report, _ = policy_runs[case]
    assert report.ok and not report.hazards, report.summary()  # ran to its end, nothing refused or left running
    assert all(op.ok for op in report.ops if op.end is not None), report.summary()
    assert report.late_waits() == [], report.summary()  # and no tolerance exceeded: that would be report.error
    assert report.skipped_scans() == [] and report.shortened_scans() == [], report.summary()
    text = result.commands
    assert len(report.waits) == calls_in(text, "run.wait_until") and len(report.scans) == calls_in(text, "run.seq.scan")
    assert sum(op.op == "go_to" for op in report.ops) == calls_in(text, "run.acu.move_to")
    assert sum(op.op == "set_boresight" for op in report.ops) == calls_in(text, "run.acu.set_boresight")


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(POLICY_CASES)), ids=POLICY_IDS)
def test_what_sorunlib_scanned_and_ran_is_the_answers_blocks(policy_runs, case):
    result, report, _ = policy_runs[case]
    scanned = [b for b in result.blocks if b.kind in SCANNED]
    observed = [t for s in report.scans for t in (s.started, s.stopped)]
    assert observed == pytest.approx([t for b in scanned for t in (b.t0.timestamp(), b.t1.timestamp())], abs=1.0)
    runs = [b for b in result.blocks if b.kind == "wiregrid"]
    assert len(report.runs) == len(runs)
    for run_, block in zip(report.runs, runs, strict=True):
        assert run_.start == pytest.approx(block.t0.timestamp(), abs=1.0) and run_.end <= block.t1.timestamp() + 1


def outside(intervals: list[dict], runs: list[tuple[float, float]], key: str) -> list[tuple]:
    """(t0, state, key) of a lane's intervals with the wiregrid runs cut out (inside one, sorunlib's own
    time_constant reverses the HWP: the lanes are compared on either side), equal neighbours merged."""
    out: list[tuple] = []
    for e in intervals:
        pieces = [(e["t0"], e["t1"])]
        for a, b in runs:
            pieces = [p for lo, hi in pieces for p in ((lo, min(hi, a)), (max(lo, b), hi)) if p[1] > p[0]]
        for lo, _ in pieces:
            if not out or out[-1][1:] != (e["state"], e[key]):
                out.append((lo, e["state"], e[key]))
    return out


def seconds(events: list[dict]) -> list[dict]:
    return [e | {"t0": datetime.fromisoformat(e["t0"]).timestamp(), "t1": datetime.fromisoformat(e["t1"]).timestamp()}
            for e in events]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(POLICY_CASES)), ids=POLICY_IDS)
def test_the_answers_hwp_and_boresight_lanes_are_what_the_simulated_telescope_did(policy_runs, case):
    """Same states in the same order; each change no later than planned, and earlier only by what the policy
    budgets for not knowing where in a sweep the telescope is (at most its longest slew)."""
    result, report, model = policy_runs[case]
    wiregrid = [(b.t0.timestamp(), b.t1.timestamp()) for b in result.blocks if b.kind == "wiregrid"]
    wiregrid += [(r.start, r.end) for r in report.runs]
    for lane, key in (("hwp", "direction"), ("boresight", "angle")):
        planned = outside(seconds([e for e in result.events if e["lane"] == lane]), wiregrid, key)
        done = outside(report.lane(lane), wiregrid, key)
        assert [p[1:] for p in planned] == [d[1:] for d in done], lane
        early = [p[0] - d[0] for p, d in zip(planned, done, strict=True)]
        assert min(early) >= -1.0 and max(early) <= model.longest_slew_seconds(), (lane, min(early), max(early))
    assert any(e["state"] == "spinning" for e in report.lane("hwp")), "the HWP never spun"
    for run_ in report.runs:  # a time-constant run reverses the HWP, as the answer says it does
        if run_.name == "wiregrid.time_constant":
            before, after = (
                next(e for e in report.lane("hwp") if e["t0"] <= t < e["t1"]) for t in (run_.start, run_.end)
            )
            assert {before["direction"], after["direction"]} == {"cw", "ccw"}, (before, after)


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(POLICY_CASES)), ids=POLICY_IDS)
def test_every_detector_operation_runs_inside_the_interval_the_answer_gives_it(policy_runs, case):
    """Each SMuRF operation the script ran is inside the answer's interval for it (a 'setup' holds the IV, the
    bias, the bias step and the noise), and each of the answer's intervals holds what it names."""
    result, report, model = policy_runs[case]
    inside = {"setup": {"iv", "bias", "bias_step", "noise"}}
    planned = seconds([e for e in result.events if e["lane"] == "detectors"])
    slack = model.longest_slew_seconds()
    wiregrid = [(r.start, r.end) for r in report.runs]  # sorunlib's wiregrid runs take bias steps of their own
    done = [d for d in report.lane("detectors") if not any(a <= d["t0"] <= b for a, b in wiregrid)]

    def holds(p, d) -> bool:
        return (
            d["state"] in inside.get(p["state"], {p["state"]}) and p["t0"] - slack <= d["t0"] <= d["t1"] <= p["t1"] + 1
        )

    assert done and planned
    for d in done:
        assert any(holds(p, d) for p in planned), d
    for p in planned:
        assert any(holds(p, d) for d in done), p


@pytest.mark.slow
def test_the_same_script_with_a_slower_hwp_than_planned_is_caught_late(policy_runs):
    """The runs above hold because the telescope is as fast as the policy plans: 5 min more a spin-up is not."""
    from scheduler_server.observing.policies.sat import settings
    from scheduler_server.observing.policies.sat.policy import SatPolicy
    from scheduler_server.observing.service import build_config

    result, report, model = policy_runs[0]
    ops = settings.ops_config(build_config("sat", SatPolicy(), {}, POLICY_CASES[0][0]))
    slow = Durations.of_sat(ops, model).with_seconds(pid_to_freq=ops.hwp_spin_up + 300)
    t0 = utc(POLICY_CASES[0][1][0])
    late = run_script(result.commands, t0, slow, SAT.at(park=(180.0, 40.0)), hostname="daq-satp1-sequencer")
    assert late.error and "past deadline" in late.error and late.late_waits()[0].late == 300, late.summary()


@pytest.mark.slow
def test_the_plans_cases_run_calibration_scans_and_both_kinds_of_wiregrid_run(policy_runs):
    """What the cases above hold for includes what the sample plans add, not only CMB scans."""
    kinds = {
        kind
        for case, (_, _, config) in enumerate(POLICY_CASES)
        if config.get("cal_plan")
        for kind in [b.kind for b in policy_runs[case][0].blocks] + [r.name for r in policy_runs[case][1].runs]
    }
    assert {"master", "calibration", "wiregrid", "wiregrid.calibrate", "wiregrid.time_constant"} <= kinds, kinds
