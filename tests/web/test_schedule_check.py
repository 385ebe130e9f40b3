"""POST /api/v1/schedule/ with format json: the answer's "events" and the independent checker's "check"."""

from __future__ import annotations

from datetime import datetime

import pytest

DAY = {"t0": "2026-12-01 00:00", "t1": "2026-12-02 00:00"}


def _json(client, policy, **extra):
    answer = client.post("/api/v1/schedule/", json={**DAY, "policy": policy, "format": "json", **extra})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


@pytest.fixture(scope="module")
def basic_day(tmp_path_factory):
    from scheduler_server.app import create_app
    from scheduler_server.config import Settings

    client = create_app(Settings(data_dir=tmp_path_factory.mktemp("data"))).test_client()
    return client, _json(client, {"policy": "basic"})


def test_basic_answer_carries_the_checkers_verdict_per_minute(basic_day):
    _, data = basic_day
    check = data["check"]
    assert check["safe"] is True and check["problems"] == []
    assert check["limit_deg"] == 41.0
    times = [datetime.fromisoformat(t).timestamp() for t, _ in check["samples"]]
    assert len(times) > 20 * 60  # the script covers most of the day
    assert all(b - a >= 60 for a, b in zip(times, times[1:]))  # at most one a minute, in order
    distances = [d for _, d in check["samples"]]
    assert check["min_sun_distance_deg"] == min(distances)
    assert 41.0 <= check["min_sun_distance_deg"] < 180
    assert data["events"] is None  # basic has no state lanes


def test_the_limit_is_the_configs_sun_rule(basic_day):
    client, _ = basic_day
    policy = {"policy": "basic", "config": {"rules": {"sun-avoidance": {"min_angle": 50}}}}
    check = _json(client, policy)["check"]
    assert check["limit_deg"] == 50.0 and check["safe"] is True and check["min_sun_distance_deg"] >= 50


def test_a_dummy_script_points_nowhere_and_is_safe(client):
    # The dummy policy's script only sleeps: nothing points, nothing can come near the sun.
    check = _json(client, {"policy": "dummy"})["check"]
    assert check["safe"] is True and check["problems"] == []


def test_the_script_format_answers_as_the_seed(client):
    answer = client.post("/api/v1/schedule/", json={**DAY, "policy": {"policy": "dummy"}}).get_json()
    assert set(answer) == {"status", "commands", "message"}


def test_events_and_check_are_documented(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    response = schemas["ScheduleResponse"]["properties"]
    assert {"events", "check"} <= set(response)
    assert set(schemas["SafetyCheck"]["required"]) == {
        "safe",
        "limit_deg",
        "min_sun_distance_deg",
        "samples",
        "problems",
    }
    lanes = {}
    for ref in (v["$ref"] for v in schemas["StateEvent"]["oneOf"]):
        lane = schemas[ref.rsplit("/", 1)[-1]]
        assert lane["additionalProperties"] is False
        lanes[lane["properties"]["lane"]["const"]] = lane
    assert set(schemas["StateEvent"]["discriminator"]["mapping"]) == set(lanes) == {"hwp", "boresight", "detectors"}
    assert set(lanes["hwp"]["required"]) == {"lane", "t0", "t1", "state", "direction"}
    assert lanes["hwp"]["properties"]["state"]["enum"] == ["stopped", "spin_up", "spinning", "spin_down"]
    assert set(lanes["boresight"]["required"]) == {"lane", "t0", "t1", "state", "angle"}
    assert lanes["boresight"]["properties"]["state"]["enum"] == ["fixed", "rotating"]
    assert set(lanes["detectors"]["properties"]["state"]["enum"]) == {
        "relock",
        "setup",
        "iv",
        "bias",
        "bias_step",
        "noise",
    }


def test_every_event_of_a_sat_answer_fits_its_documented_lane(client):
    from scheduler_server.web.schedule import StateEvent

    events = _json(client, {"policy": "sat", "preset": "satp1"}, t0="2023-11-05 00:00", t1="2023-11-05 06:00")["events"]
    assert {e["lane"] for e in events} == {"hwp", "boresight", "detectors"}
    for event in events:
        StateEvent.model_validate(event)
