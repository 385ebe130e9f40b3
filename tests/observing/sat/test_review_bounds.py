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
