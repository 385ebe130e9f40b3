"""Issue 13: CMB scan types 2 and 3 (sorunlib seq.scan, the ACU's generate_scan) in the sat policy.

Type 2 scans at constant elevation, type 3 adds an elevation nod of el_amp at el_freq; both need a generated
turnaround (the ACU refuses "standard" for them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from scheduler_server.observing.service import PolicyRequest, check_schedule, run_schedule
from scheduler_server.observing.types import ScheduleInputError

from ..sorun import SAT, Durations, SunPolicy, run_script

T0, T1 = datetime(2023, 11, 5, tzinfo=UTC), datetime(2023, 11, 6, tzinfo=UTC)  # a day of the bundled baseline
TYPE2 = {"scan_type": 2, "turnaround_method": {"cmb": {"type2": "two_leg"}}}
LIMITS = {"stages": {"build_op": {"plan_moves": {"el_limits": [45, 90]}}}}  # 44..56 leaves them
TYPE3 = {"scan_type": 3, "el_amp": 1.5, "el_freq": 0.15}


def scans(commands: str) -> list[str]:
    return [line for line in commands.splitlines() if line.startswith("run.seq.scan(")]


@pytest.mark.parametrize(
    ("config", "amp", "freq", "turn"), [(TYPE2, "0.0", "0.0", "two_leg"), (TYPE3, "1.5", "0.15", "standard_gen")]
)
def test_a_day_of_the_baseline_scans_with_the_type_asked_and_the_checker_passes_it(config, amp, freq, turn):
    request = PolicyRequest("sat", config, preset="satp1")
    result = run_schedule(T0, T1, request)
    lines = scans(result.commands)
    assert len(lines) >= 10
    kind = config["scan_type"]
    for line in lines:
        assert f"scan_type={kind}," in line and f"el_amp={amp}," in line and f"el_freq={freq}," in line, line
    assert f"set_scan_params(az_speed=0.8, az_accel=1.5, turnaround_method='{turn}')" in result.commands
    assert "turnaround_method='standard'" not in result.commands
    report = check_schedule(T0, result, request)
    assert report["safe"], report


def test_type_3_scans_start_mid_sweep_with_fine_steps_as_schedlibs():
    result = run_schedule(T0, T1, PolicyRequest("sat", TYPE3, preset="satp1"))
    assert all(re.search(r"az_start='mid_dec', step_time=0\.05\)$", line) for line in scans(result.commands))


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"scan_type": 3, "el_amp": 3.0, "el_freq": 0.1}, "el_amp", "min_hwp_el..max_hwp_el"),  # 47..53 at el 50
        ({"scan_type": 3, "el_amp": 3.0, "el_freq": 0.1, "disable_hwp": True, "min_hwp_el": 0}, None, None),
        ({"scan_type": 3, "el_amp": 2.0, "el_freq": 0.1, "max_hwp_el": 51, "force_max_hwp_el": False}, "el_amp", "HWP"),
        ({"scan_type": 3, "el_amp": 2.0, "el_freq": 0.1, "max_hwp_el": 52, "force_max_hwp_el": False}, None, None),
        ({"scan_type": 3, "el_amp": 6.0, "el_freq": 0.1, "disable_hwp": True, **LIMITS}, "el_amp", "el_limits"),
        ({"scan_type": 2, "el_amp": 1.0}, "el_amp", "scan_type 3"),
        ({"scan_type": 3, "el_amp": 1.0}, "el_freq", "frequency"),
        ({"scan_type": 3, "el_amp": 11.0}, "el_amp", None),
        ({"scan_type": 4}, "scan_type", "1, 2 or 3"),
        ({"turnaround_method": {"cmb": {"type2": "standard"}}}, "turnaround_method.cmb.type2", None),
        ({"turnaround_method": {"cmb": {"type3": "standard"}}}, "turnaround_method.cmb.type3", "standard_gen"),
    ],
)
def test_a_nod_leaving_the_range_or_a_bad_turnaround_is_a_400_naming_it(config, field, words):
    if field is None:  # with the HWP disabled the HWP's range does not bound the nod
        assert scans(run_schedule(T0, T1, PolicyRequest("sat", config, preset="satp1")).commands)
        return
    with pytest.raises(ScheduleInputError) as caught:
        run_schedule(T0, T1, PolicyRequest("sat", config, preset="satp1"))
    assert caught.value.field == f"policy.config.{field}", caught.value
    if words:
        assert words in str(caught.value)


@pytest.mark.slow
def test_a_type_2_day_runs_under_sorunlib():
    from scheduler_server.observing.policies.sat import settings
    from scheduler_server.observing.policies.sat.policy import SatPolicy
    from scheduler_server.observing.service import build_config

    t1 = datetime(2023, 11, 5, 8, tzinfo=UTC)
    result = run_schedule(T0, t1, PolicyRequest("sat", TYPE2, preset="satp1"))
    resolved = build_config("sat", SatPolicy(), TYPE2, "satp1")
    ops, model, state = settings.ops_config(resolved), settings.slew_model(resolved), resolved.state
    platform = SAT.at(
        park=(state.az, state.el), boresight=state.boresight, hwp_el=(ops.min_hwp_el, ops.max_hwp_el),
        hwp_direction=None, sun=SunPolicy(), iboots=("power-iboot-smurf-1",),
    )  # fmt: skip
    report = run_script(result.commands, T0, Durations.of_sat(ops, model), platform, hostname="daq-satp1-sequencer")
    assert report.ok and not report.hazards, report.summary()
    assert report.late_waits() == [] and report.skipped_scans() == [], report.summary()
    assert len(report.scans) == result.commands.count("run.seq.scan(") > 0
