"""Preset ``seed-2023``: the 2023 server's configuration, and the calibration scans schedlib 2023 kept.

The comparison with schedlib 2023 itself (run outside the project) is in bench/README.md; these
tests pin our side's properties that need no schedlib.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from scheduler_server.observing.policies.basic import planets
from scheduler_server.observing.policies.basic.policy import BasicPolicy
from scheduler_server.observing.policies.basic.rules import MinDuration
from scheduler_server.observing.safety import checker as safety
from scheduler_server.observing.service import PolicyRequest, build_config, run_schedule
from scheduler_server.observing.sky.ephemerides import ATACAMA
from tests.conftest import SHARED

# configs/basic.py of simonsobs/scheduler-server as the 2023 server pinned it (14dc4aa), key by key.
CONFIG_2023 = {
    "sun-avoidance": {"min_angle_az": 6, "min_angle_alt": 6, "time_step": 10, "n_buffer": 3},
    "day-mod": {"day": 0, "day_mod": 1, "day_ref": datetime(2014, 1, 1, tzinfo=UTC)},
    "calibration-min-duration": {"min_duration": 300},
    "make-source-plan": {
        "specs": [{"bounds_x": [-0.5, 0.5], "bounds_y": [-0.5, 0.5]}],
        "spec_shape": "ellipse",
        "max_obs_length": 6000,
    },
    "make-source-scan": {"preferred_length": 1800},
    "alt-range": {"alt_range": [20, 90]},
}
DAY = (datetime(2023, 1, 10, tzinfo=UTC), datetime(2023, 1, 11, tzinfo=UTC))


def _config():
    return build_config("basic", BasicPolicy(), {}, preset="seed-2023")


def _as_lists(value):
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    return value


def test_the_preset_is_the_2023_configuration():
    config = _config()
    rules = config.rules.model_dump(by_alias=True)
    for section, keys in CONFIG_2023.items():
        for key, value in keys.items():
            assert _as_lists(rules[section][key]) == _as_lists(value), f"{section}.{key}"
    # What 2023 did not have is off; the box test is the 2023 one (its 6 deg also the checker's floor).
    assert rules["moon-avoidance"] is None and rules["min-duration"] is None
    assert rules["drift-mode"] is None  # 2023 had no drift-mode rule: both drifts
    assert rules["sun-avoidance"]["mode"] == "box" and rules["sun-avoidance"]["min_sun_time"] == 0
    assert config.calibration_targets == ("uranus", "saturn")
    # The zero-length setup of 2023, and the description says so.
    t = config.telescope
    assert (t.uxm_setup_seconds, t.iv_curve_seconds, t.bias_dets_seconds, t.bias_step_seconds) == (0, 0, 0, 0)
    # schedlib 2023 gave slews no time either: the fastest the model allows, without settling.
    assert (t.az_speed, t.el_speed, t.settle_seconds) == (10.0, 10.0, 0.0)
    assert BasicPolicy().presets["seed-2023"]["telescope"]["bias_dets_seconds"] == 0


@pytest.fixture(scope="module")
def january_day():
    return run_schedule(*DAY, PolicyRequest("basic", {}, "seed-2023", trusted=True))


def test_saturn_crossings_under_five_minutes_are_kept_and_pass_the_checker(january_day):
    saturn = [b for b in january_day.blocks if b.kind == "calibration" and b.name == "saturn"]
    lengths = [(b.t1 - b.t0).total_seconds() for b in saturn if not b.cuts]
    # Saturn crosses the 1 deg footprint in about 260 s that day (schedlib 2023 scheduled two such
    # scans): calibration-min-duration applies to the window of starts, not to the crossing.
    assert len(lengths) >= 2 and max(lengths) < 300, lengths
    report = safety.check_script(
        january_day.commands, 6.0, _config().telescope, ATACAMA, start=DAY[0].timestamp(), step=10
    )
    assert report.safe and report.spans > 10


def test_calibration_min_duration_applies_to_observing_windows():
    config = _config()
    footprint = config.rules.make_source_plan.footprint()
    a, b = (int(t.timestamp()) for t in DAY)
    windows = [w for w in planets.windows_near("saturn", ATACAMA, a, b, footprint, 6000.0) if a <= w.t0 < b]
    spans = sorted(w.t1 - w.t0 for w in windows)
    assert spans and max(spans) >= 600
    kept = MinDuration(min_duration=spans[-1]).windows(windows, "calibration-min-duration")
    assert [w.t1 - w.t0 for w in kept] == [spans[-1]] * spans.count(spans[-1])
    # The scan from a kept window lasts the crossing: minutes, whatever min_duration says.
    scan = planets.pick_scan(kept[0], 1800.0)
    assert 120 < scan.duration < 600


def test_a_window_crossing_the_request_start_gives_a_scan_inside_it():
    config = _config()
    footprint = config.rules.make_source_plan.footprint()
    a = int(DAY[0].timestamp())
    window = max(planets.windows_near("uranus", ATACAMA, a, a + 86400, footprint, 6000.0), key=lambda w: w.t1 - w.t0)
    middle = int(window.t[len(window.t) // 2])
    free = planets.pick_scan(window, 1800.0)
    for start in (middle, int(free.t0) + 1):
        scan = planets.pick_scan(window, 1800.0, within=(start, start + 86400))
        assert scan.t1 > start
    # A request the first draw meets keeps that draw: the same scan whatever the request.
    assert planets.pick_scan(window, 1800.0, within=(free.t0 - 10, free.t1 + 10)) == free
    assert np.all(np.diff(window.t) > 0)


def test_on_the_seeds_master_schedule_every_2023_calibration_of_a_january_day_is_there():
    # schedlib 2023 (v0.1.0) on 2023-01-10: 2 Uranus and 2 Saturn scans (bench/README.md).
    window = (datetime(2023, 1, 10, tzinfo=UTC), datetime(2023, 1, 11, tzinfo=UTC))
    config = {"master_schedule": str(SHARED / "data" / "schedule_sat.txt")}
    result = run_schedule(*window, PolicyRequest("basic", config, "seed-2023", trusted=True))
    names = [b.name for b in result.blocks if b.kind == "calibration"]
    assert names.count("uranus") >= 2 and names.count("saturn") >= 2
