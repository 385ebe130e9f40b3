"""The Schedule API contract of seeds/scheduler-server.md, through the Flask test client."""

from __future__ import annotations

import json
import re

import pytest

from scheduler_server.config import ObservingSettings, Settings

URL = "/api/v1/schedule/"
SEED_BODY = {"t0": "2022-01-01 12:00", "t1": "2022-01-01 14:00", "policy": '{"policy": "dummy", "config": {}}'}


def post(client, body, url=URL, raw=False):
    data = body if raw else json.dumps(body)
    return client.post(url, data=data, content_type="application/json")


def sleeps(commands: str) -> list[float]:
    return [float(x) for x in re.findall(r"^time\.sleep\(([0-9.]+)\)$", commands, re.M)]


def assert_dummy_script(commands: str, window_seconds: float) -> None:
    lines = commands.splitlines()
    assert lines[0] == "import time"
    assert lines[1].startswith("# ")
    assert commands.endswith("\n")
    body = lines[2:]
    assert 1 <= len(body) <= 10
    assert all(re.fullmatch(r"time\.sleep\(\d+\.\d\d\)", line) for line in body), body
    assert abs(sum(sleeps(commands)) - window_seconds) <= 0.01


def test_seed_request_with_policy_as_json_string(client):
    r = post(client, SEED_BODY)
    assert r.status_code == 200
    data = r.get_json()
    assert data["status"] == "ok" and data["message"] == "Success"
    assert set(data) == {"status", "commands", "message"}
    assert_dummy_script(data["commands"], 7200)


def test_seed_example_with_policy_as_object(client):
    body = {"t0": "2022-01-01 12:00", "t1": "2022-01-01 14:00", "policy": {"policy": "dummy", "config": {}}}
    r = post(client, body)
    assert r.status_code == 200, r.get_json()
    assert_dummy_script(r.get_json()["commands"], 7200)


def test_path_without_trailing_slash_answers_directly(client):
    r = post(client, SEED_BODY, url="/api/v1/schedule")
    assert r.status_code == 200
    assert r.get_json()["status"] == "ok"


@pytest.mark.parametrize(
    "t0,t1,seconds",
    [
        ("2022-01-01 12:00", "2022-01-01 12:00:30", 30),
        ("2022-01-01T12:00:00Z", "2022-01-01T13:00:00Z", 3600),
        ("2022-01-01T12:00:00+02:00", "2022-01-01T12:00:00Z", 7200),
        ("2022-01-01T12:00:00.250", "2022-01-01T12:00:01.750", 1.5),
        ("2022-01-01 23:00", "2022-01-02 01:00", 7200),
    ],
)
def test_time_formats_and_offsets(client, t0, t1, seconds):
    r = post(client, {"t0": t0, "t1": t1, "policy": {"policy": "dummy", "config": {"seed": 7}}})
    assert r.status_code == 200, r.get_json()
    assert_dummy_script(r.get_json()["commands"], seconds)


def test_naive_times_are_utc(client):
    body = {
        "t0": "2022-06-01 12:00",
        "t1": "2022-06-01 13:00",
        "format": "json",
        "policy": {"policy": "dummy", "config": {"seed": 1}},
    }
    blocks = post(client, body).get_json()["blocks"]
    assert blocks[0]["t0"] == "2022-06-01T12:00:00+00:00"
    assert blocks[-1]["t1"] == "2022-06-01T13:00:00+00:00"


def test_seed_makes_dummy_reproducible_and_unseeded_varies(client):
    body = {"t0": "2022-01-01 12:00", "t1": "2022-01-02 12:00", "policy": {"policy": "dummy", "config": {"seed": 42}}}
    a, b = (sleeps(post(client, body).get_json()["commands"]) for _ in range(2))
    assert a == b
    body["policy"]["config"] = {}
    runs = {tuple(sleeps(post(client, body).get_json()["commands"])) for _ in range(5)}
    assert len(runs) > 1


def test_overrides_do_not_leak_into_the_next_request(client):
    seeded = {"t0": "2022-01-01 12:00", "t1": "2022-01-02 12:00", "policy": {"policy": "dummy", "config": {"seed": 42}}}
    first = sleeps(post(client, seeded).get_json()["commands"])
    plain = {"t0": "2022-01-01 12:00", "t1": "2022-01-02 12:00", "policy": {"policy": "dummy", "config": {}}}
    following = {tuple(sleeps(post(client, plain).get_json()["commands"])) for _ in range(5)}
    assert tuple(first) not in following or len(following) > 1
    listed = client.get("/api/v1/policies").get_json()["policies"]
    assert next(p for p in listed if p["name"] == "dummy")["defaults"] == {"seed": None}


def test_format_json_returns_blocks_covering_the_window(client):
    body = {
        "t0": "2022-01-01 12:00",
        "t1": "2022-01-01 14:00",
        "format": "json",
        "policy": {"policy": "dummy", "config": {"seed": 3}},
    }
    data = post(client, body).get_json()
    assert len(data["blocks"]) == len(sleeps(data["commands"]))
    for before, after in zip(data["blocks"], data["blocks"][1:]):
        assert before["t1"] == after["t0"]


