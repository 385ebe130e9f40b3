"""Slews and waits between scans, planned clear of a constructed sun, then checked independently."""

from __future__ import annotations

import pytest

from scheduler_server.observing.policies.basic import script as commands
from scheduler_server.observing.policies.basic.blocks import Scan
from scheduler_server.observing.policies.basic.rules import SunAvoidance
from scheduler_server.observing.policies.basic.slews import Infeasible, Move, Route, SlewPlanner, Wait, _State
from scheduler_server.observing.safety import checker as safety
from scheduler_server.observing.sky.ephemerides import ATACAMA
from scheduler_server.observing.telescope import TelescopeModel
from tests.observing.conftest import constructed_sky, utc

T0 = utc(2024, 6, 1)
HOUR = 3600
MODEL = TelescopeModel(uxm_setup_seconds=0, iv_curve_seconds=0)
RULE = SunAvoidance(min_angle=41, min_sun_time=0, n_buffer=0)


def plan(scans, sun, elevations=(30.0, 45.0, 60.0, 75.0)):
    planner = SlewPlanner(RULE.guard(sun), MODEL, elevations, start=T0 - 600)
    result = planner.plan(scans)
    kept, dropped = result.kept, result.dropped
    script = commands.script(kept)
    report = safety.check_script(script, RULE.min_angle, MODEL, ATACAMA, start=T0 - 600, sun=sun)
    return kept, dropped, script, report


def test_a_slew_through_the_sun_goes_over_it():
    # The sun stands at az 180 el 45; A ends at az 90..110, B starts at az 250, both at el 45
    # and 48 deg from the sun. Going straight passes through the sun; at el 88 it passes 43 deg away.
    sun = constructed_sky("sun", T0, 4, 10, 180.0, 45.0)
    a = Scan("A", "master", T0, T0 + HOUR, 90.0, 45.0, 20.0)
    b = Scan("B", "master", T0 + HOUR + 900, T0 + 2 * HOUR, 250.0, 45.0, 20.0)
    kept, dropped, script, report = plan([a, b], sun, elevations=(30.0, 60.0, 88.0))
    assert not dropped
    route = kept[1][1]
    assert route.steps == (Move(90.0, 88.0), Move(250.0, 88.0)) and "via elevation 88" in route.note
    assert "acu.move_to(90.0, 88.0)\nacu.move_to(250.0, 88.0)\nacu.move_to(250.0, 45.0)" in script
    assert report.safe, report.lines()


def test_waiting_where_the_sun_will_pass_is_avoided_by_leaving_later():
    # Sun at el 20 moving +0.5 deg/min from az 150; scans at el 60 are unsafe only within
    # 13.6 deg of the sun's azimuth. It crosses B's azimuth (240) around T0+3h, between A and B,
    # and the straight slew from A (az 20..40) to B covers az 20..240, which holds the sun at T0+1h.
    sun = constructed_sky("sun", T0, 8, 10, 150.0, 20.0, 0.5)
    a = Scan("A", "master", T0, T0 + HOUR, 20.0, 60.0, 20.0)
    b = Scan("B", "master", T0 + 5 * HOUR, T0 + 6 * HOUR, 240.0, 60.0, 10.0)
    kept, dropped, script, report = plan([a, b], sun)
    assert not dropped
    (leave,) = kept[1][1].steps
    assert isinstance(leave, Wait) and T0 + 4.5 * HOUR < leave.until < T0 + 5 * HOUR
    assert report.safe, report.lines()


def test_with_nowhere_to_wait_nearby_the_telescope_parks_clear_of_the_sun():
    # The sun (el 20, +0.5 deg/min from az 150) passes A's arc (250..260) and then B's start (300)
    # during the 5-hour gap: waiting at either is unsafe, so it waits somewhere else.
    sun = constructed_sky("sun", T0, 8, 10, 150.0, 20.0, 0.5)
    a = Scan("A", "master", T0, T0 + HOUR, 250.0, 60.0, 10.0)
    b = Scan("B", "master", T0 + 6 * HOUR, T0 + 7 * HOUR, 300.0, 60.0, 10.0)
    kept, dropped, script, report = plan([a, b], sun)
    assert not dropped
    park, wait = kept[1][1].steps
    assert isinstance(park, Move) and isinstance(wait, Wait) and "waited at" in kept[1][1].note
    assert report.safe, report.lines()


