"""Review of issue 13, findings 2-4: values that crashed the policy or made it work without bound are 400s."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler_server.observing.service import PolicyRequest, run_schedule
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