def test_preset_from_site_config(tmp_path):
    from scheduler_server.app import create_app

    settings = Settings(data_dir=tmp_path, observing=ObservingSettings(presets={"dummy": {"fixed": {"seed": 9}}}))
    client = create_app(settings).test_client()
    body = {"t0": "2022-01-01 12:00", "t1": "2022-01-01 14:00", "policy": {"policy": "dummy", "preset": "fixed"}}
    a = sleeps(post(client, body).get_json()["commands"])
    body["policy"] = {"policy": "dummy", "config": {"seed": 9}}
    assert a == sleeps(post(client, body).get_json()["commands"])
    body["policy"] = {"policy": "dummy", "preset": "fixed", "config": {"seed": 10}}
    assert a != sleeps(post(client, body).get_json()["commands"])  # overrides win over the preset
    listed = client.get("/api/v1/policies").get_json()["policies"]
    assert next(p for p in listed if p["name"] == "dummy")["presets"] == {"fixed": {"seed": 9}}


OK_TIMES = {"t0": "2022-01-01 12:00", "t1": "2022-01-01 14:00"}


@pytest.mark.parametrize(
    "body,raw,field,fragment",
    [
        ("", True, None, "request body: empty"),
        ("{not json", True, None, "request body: not valid JSON"),
        ("[1, 2]", True, None, "request body: must be a JSON object"),
        ({"t1": "2022-01-01 14:00", "policy": {"policy": "dummy"}}, False, "t0", "t0: missing"),
        ({"t0": "2022-01-01 14:00", "policy": {"policy": "dummy"}}, False, "t1", "t1: missing"),
        (OK_TIMES, False, "policy", "policy: missing"),
        ({**OK_TIMES, "t0": "yesterday", "policy": {"policy": "dummy"}}, False, "t0", "YYYY-MM-DD HH:MM"),
        (
            {**OK_TIMES, "t1": "2022-13-01 14:00", "policy": {"policy": "dummy"}},
            False,
            "t1",
            "t1: '2022-13-01 14:00' is not a date",
        ),
        ({**OK_TIMES, "t0": 1640995200, "policy": {"policy": "dummy"}}, False, "t0", "t0: must be a string"),
        ({**OK_TIMES, "t0": "2022-01-01", "policy": {"policy": "dummy"}}, False, "t0", "no time of day"),
        (
            {"t0": "2022-01-01 14:00", "t1": "2022-01-01 14:00", "policy": {"policy": "dummy"}},
            False,
            "t1",
            "t1: must be later than t0",
        ),
        (
            {"t0": "2022-01-01 14:00", "t1": "2022-01-01 12:00", "policy": {"policy": "dummy"}},
            False,
            "t1",
            "t1: must be later than t0",
        ),
        (
            {"t0": "2022-01-01 12:00", "t1": "2022-03-01 12:00", "policy": {"policy": "dummy"}},
            False,
            "t1",
            "longer than the 744 hours",
        ),
        ({**OK_TIMES, "policy": '{"policy": "dummy"'}, False, "policy", "policy: a string policy must hold JSON"),
        ({**OK_TIMES, "policy": "[1]"}, False, "policy", "policy: must be a JSON object"),
        ({**OK_TIMES, "policy": 3}, False, "policy", "policy: must be a JSON object"),
        ({**OK_TIMES, "policy": {"config": {}}}, False, "policy.policy", "policy.policy: missing"),
        ({**OK_TIMES, "policy": {"policy": "nope"}}, False, "policy.policy", "unknown policy 'nope'; known policies: "),
        (
            {**OK_TIMES, "policy": {"policy": "dummy", "confg": {}}},
            False,
            "policy.confg",
            "policy.confg: unknown field",
        ),
        (
            {**OK_TIMES, "policy": {"policy": "dummy", "config": {"sed": 1}}},
            False,
            "policy.config.sed",
            "unknown config key",
        ),
        (
            {**OK_TIMES, "policy": {"policy": "dummy", "config": {"seed": "x"}}},
            False,
            "policy.config.seed",
            "valid integer",
        ),
        (
            {**OK_TIMES, "policy": {"policy": "dummy", "config": []}},
            False,
            "policy.config",
            "policy.config: Input should be a valid dictionary",
        ),
        (
            {**OK_TIMES, "policy": {"policy": "dummy", "preset": "nope"}},
            False,
            "policy.preset",
            "unknown preset 'nope'",
        ),
        (
            {**OK_TIMES, "policy": {"policy": "dummy"}, "format": "xml"},
            False,
            "format",
            "format: Input should be 'script' or 'json'",
        ),
        ({**OK_TIMES, "policy": {"policy": "dummy"}, "extra": 1}, False, "extra", "extra: unknown field"),
    ],
)
def test_client_mistakes_get_400_naming_the_field(client, body, raw, field, fragment):
    r = post(client, body, raw=raw)
    assert r.status_code == 400
    data = r.get_json()
    assert data["status"] == "error"
    assert fragment in data["message"], data["message"]
    assert data.get("field") == field
    assert "Traceback" not in r.get_data(as_text=True)


