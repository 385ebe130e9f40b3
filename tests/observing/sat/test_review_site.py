"""Review of issue 13, finding 1: the site is the telescope's, never the client's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler_server.observing.policies.basic.policy import BasicPolicy
from scheduler_server.observing.policies.sat.policy import SatPolicy
from scheduler_server.observing.safety import checker
from scheduler_server.observing.service import PolicyRequest, build_config, check_schedule, run_schedule
from scheduler_server.observing.sky.site import Site
from scheduler_server.observing.types import ScheduleInputError

T0 = datetime(2023, 11, 5, tzinfo=UTC)
T1 = datetime(2023, 11, 5, 4, tzinfo=UTC)
ELSEWHERE = {"name": "x", "telescope": "x", "lat": 51.5, "lon": 10.0, "elevation": 0.0}


@pytest.mark.parametrize("policy", ["sat", "basic"])
def test_a_request_naming_a_site_is_a_400_naming_site(policy):
    with pytest.raises(ScheduleInputError) as caught:
        run_schedule(T0, T1, PolicyRequest(policy, {"site": ELSEWHERE}))
    assert caught.value.field == "policy.config.site"
    with pytest.raises(ScheduleInputError) as caught:
        run_schedule(T0, T1, PolicyRequest(policy, {"site": {"lat": 10.0}}))
    assert caught.value.field == "policy.config.site"


@pytest.mark.parametrize("policy", [SatPolicy(), BasicPolicy()])
def test_restating_the_default_site_stays_allowed(policy):
    default = policy.Config().model_dump(by_alias=True)["site"]
    config = build_config(policy.name, policy, {"site": default})
    assert config.site == policy.Config().site
    build_config(policy.name, policy, {"site": {"lat": default["lat"]}})


def test_a_trusted_caller_or_a_preset_may_still_set_the_site():
    assert build_config("sat", SatPolicy(), {"site": ELSEWHERE}, trusted=True).site.lat == 51.5


def test_a_satp1_script_is_judged_at_satp1_whatever_site_the_caller_passes():
    result = run_schedule(T0, T1, PolicyRequest("sat", {}, "satp1"))
    assert "# platform: satp1" in result.commands
    at = {}
    for name, lat, lon in (("satp1", -22.960106, -67.788364), ("far", 51.5, 10.0), ("south", -80.0, 170.0)):
        report = checker.check_script(result.commands, 41.0, None, Site(name, "x", lat, lon, 0.0), start=T0.timestamp())
        at[name] = (report.safe, report.sun_samples)
    assert at["far"] == at["satp1"] == at["south"]
    assert at["satp1"][0]


def test_the_json_check_does_not_take_a_trusted_callers_site_for_a_sat_script():
    request = PolicyRequest("sat", {"site": ELSEWHERE}, "satp1", trusted=True)
    result = run_schedule(T0, T1, request)
    plain = check_schedule(T0, result, PolicyRequest("sat", {}, "satp1"))
    assert check_schedule(T0, result, request)["samples"] == plain["samples"]
