"""A timeline that holds: emitted basic scripts replayed with durations the policy does not use.

Each script is read the way the checker reads it (``safety.script_reader``) and its
commands are given the durations of ``INDEPENDENT``, taken from the observatory's own
scheduler rather than from the policy's telescope model. Then no ``wait_until`` may
be reached late, no target may be earlier than the one before, every scan keeps its
``min_duration``, and the blocks the policy reports are what is really observed,
sun-checked on that timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from scheduler_server.observing.policies.basic.policy import BasicPolicy
from scheduler_server.observing.safety import checker as safety
from scheduler_server.observing.safety.script_reader import read_script
from scheduler_server.observing.service import PolicyRequest, build_config, run_schedule
from scheduler_server.observing.telescope import TelescopeModel

# Seconds per command, as schedlib's SAT policy assumes them (simonsobs/scheduler,
# src/schedlib/policies/tel.py; see docs/observing.md, "A timeline that holds"). No source
# gives other figures, and the TelescopeModel defaults were taken from these, so they are
# equal: independent in origin, not in value. test_..._15_percent_slower says what a
# timeline that really differs does to the plan.
INDEPENDENT = {
    "smurf.uxm_setup": 900.0,  # RELOCK_DURATION, 15 min (tel.ufm_relock)
    "smurf.iv_curve": 1200.0,  # det_setup_duration, 20 min (tel.det_setup: IV, bias, 180 s sleep, bias step, noise)
    "smurf.bias_dets": 180.0,  # tel.det_setup sleeps 180 s after run.smurf.bias_dets
    "smurf.bias_step": 60.0,  # tel.bias_step: 60 s, then waits until 60 s later
}
# schedlib counts a move_to as 0 s; socs' ACU agent starts a SAT platform at az_speed 1 deg/s
# (INIT_DEFAULT_SCAN_PARAMS['satp']). Neither gives an elevation speed or settling: those
# two are the policy's defaults, so for slews this table is not independent of the model.
AZ_SPEED, EL_SPEED, SETTLE = 1.0, 0.5, 10.0
# A 2023 reference preset keeps 2023's zero-length setup (docs/observing.md): it is exempt.
PRESETS = [None, *sorted(p for p in BasicPolicy.presets if "2023" not in p)]
WINDOWS = {
    "1-day": (datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC)),
    "7-day": (datetime(2024, 6, 10, tzinfo=UTC), datetime(2024, 6, 17, tzinfo=UTC)),
}


@dataclass
class Run:
    line: int
    target: float  # the wait_until before it: the scan's planned start
    ready: float  # when the telescope reached that wait_until
    begins: float  # when seq.scan is called
    stop: float


@dataclass
class Replay:
    late: list[tuple[int, float]]  # (line, seconds late) of each wait_until reached after its time
    backwards: list[int]  # lines of wait_untils earlier than the one before
    runs: list[Run]


def replay(
    text: str, start: float, durations=INDEPENDENT, speeds=(AZ_SPEED, EL_SPEED, SETTLE), pointing=(180.0, 60.0)
) -> Replay:
    """``pointing``: where the telescope is when the script starts (az 180 el 60 is where the sorunlib
    harness, tests/observing/sorun, parks it; the policy does not know it)."""
    reading = read_script(text)
    assert not reading.problems, reading.problems
    out = Replay([], [], [])
    clock, target, ready = start, float("-inf"), start
    arc, el = (pointing[0], pointing[0]), pointing[1]  # where the telescope may be in azimuth, and its el
    for call in reading.calls:
        if call.name == "wait_until":
            moment = datetime.fromisoformat(call.args[0]).timestamp()
            if moment < target:
                out.backwards.append(call.line)
            if clock > moment:
                out.late.append((call.line, clock - moment))
            ready, target, clock = clock, moment, max(clock, moment)
        elif call.name == "acu.move_to":
            az, to_el = call.args[:2]
            daz = max(abs(az - arc[0]), abs(az - arc[1]))
            clock += max(daz / speeds[0], abs(to_el - el) / speeds[1]) + speeds[2]
            arc, el = (az, az), to_el
        elif call.name == "seq.scan":
            stop = datetime.fromisoformat(call.kwargs["stop_time"]).timestamp()
            out.runs.append(Run(call.line, target, ready, clock, stop))
            clock = max(clock, stop)
            arc = (arc[0], arc[0] + call.kwargs["width"])
        else:
            clock += durations.get(call.name, 0.0)
    return out


def _least(config, kind: str) -> float:
    """The shortest scan a preset keeps: min-duration for master scans. A calibration scan
    keeps what calibration-min-duration let through (applied by the policy to windows or
    scans), and here only has to leave seq.scan time to run."""
    rules = config.rules
    if kind == "master" and rules.min_duration is not None:
        return rules.min_duration.min_duration
    return 60.0  # the planner's MIN_SCAN_LEFT_SECONDS


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_the_timeline_holds_with_durations_the_policy_does_not_use(window, preset):
    t0, t1 = WINDOWS[window]
    result = run_schedule(t0, t1, PolicyRequest("basic", {}, preset, trusted=True))
    config = build_config("basic", BasicPolicy(), {}, preset, trusted=True)
    # The first slew: up to the whole azimuth range, -90..480 on the SAT (socs' satp, the harness's Platform).
    for pointing in ((180.0, 60.0), (480.0, 20.0), (-90.0, 90.0), (0.0, 90.0)):
        late = replay(result.commands, t0.timestamp(), pointing=pointing).late
        assert late == [], f"from {pointing}, wait_untils reached late (line, seconds): {late[:5]}"
    done = replay(result.commands, t0.timestamp())
    assert done.backwards == []
    blocks = result.blocks
    assert len(done.runs) == len(blocks) > (10 if window == "1-day" else 70)
    for run, block in zip(done.runs, blocks):
        # The block reported is what is observed: seq.scan's span, which begins after the
        # opening bias step that follows its wait_until (reached in time), and ends at the stop time.
        assert (block.t0.timestamp(), block.t1.timestamp()) == (run.begins, run.stop)
        assert run.ready <= run.target < run.begins
        assert run.stop - run.begins >= _least(config, block.kind), (run.line, block.name)
    moved = [b for b in blocks if any(c.startswith("setup: start moved") for c in b.cuts)]
    assert moved, "no scan had to give time to its setup: the test no longer tests that"
    # Sun-checked on that timeline: the checker replays with the independent durations.
    model = TelescopeModel(
        az_speed=AZ_SPEED,
        el_speed=EL_SPEED,
        settle_seconds=SETTLE,
        el_limits=config.telescope.el_limits,
        uxm_setup_seconds=INDEPENDENT["smurf.uxm_setup"],
        iv_curve_seconds=INDEPENDENT["smurf.iv_curve"],
        bias_dets_seconds=INDEPENDENT["smurf.bias_dets"],
        bias_step_seconds=INDEPENDENT["smurf.bias_step"],
    )
    sun_rule = config.rules.sun_avoidance
    report = safety.check_script(
        result.commands, sun_rule.min_angle, model, config.site.to_site(), start=t0.timestamp(), step=30
    )
    assert report.safe, report.lines()[:3]


def test_15_percent_slower_than_planned_the_waits_are_late_but_less_than_min_sun_time_and_still_sun_safe():
    """The plan has no margin in time: a scan late for its setup starts when the telescope is
    ready, so with every command 15% longer and slews 15% slower the wait_untils are reached late
    (this asserts that, it is what is true). The margin is the sun's: late by much less than
    min_sun_time, and the checker replaying that slower timeline finds the script sun-safe."""
    t0, t1 = WINDOWS["1-day"]
    result = run_schedule(t0, t1, PolicyRequest("basic", {}, None, trusted=True))
    config = build_config("basic", BasicPolicy(), {}, None, trusted=True)
    f = 1.15
    durations = {name: seconds * f for name, seconds in INDEPENDENT.items()}
    slow = replay(result.commands, t0.timestamp(), durations, (AZ_SPEED / f, EL_SPEED / f, SETTLE * f), (480.0, 20.0))
    sun_rule = config.rules.sun_avoidance
    assert len(slow.late) > len(slow.runs) // 2
    assert max(seconds for _, seconds in slow.late) < sun_rule.min_sun_time / 4
    model = TelescopeModel(
        az_speed=AZ_SPEED / f,
        el_speed=EL_SPEED / f,
        settle_seconds=SETTLE * f,
        **{f"{name.split('.')[1]}_seconds": seconds for name, seconds in durations.items()},
    )
    report = safety.check_script(
        result.commands, sun_rule.min_angle, model, config.site.to_site(), start=t0.timestamp(), step=30
    )
    assert report.safe and report.spans > 10, report.lines()[:3]


def test_the_timeline_holds_by_the_policys_own_model_whatever_its_figures():
    # Slower axes and longer commands than the defaults: the plan follows the model it is given.
    telescope = {
        "az_speed": 0.5,
        "el_speed": 0.25,
        "settle_seconds": 20,
        "uxm_setup_seconds": 300,
        "iv_curve_seconds": 300,
        "bias_dets_seconds": 240,
        "bias_step_seconds": 90,
    }
    t0, t1 = WINDOWS["1-day"]
    result = run_schedule(t0, t1, PolicyRequest("basic", {"telescope": telescope}, None, trusted=True))
    model = TelescopeModel(**telescope)
    durations = {name: model.command_seconds(name) for name in INDEPENDENT}
    done = replay(result.commands, t0.timestamp(), durations, (model.az_speed, model.el_speed, model.settle_seconds))
    assert done.late == [] and done.backwards == [] and len(done.runs) == len(result.blocks) > 10
    for run, block in zip(done.runs, result.blocks):
        assert block.t0.timestamp() == run.begins == run.target + 90 and run.begins < run.stop
        if block.kind == "master":
            assert run.stop - run.begins >= 300
    # ... and with these figures the default durations' plan would be late.
    default = run_schedule(t0, t1, PolicyRequest("basic", {}, None, trusted=True))
    slow = replay(default.commands, t0.timestamp(), durations, (model.az_speed, model.el_speed, model.settle_seconds))
    assert len(slow.late) > 5


SCRIPT = """from sorunlib import *
from nextline import disable_trace