def test_unknown_policy_lists_the_known_ones(client):
    r = post(client, {**OK_TIMES, "policy": {"policy": "nope"}})
    names = [p["name"] for p in client.get("/api/v1/policies").get_json()["policies"]]
    for name in names:
        assert name in r.get_json()["message"]


def test_window_limit_is_configurable(tmp_path):
    from scheduler_server.app import create_app

    client = create_app(Settings(data_dir=tmp_path, observing=ObservingSettings(max_window_hours=1))).test_client()
    r = post(client, {**OK_TIMES, "policy": {"policy": "dummy"}})
    assert r.status_code == 400 and "longer than the 1 hours" in r.get_json()["message"]
    assert (
        post(client, {"t0": "2022-01-01 12:00", "t1": "2022-01-01 13:00", "policy": {"policy": "dummy"}}).status_code
        == 200
    )


def test_wrong_method_and_unknown_path_are_json(client):
    r = client.get(URL)
    assert r.status_code == 405 and r.get_json()["status"] == "error"
    assert "POST" in r.headers["Allow"]
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.get_json()["status"] == "error"


def test_unexpected_error_is_500_with_request_id_in_log(app, caplog, monkeypatch):
    from scheduler_server.observing.policies import dummy

    def boom(*_):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(dummy.DummyPolicy, "schedule", boom)
    r = post(app.test_client(), SEED_BODY)
    assert r.status_code == 500
    text = r.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text
    rid = r.headers["X-Request-ID"]
    assert rid in r.get_json()["message"]
    assert any(rid in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_body_too_large_is_413(client):
    r = client.post(URL, data=b"{" + b" " * (5 * 1024 * 1024) + b"}", content_type="application/json")
    assert r.status_code == 413 and r.get_json()["status"] == "error"


def test_cors_allows_all_origins_by_default(client):
    r = client.options(URL, headers={"Origin": "https://example.org", "Access-Control-Request-Method": "POST"})
    assert r.headers.get("Access-Control-Allow-Origin") in ("*", "https://example.org")
    r = client.post(
        URL, data=json.dumps(SEED_BODY), content_type="application/json", headers={"Origin": "https://a.example"}
    )
    assert r.headers.get("Access-Control-Allow-Origin") in ("*", "https://a.example")


def test_cors_is_configurable(tmp_path):
    from scheduler_server.app import create_app
    from scheduler_server.config import ServerSettings

    settings = Settings(data_dir=tmp_path, server=ServerSettings(cors_origins=["https://ok.example"]))
    client = create_app(settings).test_client()
    ok = client.post(
        URL, data=json.dumps(SEED_BODY), content_type="application/json", headers={"Origin": "https://ok.example"}
    )
    assert ok.headers.get("Access-Control-Allow-Origin") == "https://ok.example"
    bad = client.post(
        URL, data=json.dumps(SEED_BODY), content_type="application/json", headers={"Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in bad.headers


def test_a_request_cannot_name_files_on_the_server_but_a_site_preset_can(tmp_path):
    from scheduler_server.app import create_app

    master = tmp_path / "master.txt"
    master.write_text("not a toast schedule\n")
    presets = {"basic": {"site-file": {"master_schedule": str(master)}}}
    client = create_app(Settings(data_dir=tmp_path, observing=ObservingSettings(presets=presets))).test_client()
    body = {
        "t0": "2024-03-04 00:00",
        "t1": "2024-03-04 02:00",
        "policy": {"policy": "basic", "config": {"master_schedule": "/etc/passwd"}},
    }
    r = post(client, body)
    assert r.status_code == 400
    assert r.get_json()["field"] == "policy.config.master_schedule"
    assert "can only be set in the server's configuration" in r.get_json()["message"]
    body["policy"] = {"policy": "basic", "preset": "site-file"}
    r = post(client, body)  # the preset's file is read (and refused for its content, naming the field)
    assert r.status_code == 400 and r.get_json()["field"] == "policy.config.master_schedule"
    assert "can only be set" not in r.get_json()["message"]


def test_echoing_the_published_defaults_is_accepted(client):
    listed = {p["name"]: p for p in client.get("/api/v1/policies").get_json()["policies"]}
    for name in ("dummy", "basic"):
        config = listed[name]["defaults"]
        body = {"t0": "2024-03-04 00:00", "t1": "2024-03-04 01:00", "policy": {"policy": name, "config": config}}
        r = post(client, body)
        assert r.status_code == 200, (name, r.get_json())


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "request body: empty; send a JSON object with t0, t1 and policy"),
        (b"  \n", "request body: empty; send a JSON object with t0, t1 and policy"),
        (b"null", "request body: must be a JSON object with t0, t1 and policy, not a JSON NoneType"),
        (b"[1]", "request body: must be a JSON object with t0, t1 and policy, not a JSON list"),
    ],
)
def test_a_body_that_is_not_an_object_is_named_as_such(client, body, message):
    """An empty body and a JSON null are different mistakes and are told apart."""
    r = client.post("/api/v1/schedule/", data=body, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json() == {"status": "error", "message": message}