def test_an_unreachable_scan_is_dropped_with_the_reason():
    # B sits 30 deg from a sun that does not move: no route helps.
    sun = constructed_sky("sun", T0, 4, 10, 180.0, 45.0)
    a = Scan("A", "master", T0, T0 + HOUR, 90.0, 45.0, 20.0)
    b = Scan("B", "master", T0 + HOUR + 900, T0 + 2 * HOUR, 210.0, 45.0, 5.0)
    kept, dropped, script, report = plan([a, b], sun)
    assert [s.name for s, _ in kept] == ["A"]
    ((scan, reason),) = dropped
    assert scan.name == "B" and "deg from the sun" in reason and "limit 41 deg" in reason
    assert report.safe


def test_a_scan_too_soon_after_the_last_one_is_dropped_as_too_late():
    sun = constructed_sky("sun", T0, 4, 10, 0.0, -60.0)  # night
    a = Scan("A", "master", T0, T0 + HOUR, 90.0, 45.0, 20.0)
    b = Scan("B", "master", T0 + HOUR, T0 + HOUR + 200, 270.0, 45.0, 5.0)  # 180 deg away, 200 s long
    kept, dropped, _, report = plan([a, b], sun)
    assert [s.name for s, _ in kept] == ["A"] and "cannot be there in time" in dropped[0][1]


def test_a_scan_60_s_after_the_last_one_starts_when_ready_and_says_so():
    sun = constructed_sky("sun", T0, 4, 10, 0.0, -60.0)  # night
    a = Scan("A", "master", T0, T0 + HOUR, 90.0, 45.0, 20.0)
    b = Scan("B", "master", T0 + HOUR + 60, T0 + 2 * HOUR, 100.0, 45.0, 10.0)
    kept, dropped, script, report = plan([a, b], sun)
    # A's closing bias step 60 s, the slew from anywhere on 90..110 to 100 takes 10 s + 10 s
    # settling, the detector bias 180 s: B starts 260 s after A's end, not 60 s.
    assert not dropped and report.safe
    started = kept[1][0]
    assert (started.t0, started.t1) == (T0 + HOUR + 260, b.t1)
    assert started.cuts == (
        "setup: start moved from 2024-06-01 01:01:00 to 2024-06-01 01:04:20 (bias step, slew and detector bias)",
    )
    assert "wait_until('2024-06-01T01:04:20+00:00')" in script and "01:01:00" not in script


def test_a_scan_its_setup_would_leave_under_min_duration_is_dropped_with_the_reason():
    sun = constructed_sky("sun", T0, 4, 10, 0.0, -60.0)
    a = Scan("A", "master", T0, T0 + HOUR, 90.0, 45.0, 20.0)
    b = Scan("B", "master", T0 + HOUR + 60, T0 + HOUR + 500, 100.0, 45.0, 10.0)  # 180 s observed once ready
    planner = SlewPlanner(RULE.guard(sun), MODEL, (30.0,), start=T0 - 600, min_durations={"master": 300})
    result = planner.plan([a, b])
    assert [s.name for s, _ in result.kept] == ["A"]
    ((scan, reason),) = result.dropped
    assert (
        scan == b
        and "ready at 2024-06-01 01:04:20, leaving 180 s of it after the bias step (at least 300 s needed)" in reason
    )
    # Without the rule the same scan is kept, shortened to what is left.
    (_, (kept, _)) = SlewPlanner(RULE.guard(sun), MODEL, (30.0,), start=T0 - 600).plan([a, b]).kept
    assert kept.duration == 240


