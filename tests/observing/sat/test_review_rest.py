"""Review of issue 13, finding 5: planner and checker agree where the telescope rests after a drifting scan."""

from __future__ import annotations

from datetime import UTC, datetime

from scheduler_server.observing.service import PolicyRequest, check_schedule, run_schedule

CONFIG = {
    "cmb_plan": "sample_cmb.txt",
    "cal_targets": [{"source": "jupiter", "boresight": 0, "elevation": 45, "focus": "ws0"}],
}


def test_a_drifting_calibration_scan_then_idle_time_is_planned_as_the_checker_sees_it():
    # The scan drifts with Jupiter; the sun rises behind it. The telescope may rest anywhere in the swept
    # box (the ACU stops where its triangle has got to): the planner moves away in time, the checker agrees.
    t0, t1 = datetime(2023, 12, 3, 23, tzinfo=UTC), datetime(2023, 12, 4, 13, tzinfo=UTC)
    request = PolicyRequest("sat", CONFIG, "satp1")
    result = run_schedule(t0, t1, request)
    assert "calibration" in [b.kind for b in result.blocks]
    check = check_schedule(t0, result, request)
    assert check["safe"], check["problems"]
    assert check["min_sun_distance_deg"] >= 41.0


def test_the_script_says_why_visits_were_dropped_even_when_no_block_is_left():
    # finding 8: both scans of this window are too short; the answer has no block to carry the reason
    request = PolicyRequest("sat", {"cmb_plan": "sample_cmb.txt"}, "satp1")
    result = run_schedule(datetime(2023, 12, 1, 0, 50, tzinfo=UTC), datetime(2023, 12, 1, 1, 5, tzinfo=UTC), request)
    assert result.blocks == []
    notes = [line for line in result.commands.splitlines() if line.startswith("# dropped: ")]
    assert len(notes) == 2 and all("at least 600 s needed" in n for n in notes)
    assert result.commands.endswith("\n")
