"""GET /api/v1/sky/positions and /api/v1/sky/sun-limit: the UI's read-only sky endpoints."""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pytest

from scheduler_server.observing.sky.geometry import angular_distance

WINDOW = "t0=2026-12-21T15:30Z&t1=2026-12-21T17:30Z"


def _times(values):
    return np.array([datetime.fromisoformat(v).timestamp() for v in values])


def test_positions_put_the_sun_at_the_zenith_at_local_noon_of_the_solstice(client):
    # Atacama (lat -22.958, lon -67.786) on 21 December: the sun (dec -23.44) culminates 0.5 deg
    # from the zenith, at about 16:29 UTC (12:00 + 4h31m of longitude - 1.7 min equation of time).
    answer = client.get(f"/api/v1/sky/positions?{WINDOW}&step=60&bodies=sun,moon")
    assert answer.status_code == 200
    data = answer.get_json()
    assert data["site"] == {"lat": -22.958, "lon": -67.786, "elevation": 5200.0}
    assert len(data["times"]) == 121 and data["times"][0] == "2026-12-21T15:30:00+00:00"
    assert set(data["bodies"]) == {"sun", "moon"}
    el = np.array(data["bodies"]["sun"]["el"])
    assert 89.0 < el.max() < 90.0
    noon = _times(data["times"])[el.argmax()]
    assert abs(noon - datetime.fromisoformat("2026-12-21T16:29:00+00:00").timestamp()) < 240
    assert all(0 <= a < 360 for a in data["bodies"]["moon"]["az"])


def test_positions_refuse_too_many_samples_naming_step(client):
    answer = client.get("/api/v1/sky/positions?t0=2026-12-01T00:00Z&t1=2026-12-03T00:00Z&step=60")
    assert answer.status_code == 400
    assert answer.get_json()["field"] == "step"
    # 2000 samples exactly are allowed.
    ok = client.get("/api/v1/sky/positions?t0=2026-12-01T00:00Z&t1=2026-12-01T00:33:19Z&step=1&bodies=sun")
    assert ok.status_code == 200 and len(ok.get_json()["times"]) == 2000


@pytest.mark.parametrize("step", ["5e-324", "1e-20", "1e-300"])
def test_positions_a_tiny_step_is_a_400_naming_step_with_a_short_message(client, step):
    answer = client.get(f"/api/v1/sky/positions?{WINDOW}&step={step}")
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["field"] == "step"
    assert "at most 2000 samples" in body["message"] or "more than 2000 samples" in body["message"]
    assert not re.search(r"\d{10}", body["message"]), body["message"]  # no 25-digit count


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("t0=2026-12-01T00:00Z", "t1"),
        ("t0=yesterday&t1=2026-12-01T00:00Z", "t0"),
        ("t0=2026-12-02T00:00Z&t1=2026-12-01T00:00Z", "t1"),
        ("t0=2060-01-01T00:00Z&t1=2060-01-02T00:00Z", "t0"),
        (f"{WINDOW}&bodies=sun,pluto", "bodies"),
        (f"{WINDOW}&step=0", "step"),
        (f"{WINDOW}&step=nan", "step"),
        (f"{WINDOW}&colour=red", "colour"),
    ],
)
def test_positions_bad_query_is_a_400_naming_the_parameter(client, query, field):
    answer = client.get(f"/api/v1/sky/positions?{query}")
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["status"] == "error" and body["field"] == field and field in body["message"]


def test_sun_limit_intervals_and_crossings_agree_with_the_sun_track(client):
    day = "t0=2026-12-01T00:00Z&t1=2026-12-02T00:00Z"
    answer = client.get(f"/api/v1/sky/sun-limit?{day}&az=100&el=50&limit_deg=30")
    assert answer.status_code == 200
    data = answer.get_json()
    assert data["limit_deg"] == 30
    assert data["intervals"], "the morning sun passes az 100 el 50 in December"
    crossings = data["crossings"]
    assert [c["direction"] for c in crossings] == ["enter", "leave"] * (len(crossings) // 2)
    track = client.get(f"/api/v1/sky/positions?{day}&step=60&bodies=sun").get_json()
    t = _times(track["times"])
    distance = angular_distance(track["bodies"]["sun"]["az"], track["bodies"]["sun"]["el"], 100, 50)
    inside = np.zeros(len(t), bool)
    for interval in data["intervals"]:
        a, b = _times([interval["t0"], interval["t1"]])
        inside |= (t > a + 5) & (t < b - 5)
        for edge in (a, b):  # the sun is at the limit at each crossing
            assert abs(np.interp(edge, t, distance) - 30) < 0.05
    assert (distance[inside] < 30).all()
    near_edges = np.zeros(len(t), bool)
    for c in crossings:
        near_edges |= np.abs(t - _times([c["at"]])[0]) <= 5
    assert (distance[~inside & ~near_edges] >= 30).all()


def test_sun_limit_defaults_to_the_basic_policy_rule_and_validates(client):
    day = "t0=2026-12-01T00:00Z&t1=2026-12-02T00:00Z"
    data = client.get(f"/api/v1/sky/sun-limit?{day}&az=0&el=-89").get_json()
    assert data == {"limit_deg": 41.0, "intervals": [], "crossings": []}  # the nadir never nears the sun
    for query, field in [
        ("az=0", "el"),
        ("az=0&el=91", "el"),
        ("az=x&el=40", "az"),
        ("az=0&el=40&limit_deg=-1", "limit_deg"),
    ]:
        answer = client.get(f"/api/v1/sky/sun-limit?{day}&{query}")
        assert answer.status_code == 400 and answer.get_json()["field"] == field


def test_sky_operations_are_in_the_openapi_document(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    positions = doc["paths"]["/api/v1/sky/positions"]["get"]
    assert {p["name"] for p in positions["parameters"]} == {"t0", "t1", "step", "bodies"}
    limit = doc["paths"]["/api/v1/sky/sun-limit"]["get"]
    assert {p["name"]: p["required"] for p in limit["parameters"]} == {
        "t0": True,
        "t1": True,
        "az": True,
        "el": True,
        "limit_deg": False,
    }
    assert limit["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SunLimit")
    assert "security" not in positions and "security" not in limit


@pytest.mark.parametrize("query", [f"{WINDOW}&step=60&step=120", f"{WINDOW}&t0=2026-12-21T15:00Z"])
def test_a_repeated_parameter_is_a_400_naming_it(client, query):
    answer = client.get(f"/api/v1/sky/positions?{query}")
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["field"] in ("step", "t0") and "given 2 times" in body["message"]


@pytest.mark.parametrize("step", ["1_000", "%20600", "600%20", "+600", "0x10", "inf"])
def test_a_step_not_written_as_a_json_number_is_a_400(client, step):
    answer = client.get(f"/api/v1/sky/positions?{WINDOW}&step={step}")
    assert answer.status_code == 400
    assert answer.get_json()["field"] == "step"
    assert client.get(f"/api/v1/sky/positions?{WINDOW}&step=6e2&bodies=sun").status_code == 200


def test_sun_limit_numbers_are_json_numbers_too(client):
    query = "t0=2026-12-01T00:00Z&t1=2026-12-01T06:00Z&az=1_00&el=50"
    answer = client.get(f"/api/v1/sky/sun-limit?{query}")
    assert answer.status_code == 400 and answer.get_json()["field"] == "az"
