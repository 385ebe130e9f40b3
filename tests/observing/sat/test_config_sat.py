"""The sat policy's config and presets: schedlib's keys, per-platform differences, and bad input as 400s."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler_server.observing.policies.sat.config import PLAN_TEXT_LIMIT, SatConfig
from scheduler_server.observing.policies.sat.policy import SatPolicy
from scheduler_server.observing.service import PolicyRequest, build_config, run_schedule
from scheduler_server.observing.types import ScheduleInputError

T0 = datetime(2023, 11, 5, tzinfo=UTC)
T1 = datetime(2023, 11, 5, 6, tzinfo=UTC)


def config(overrides=None, preset="satp1", trusted=False) -> SatConfig:
    return build_config("sat", SatPolicy(), overrides or {}, preset, trusted=trusted)


def refused(overrides, preset="satp1") -> ScheduleInputError:
    with pytest.raises(ScheduleInputError) as caught:
        run_schedule(T0, T1, PolicyRequest("sat", overrides, preset))
    return caught.value


def test_the_presets_differ_where_schedlibs_platforms_do():
    p1, p2, p3 = (config(preset=p) for p in ("satp1", "satp2", "satp3"))
    assert [c.platform for c in (p1, p2, p3)] == ["satp1", "satp2", "satp3"]
    assert (p1.az_speed, p1.az_accel) == (0.8, 1.5) == (p2.az_speed, p2.az_accel)
    assert (p3.az_speed, p3.az_accel) == (0.5, 0.25)
    assert p1.sun_policy().min_angle == 41.0
    assert p2.sun_policy().min_angle == p3.sun_policy().min_angle == 49.0
    assert {c.sun_policy().min_sun_time for c in (p1, p2, p3)} == {1980.0}


def test_schedlib_key_names_and_nesting_are_taken():
    c = config(
        {
            "iv_cadence": 7200,
            "bias_step_cadence": 900,
            "relock_cadence": None,
            "max_hwp_el": 55,
            "rules": {"sun-avoidance": {"min_angle": 45}, "min-duration": {"min_duration": 300}},
            "stages": {"build_op": {"plan_moves": {"el_limits": [45, 70], "sun_policy": {"min_sun_time": 2400}}}},
        }
    )
    assert (c.iv_cadence, c.bias_step_cadence, c.relock_cadence) == (7200, 900, None)
    assert c.rules.min_duration.min_duration == 300
    assert c.el_limits() == (45, 55)  # force_max_hwp_el caps the top, as schedlib's __post_init__
    assert (c.sun_policy().min_angle, c.sun_policy().min_sun_time) == (45, 2400)  # the stricter of the two


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"bogus": 1}, "policy.config.bogus"),
        ({"stages": {"build_op": {"plan_moves": {"az_step": 1}}}}, "policy.config.stages.build_op.plan_moves.az_step"),
        ({"rules": {"sun-avoidance": {"min_angle": -3}}}, "policy.config.rules.sun-avoidance.min_angle"),
        ({"state": {"hwp_dir": "sideways"}}, "policy.config.state.hwp_dir"),
        ({"state": {"last_iv": "2023-11-04T12:00:00"}}, "policy.config.state.last_iv"),
        (
            {"cal_targets": [{"source": "jupiter", "boresight": 0, "elevation": 50}]},
            "policy.config.cal_targets.0.focus",
        ),
        (
            {"cal_targets": [{"source": "j;x", "boresight": 0, "elevation": 50, "focus": "all"}]},
            "policy.config.cal_targets.0.source",
        ),
        ({"cmb_plan": "../../etc/passwd"}, "policy.config.cmb_plan"),
        ({"hwp_override": "up"}, "policy.config.hwp_override"),
    ],
)
def test_bad_keys_and_values_name_their_dotted_key(overrides, field):
    assert refused(overrides).field == field


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"el": 15}, "policy.config.state.el"),  # below the platform (a stopped one may stand at 20-39)
        ({"el": 75}, "policy.config.state.el"),  # above max_hwp_el: force_max_hwp_el caps the range
        ({"az": 420}, "policy.config.state.az"),
        ({"el": 45, "hwp_spinning": True, "hwp_dir": "ccw"}, "policy.config.state.hwp_spinning"),
    ],
)
def test_an_impossible_state_is_refused_naming_the_key(state, field):
    assert refused({"state": state}).field == field


def test_the_state_says_hwp_direction_as_schedlib_or_by_name():
    assert config({"state": {"el": 50, "hwp_spinning": True, "hwp_dir": True}}).state.hwp_dir == "ccw"
    assert config({"hwp_override": False}).hwp_override == "cw"
    assert refused({"state": {"el": 50, "hwp_spinning": True}}).field == "policy.config.state"


@pytest.mark.parametrize("key", ["cmb_plan_file", "cal_plan_file", "wiregrid_plan_file"])
def test_a_request_may_not_name_a_server_path(key):
    error = refused({key: "/etc/passwd"})
    assert error.field == f"policy.config.{key}"
    assert "server's configuration" in error.problem
    assert getattr(config({key: "/srv/plan.txt"}, trusted=True), key) == "/srv/plan.txt"  # the CLI may


def test_plan_text_is_size_limited_and_the_400_says_the_limit():
    error = refused({"cal_plan_text": "x" * (PLAN_TEXT_LIMIT + 1)})
    assert error.field == "policy.config.cal_plan_text"
    assert f"{PLAN_TEXT_LIMIT}" in error.problem.replace(",", "")


def test_a_plan_ending_before_t0_is_refused_naming_it():
    text = "2023-10-01T00:00:00+00:00|2023-10-01T01:00:00+00:00|1|0|100|140|50|0.8|1.5|1|1|0|0|uid-1|patch_a\n"
    error = refused({"cmb_plan_text": text})
    assert error.field == "policy.config.cmb_plan_text"
    assert "ends" in error.problem


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cmb_plan_text": "2023-11-05 00:00:00|garbage\n"}, "policy.config.cmb_plan_text:1"),
        ({"cal_targets": [{"source": "pluto", "boresight": 0, "elevation": 50, "focus": "all"}]},
         "policy.config.cal_targets.0.source"),
        ({"cal_targets": [{"source": "jupiter", "boresight": 0, "elevation": 50, "focus": "nowhere"}]},
         "policy.config.cal_targets.0.focus"),
    ],
)  # fmt: skip
def test_a_bad_plan_line_or_target_names_its_line_or_key(overrides, field):
    assert refused(overrides).field == field


def test_an_unknown_bundled_plan_is_refused_naming_the_key():
    assert refused({"cal_plan": "nosuch.txt"}).field == "policy.config.cal_plan"


def test_a_rising_target_cannot_also_be_setting():
    target = {"source": "jupiter", "boresight": 0, "elevation": 50, "focus": "all"}
    with pytest.raises(ScheduleInputError) as caught:
        config({"cal_targets": [{**target, "rising": True, "source_direction": "setting"}]})
    assert caught.value.field == "policy.config.cal_targets.0"
    assert config({"cal_targets": [{**target, "rising": False}]}).cal_targets[0].direction == "setting"


def test_a_site_preset_names_a_plan_file_on_the_server(tmp_path):
    from scheduler_server.observing.policies.sat.plans import bundled

    plan = tmp_path / "site_cmb.txt"
    plan.write_text(bundled("sample_cmb.txt"))
    site = {"sat": {"site": {"platform": "satp2", "cmb_plan_file": str(plan)}}}
    t0 = datetime(2023, 12, 1, 1, tzinfo=UTC)
    result = run_schedule(t0, datetime(2023, 12, 1, 4, tzinfo=UTC), PolicyRequest("sat", {}, "site"), site)
    assert "# cmb plan: site_cmb.txt" in result.commands and "# platform: satp2" in result.commands
    assert {b.name for b in result.blocks} == {"wide_east"}
    missing = {"sat": {"site": {"cmb_plan_file": str(tmp_path / "nope.txt")}}}
    with pytest.raises(ScheduleInputError) as caught:
        run_schedule(t0, datetime(2023, 12, 1, 4, tzinfo=UTC), PolicyRequest("sat", {}, "site"), missing)
    assert caught.value.field == "policy.config.cmb_plan_file"