def test_a_route_whose_wait_would_be_reached_late_is_not_taken():
    sun = constructed_sky("sun", T0, 4, 10, 0.0, -60.0)
    planner = SlewPlanner(RULE.guard(sun), MODEL, (30.0,), start=T0)
    here = _State(T0, (0.0, 0.0, 45.0, 45.0))
    b = Scan("B", "master", T0 + HOUR, T0 + 2 * HOUR, 180.0, 45.0, 10.0)
    # The slew to a parking spot at az 90 takes 90 s + 10 s settling.
    with pytest.raises(Infeasible, match="wait until 2024-06-01 00:01:39 would be reached late"):
        planner._replay(here, Route((Move(90.0, 45.0), Wait(T0 + 99))), b)
    _, start = planner._replay(here, Route((Move(90.0, 45.0), Wait(T0 + 100))), b)
    assert start == b.t0


def test_a_plan_can_be_continued_from_its_first_part():
    sun = constructed_sky("sun", T0, 8, 10, 150.0, 20.0, 0.5)
    scans = [Scan(f"S{k}", "master", T0 + k * HOUR, T0 + k * HOUR + 3000, 40.0 * k, 60.0, 10.0) for k in range(6)]
    planner = SlewPlanner(RULE.guard(sun), MODEL, (30.0, 60.0), start=T0 - 600)
    whole = planner.plan(scans)
    first = whole.before(T0 + 3 * HOUR)
    assert [s.name for s, _ in first.kept] == ["S0", "S1", "S2"]
    continued = planner.plan(scans[3:], prefix=first)
    assert continued.kept == whole.kept and continued.dropped == whole.dropped


def test_a_plan_again_takes_the_earlier_plans_tail_once_back_on_its_track():
    sun = constructed_sky("sun", T0, 10, 10, 150.0, 20.0, 0.5)
    scans = [Scan(f"S{k}", "master", T0 + k * HOUR, T0 + k * HOUR + 3000, 40.0 * k, 60.0, 10.0) for k in range(8)]
    planner = SlewPlanner(RULE.guard(sun), MODEL, (30.0, 60.0), start=T0 - 600)
    earlier = planner.plan(scans)
    changed = scans[:2] + [scans[2].replace(az=300.0)] + scans[3:]  # one scan differs: the rest is a common tail
    fresh = planner.plan(changed)
    calls = []
    route = planner._route
    planner._route = lambda state, scan: calls.append(scan.name) or route(state, scan)
    again = planner.plan(changed, earlier=earlier)
    assert (again.kept, again.dropped, again.states) == (fresh.kept, fresh.dropped, fresh.states)
    assert calls[:3] == ["S0", "S1", "S2"] and len(calls) < len(
        scans
    )  # planned up to the change and a little after, not all


def test_min_duration_counts_what_seq_scan_observes_after_the_opening_bias_step():
    """A scan reached on time, 320 s from wait_until to stop_time, observes 260 s (bias step 60 s): under 300."""
    sun = constructed_sky("sun", T0, 4, 10, 0.0, -60.0)
    a = Scan("A", "master", T0, T0 + HOUR, 90.0, 45.0, 20.0)
    b = Scan("B", "master", T0 + 2 * HOUR, T0 + 2 * HOUR + 320, 100.0, 45.0, 10.0)
    result = SlewPlanner(RULE.guard(sun), MODEL, (30.0,), start=T0 - 600, min_durations={"master": 300}).plan([a, b])
    ((scan, reason),) = result.dropped
    assert scan == b and reason.startswith("too short, leaving 260 s of it after the bias step")
    c = b.replace(t1=b.t1 + 40)  # 300 s observed: kept, on time
    result = SlewPlanner(RULE.guard(sun), MODEL, (30.0,), start=T0 - 600, min_durations={"master": 300}).plan([a, c])
    assert not result.dropped and result.kept[1][0] == c