with disable_trace():
    initialize(test_mode=True)

smurf.uxm_setup()
smurf.iv_curve()
# a
acu.move_to(100.0, 50.0)
smurf.bias_dets()
wait_until('2024-03-04T01:00:00+00:00')
smurf.bias_step()
seq.scan(description='a', stop_time='2024-03-04T02:00:00+00:00', width=20.0)
smurf.bias_step()
# b
acu.move_to(100.0, 50.0)
smurf.bias_dets()
wait_until('{b}')
smurf.bias_step()
seq.scan(description='b', stop_time='2024-03-04T03:00:00+00:00', width=20.0)
smurf.bias_step()
"""


def test_the_replay_catches_a_60_second_gap_and_a_target_that_goes_back():
    start = datetime(2024, 3, 4, tzinfo=UTC).timestamp()
    # After a: bias step 60 s, a slew of 20 s + 10 s settle, bias 180 s = 270 s; the gap is 60 s.
    done = replay(SCRIPT.format(b="2024-03-04T02:01:00+00:00"), start)
    assert done.late == [(19, 210.0)] and done.backwards == []
    done = replay(SCRIPT.format(b="2024-03-04T00:59:00+00:00"), start)
    assert done.backwards == [19] and done.late[0][0] == 19
    done = replay(SCRIPT.format(b="2024-03-04T02:04:30+00:00"), start)
    assert done.late == [] and done.runs[1].ready == done.runs[1].target
