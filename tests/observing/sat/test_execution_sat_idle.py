"""Review of issue 13, finding 12: under the real sorunlib, a schedule that ends on a drifting calibration scan
followed by idle time (finding 5: planner and checker disagreed where the telescope rests after it) runs to its
end with nothing refused, no hazard and no wait late."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ..sorun import SAT, Durations, SunPolicy, run_script

CONFIG = {
    "cmb_plan": "sample_cmb.txt",
    "cal_targets": [{"source": "jupiter", "boresight": 0, "elevation": 45, "focus": "ws0"}],
}


@pytest.mark.slow
def test_a_calibration_scan_then_idle_time_runs_under_sorunlib():
    from scheduler_server.observing.policies.sat import settings
    from scheduler_server.observing.policies.sat.policy import SatPolicy
    from scheduler_server.observing.service import PolicyRequest, build_config, run_schedule

    t0, t1 = datetime(2023, 12, 3, 23, tzinfo=UTC), datetime(2023, 12, 4, 13, tzinfo=UTC)
    result = run_schedule(t0, t1, PolicyRequest("sat", CONFIG, preset="satp1"))
    assert [b.kind for b in result.blocks][-1] == "calibration" and result.blocks[-1].t1 < t1
    resolved = build_config("sat", SatPolicy(), CONFIG, "satp1")
    ops, model, state = settings.ops_config(resolved), settings.slew_model(resolved), resolved.state
    platform = SAT.at(
        park=(state.az, state.el), boresight=state.boresight, hwp_el=(ops.min_hwp_el, ops.max_hwp_el),
        hwp_direction=None, sun=SunPolicy(), iboots=("power-iboot-smurf-1",),
    )  # fmt: skip
    report = run_script(result.commands, t0, Durations.of_sat(ops, model), platform, hostname="daq-satp1-sequencer")
    assert report.ok and not report.hazards, report.summary()
    assert report.late_waits() == [] and report.skipped_scans() == [], report.summary()
    assert len(report.scans) == result.commands.count("run.seq.scan(")
