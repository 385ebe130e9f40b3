"""Review of issue 13, findings 2-4: values that crashed the policy or made it work without bound are 400s."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler_server.observing.service import PolicyRequest, check_schedule, run_schedule
from scheduler_server.observing.types import ScheduleInputError

T0 = datetime(2023, 11, 5, tzinfo=UTC)
T1 = datetime(2023, 11, 5, 4, tzinfo=UTC)


def refused(overrides) -> ScheduleInputError:
    with pytest.raises(ScheduleInputError) as caught:
        run_schedule(T0, T1, PolicyRequest("sat", overrides, "satp1"))
    return caught.value


@pytest.mark.parametrize(
    "stow, key",
    [
        ({"az_stow": float("nan"), "el_stow": 50}, "az_stow"),
        ({"az_stow": 180, "el_stow": float("inf")}, "el_stow"),
        ({"az_stow": 1e9, "el_stow": 50}, "az_stow"),
        ({"az_stow": 180, "el_stow": 95}, "el_stow"),
        ({"az_stow": 180, "el_stow": 10}, "el_stow"),
    ],
)
def test_a_stow_position_the_platform_cannot_reach_is_a_400_naming_it(stow, key):
    assert refused({"stow_position": stow}).field == f"policy.config.stow_position.{key}"


@pytest.mark.parametrize("step", [0.01, 0.5])
def test_an_elevation_step_that_multiplies_the_routing_work_is_a_400(step):
    problem = refused({"stages": {"build_op": {"plan_moves": {"alt_step": step}}}})
    assert problem.field == "policy.config.stages.build_op.plan_moves.alt_step"


def _sample_cmb_with(column: int, value: str) -> str:
    from scheduler_server.observing.policies.sat.plans import bundled

    lines = bundled("sample_cmb.txt").splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#"))
    cells = lines[first].split("|")
    cells[column] = value
    lines[first] = "|".join(cells)
    return "\n".join(lines) + "\n", first + 1


@pytest.mark.parametrize("column", [-1, -2])  # patch, uid
def test_a_plan_name_longer_than_128_characters_is_a_400_naming_file_and_line(column):
    text, line = _sample_cmb_with(column, "x" * 129)
    problem = refused({"cmb_plan_text": text})
    assert problem.field == f"policy.config.cmb_plan_text:{line}"
    assert "at most 128" in str(problem)
    text, _ = _sample_cmb_with(column, "x" * 128)
    t0, t1 = datetime(2023, 12, 1, tzinfo=UTC), datetime(2023, 12, 1, 2, tzinfo=UTC)
    assert "x" * 128 in run_schedule(t0, t1, PolicyRequest("sat", {"cmb_plan_text": text}, "satp1")).commands


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"state": {"last_iv": "2023-11-06T00:00:00Z"}}, "state.last_iv"),
        ({"state": {"last_relock": "2023-11-05T01:00:00Z"}}, "state.last_relock"),
        ({"state": {"boresight": 60}}, "state.boresight"),
        ({"boresight_override": -56}, "boresight_override"),
        (
            {"cal_targets": [{"source": "jupiter", "boresight": 70, "elevation": 45, "focus": "ws0"}]},
            "cal_targets.0.boresight",
        ),
        ({"az_accel": 5}, "az_accel"),
        ({"min_hwp_el": 61}, "min_hwp_el"),
    ],
)
def test_values_beyond_the_platforms_limits_are_400s_naming_the_key(overrides, key):
    assert refused(overrides).field == f"policy.config.{key}"


def test_a_stopped_telescope_may_start_low_within_the_platforms_range():
    request = PolicyRequest("sat", {"state": {"el": 30}}, "satp1")
    result = run_schedule(T0, T1, request)  # was a 400: state.el outside 40..60
    assert check_schedule(T0, result, request)["safe"]


@pytest.mark.parametrize(
    "column, value, problem",
    [(5, "500.00", "az_min"), (6, "-60.00", "az_max"), (4, "70.00", "rotation"), (9, "5.00", "accel")],
)
def test_plan_values_beyond_the_platforms_limits_are_400s_naming_file_and_line(column, value, problem):
    text, line = _sample_cmb_with(column - 1, value)
    caught = refused({"cmb_plan_text": text})
    assert caught.field == f"policy.config.cmb_plan_text:{line}"
    assert problem in str(caught)


def test_an_unknown_row_type_is_refused_and_a_bom_is_accepted():
    text, line = _sample_cmb_with(10, " CBM  ")
    caught = refused({"cmb_plan_text": text})
    assert caught.field == f"policy.config.cmb_plan_text:{line}" and "CBM" in str(caught)
    text, _ = _sample_cmb_with(10, " CMB  ")
    t0, t1 = datetime(2023, 12, 1, tzinfo=UTC), datetime(2023, 12, 1, 2, tzinfo=UTC)
    plain = run_schedule(t0, t1, PolicyRequest("sat", {"cmb_plan_text": text}, "satp1"))
    with_bom = run_schedule(t0, t1, PolicyRequest("sat", {"cmb_plan_text": "\ufeff" + text}, "satp1"))
    assert [b.to_json() for b in with_bom.blocks] == [b.to_json() for b in plain.blocks] != []


@pytest.mark.parametrize("value", ["nan", "inf", "1e9"])
def test_the_cli_says_a_bad_stow_position_in_one_line(tmp_path, value):
    from click.testing import CliRunner

    from scheduler_server.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    args = ["schedule", "--t0", "2023-11-05 00:00", "--t1", "2023-11-05 04:00", "--policy", "sat", "--preset", "satp1"]
    args += ["--set", f"stow_position.az_stow={value}", "--set", "stow_position.el_stow=50", "--config", str(config)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0 and (r.exception is None or isinstance(r.exception, SystemExit))
    assert r.output.strip().count("\n") == 0 and "stow_position.az_stow" in r.output and "Traceback" not in r.output


def test_an_ra_of_nan_is_named_as_such():
    from scheduler_server.observing.policies.sat.plans import bundled

    lines = bundled("sample_cal_targets.txt").splitlines()
    row = next(i for i, line in enumerate(lines) if "rcw38" in line)
    lines[row] = lines[row].replace("134.70", "   nan")
    caught = refused({"cmb_plan": "sample_cmb.txt", "cal_plan_text": "\n".join(lines) + "\n"})
    assert caught.field == f"policy.config.cal_plan_text:{row + 1}"
    assert "ra is 'nan', a missing value, but dec is given" in str(caught)
