"""The basic policy end to end: through the service, the HTTP API and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime

import pytest

from scheduler_server.observing.policies.basic.policy import BasicPolicy
from scheduler_server.observing.safety import checker as safety
from scheduler_server.observing.service import PolicyRequest, build_config, run_schedule
from scheduler_server.observing.sky.ephemerides import ATACAMA
from scheduler_server.observing.types import PolicyFailure, ScheduleInputError
from tests.conftest import SHARED
from tests.observing.conftest import CLI

DAY = (datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC))


def basic(config=None, window=DAY, preset=None):
    return run_schedule(*window, PolicyRequest("basic", config or {}, preset, trusted=True))


def test_a_day_has_master_and_calibration_scans_and_passes_the_checker():
    result = basic()
    kinds = [b.kind for b in result.blocks]
    assert kinds.count("master") > 10 and "calibration" in kinds
    assert all(DAY[0] <= b.t0 < b.t1 <= DAY[1] for b in result.blocks)
    assert all(a.t1 <= b.t0 for a, b in zip(result.blocks, result.blocks[1:]))
    config = build_config("basic", BasicPolicy(), {})
    report = safety.check_script(result.commands, 41.0, config.telescope, ATACAMA, start=DAY[0].timestamp())
    assert report.safe and report.spans > 30


def test_the_same_request_gives_the_same_bytes_and_requests_do_not_leak_into_each_other():
    first = basic().commands
    changed = basic({"calibration_targets": [], "rules": {"sun-avoidance": {"min_angle": 50}}}).commands
    assert changed != first
    assert basic().commands == first
    assert BasicPolicy.Config().rules.sun_avoidance.min_angle == 41.0


def test_unknown_nested_keys_are_refused_by_dotted_path():
    with pytest.raises(ScheduleInputError) as caught:
        basic({"rules": {"sun-avoidance": {"min_angel": 30}}})
    assert caught.value.field == "policy.config.rules.sun-avoidance.min_angel"
    with pytest.raises(ScheduleInputError) as caught:
        basic({"master_generator": {"patches": [{"name": "a", "ra": [0, 10], "dec": [-40, -30], "colour": "red"}]}})
    assert caught.value.field == "policy.config.master_generator.patches.0.colour"


def test_sun_avoidance_cannot_be_switched_off_but_other_rules_can():
    with pytest.raises(ScheduleInputError) as caught:
        basic({"rules": {"sun-avoidance": None}})
    assert caught.value.field == "policy.config.rules.sun-avoidance"
    loose = basic({"rules": {"moon-avoidance": None, "day-mod": None, "min-duration": None}})
    assert loose.commands.startswith("from sorunlib import *")


def test_presets():
    box = basic(preset="seed-box")
    assert box.commands != basic().commands
    quiet = basic(preset="no-calibration")
    assert {b.kind for b in quiet.blocks} == {"master"}


def test_day_mod_skips_calibration_on_the_other_days():
    every_third = {"rules": {"day-mod": {"day": 0, "day_mod": 3, "day_ref": "2024-03-04T00:00:00Z"}}}
    days = [(datetime(2024, 3, d, 12, tzinfo=UTC), datetime(2024, 3, d + 1, 12, tzinfo=UTC)) for d in (5, 6, 7)]
    with_calibration = [any(b.kind == "calibration" for b in basic(every_third, window=w).blocks) for w in days]
    assert with_calibration.count(True) == 1


def test_the_policy_refuses_a_schedule_the_checker_finds_unsafe(monkeypatch):
    """With the planner's and the rules' sun test disabled, only the checker is left to notice."""
    from scheduler_server.observing.policies.basic import avoidance
    from scheduler_server.observing.policies.basic.blocks import empty

    monkeypatch.setattr(avoidance.SunGuard, "safe", lambda self, *a, **k: True)
    monkeypatch.setattr(avoidance.SunGuard, "unsafe", lambda self, *a, **k: empty())
    monkeypatch.setattr(avoidance.SunGuard, "_clear_below", lambda self, *a: True)
    noon = (datetime(2024, 1, 10, 12, tzinfo=UTC), datetime(2024, 1, 10, 20, tzinfo=UTC))
    with pytest.raises(PolicyFailure, match="failed the independent sun-safety check: line \\d+: "):
        basic({"master_generator": {"sun_avoidance_angle": 0}, "calibration_targets": []}, window=noon)


def test_a_toast_file_can_be_the_master_schedule():
    path = SHARED / "data" / "schedule_sat.txt"
    if not path.is_file():
        pytest.skip("../shared/data/schedule_sat.txt is not present")
    window = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 1, 2, tzinfo=UTC))
    result = basic({"master_schedule": str(path), "calibration_targets": []}, window=window)
    names = {b.name for b in result.blocks}
    assert names and all(n.startswith("DEC-050..-030_RA") for n in names)
    assert (
        "seq.scan(description='DEC-050..-030_RA+000.000..+011.613', stop_time='2023-01-01T01:09:30+00:00', width=32.24)"
        in result.commands
    )


def test_a_missing_master_file_is_a_client_error_naming_the_field(tmp_path):
    with pytest.raises(ScheduleInputError) as caught:
        basic({"master_schedule": str(tmp_path / "nope.txt")})
    assert caught.value.field == "policy.config.master_schedule" and "cannot read" in caught.value.problem


def test_api_answers_with_blocks_on_request(client):
    body = {
        "t0": "2024-03-04 00:00",
        "t1": "2024-03-04 12:00",
        "policy": {"policy": "basic", "config": {}},
        "format": "json",
    }
    answer = client.post("/api/v1/schedule/", json=body)
    assert answer.status_code == 200, answer.get_json()
    data = answer.get_json()
    assert data["status"] == "ok" and data["commands"].startswith("from sorunlib import *")
    block = data["blocks"][0]
    assert set(block) == {"name", "kind", "t0", "t1", "az", "el", "throw", "cuts"}
    assert block["t0"].endswith("+00:00") and isinstance(block["cuts"], list)
    plain = client.post("/api/v1/schedule/", json={**body, "format": "script"}).get_json()
    assert "blocks" not in plain and plain["commands"] == data["commands"]


def test_api_accepts_the_seeds_string_policy(client):
    policy = json.dumps({"policy": "basic", "config": {"calibration_targets": ["uranus"]}})
    answer = client.post(
        "/api/v1/schedule/", json={"t0": "2024-03-04 00:00", "t1": "2024-03-04 06:00", "policy": policy}
    )
    assert answer.status_code == 200 and answer.get_json()["message"] == "Success"


def test_api_rejects_an_unknown_nested_key_with_400_naming_it(client):
    body = {
        "t0": "2024-03-04 00:00",
        "t1": "2024-03-04 06:00",
        "policy": {"policy": "basic", "config": {"telescope": {"az_sped": 2}}},
    }
    answer = client.post("/api/v1/schedule/", json=body)
    assert answer.status_code == 400
    data = answer.get_json()
    assert data["status"] == "error" and "policy.config.telescope.az_sped" in data["message"]
    bad_value = {**body, "policy": {"policy": "basic", "config": {"rules": {"alt-range": {"alt_range": [50, 10]}}}}}
    answer = client.post("/api/v1/schedule/", json=bad_value)
    assert answer.status_code == 400 and "policy.config.rules.alt-range.alt_range" in answer.get_json()["message"]


def test_api_lists_basic_with_its_defaults_and_presets(client):
    listed = {p["name"]: p for p in client.get("/api/v1/policies").get_json()["policies"]}
    basic_info = listed["basic"]
    assert basic_info["defaults"]["rules"]["sun-avoidance"]["min_angle"] == 41.0
    assert basic_info["defaults"]["calibration_targets"] == ["uranus", "saturn"]
    assert {"seed-box", "no-calibration"} <= set(basic_info["presets"])
    assert "sun-avoidance" in json.dumps(basic_info["config_schema"])


def test_the_cli_gives_the_same_bytes_in_any_time_zone(observing_cache):
    outputs = []
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
        env = {**os.environ, "TZ": zone}
        done = subprocess.run(
            [CLI, "schedule", "--policy", "basic", "--t0", "2024-03-04 00:00", "--t1", "2024-03-04 12:00"],
            capture_output=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert (
        outputs[0]
        == basic(window=(datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 4, 12, tzinfo=UTC))).commands.encode()
    )


def test_every_config_key_is_documented():
    from tests.conftest import REPO

    docs = (REPO / "docs" / "observing.md").read_text()

    def keys(model, prefix=""):
        for name, field in type(model).model_fields.items():
            key = f"{prefix}{field.alias or name}"
            value = getattr(model, name)
            yield key
            if hasattr(type(value), "model_fields"):
                yield from keys(value, key + ".")

    for key in keys(BasicPolicy.Config()):
        section, _, leaf = key.rpartition(".")
        assert re.search(rf"[`.]{re.escape(leaf)}[`.]", docs), key
        assert not section or section in docs, key
    for preset in BasicPolicy.presets:
        assert f"`{preset}`" in docs


def test_a_window_outside_the_ephemeris_is_a_client_error(client):
    body = {"t0": "2060-01-01 00:00", "t1": "2060-01-01 06:00", "policy": {"policy": "basic", "config": {}}}
    answer = client.post("/api/v1/schedule/", json=body)
    assert (
        answer.status_code == 400
        and answer.get_json()["field"] == "t1"
        and "2053-09-01" in answer.get_json()["message"]
    )


def test_a_window_too_short_for_any_scan_gives_the_bare_preamble():
    result = basic(window=(datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 4, 0, 1, tzinfo=UTC)))
    assert result.commands.endswith("smurf.uxm_setup()\nsmurf.iv_curve()\n") and result.blocks == []


def test_concurrent_requests_get_the_same_answer():
    from concurrent.futures import ThreadPoolExecutor

    window = (datetime(2024, 3, 9, tzinfo=UTC), datetime(2024, 3, 10, tzinfo=UTC))
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: basic(window=window).commands, range(8)))
    assert len(set(answers)) == 1


def _client_with_presets(tmp_path, presets):
    from scheduler_server.app import create_app
    from scheduler_server.config import Settings

    settings = Settings(data_dir=tmp_path / "data", observing={"presets": {"basic": presets}})
    return create_app(settings).test_client()


def _post(client, config=None, preset=None):
    policy = {"policy": "basic", "config": config or {}} | ({"preset": preset} if preset else {})
    return client.post("/api/v1/schedule/", json={"t0": "2023-01-01 00:00", "t1": "2023-01-01 06:00", "policy": policy})


def test_a_malformed_master_schedule_line_is_a_400_naming_the_file_and_the_line(tmp_path):
    good = (SHARED / "data" / "schedule_sat.txt").read_text().splitlines() if (SHARED / "data").is_dir() else None
    header = [
        "#Site            Telescope        Latitude [deg] Longitude [deg]   Elevation [m]",
        " ATACAMA         SAT                     -22.958         -67.786          5200.0",
        "#      Start time UTC        Stop time UTC      Start MJD       Stop MJD Rotation Patch name  Az min   Az max  El",
    ]
    row = " 2023-01-01 00:22:00  2023-01-01 01:09:30    59945.015278   59945.048264   270.00 p1    218.08   250.32    50.00 S"
    lines = (good[:3] if good else header) + [row, row.replace("250.32", "east")]
    path = tmp_path / "master.txt"
    path.write_text("\n".join(lines) + "\n")
    client = _client_with_presets(tmp_path, {"bad-file": {"master_schedule": str(path)}})
    answer = _post(client, preset="bad-file")
    assert answer.status_code == 400, answer.get_json()
    body = answer.get_json()
    assert body["field"] == "policy.config.master_schedule"
    assert f"{path}, line 5: " in body["message"]


def test_unknown_or_wrong_config_keys_are_400s_naming_the_dotted_key_never_500s(tmp_path):
    client = _client_with_presets(tmp_path, {"typo": {"rules": {"alt-range": {"alt_rang": [30, 80]}}}})
    cases = [
        ({"rules": {"calibration-min-duration": {"min_duraton": 60}}}, None),
        ({"rules": {"alt-range": {"alt_range": [80, 30]}}}, None),
        ({"telescope": {"bias_dets_seconds": "slow"}}, None),
        ({}, "typo"),
    ]
    fields = []
    for config, preset in cases:
        answer = _post(client, config, preset)
        assert answer.status_code == 400, (config, preset, answer.get_json())
        fields.append(answer.get_json()["field"])
    assert fields[:3] == [
        "policy.config.rules.calibration-min-duration.min_duraton",
        "policy.config.rules.alt-range.alt_range",
        "policy.config.telescope.bias_dets_seconds",
    ]
    assert fields[3].endswith("rules.alt-range.alt_rang")


@pytest.mark.parametrize(
    "key, value",
    [("iv_curve_seconds", 1e9), ("settle_seconds", 1e9), ("az_speed", 1e-9), ("bias_step_seconds", 1e9)],
)
def test_absurd_telescope_durations_and_speeds_are_400s_naming_the_key(client, key, value):
    answer = _post(client, {"telescope": {key: value}})
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["field"] == f"policy.config.telescope.{key}"


def test_a_plan_reaching_outside_the_ephemeris_is_a_400_not_a_500(client, monkeypatch):
    from skyfield.errors import EphemerisRangeError

    def beyond(self, t0, t1, config):
        raise EphemerisRangeError("ephemeris segment only covers dates 1899-07-29 through 2053-10-09", 0, 0, None, None)

    monkeypatch.setattr(BasicPolicy, "schedule", beyond)
    with pytest.raises(ScheduleInputError) as caught:
        basic()
    assert caught.value.field == "t1" and "outside the ephemeris" in caught.value.problem
    answer = _post(client)
    assert answer.status_code == 400 and answer.get_json()["field"] == "t1", answer.get_json()
