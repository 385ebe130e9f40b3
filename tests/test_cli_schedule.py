"""`scheduler-server schedule` prints what the API returns, without a server."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from scheduler_server.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def sleeps(text):
    return [float(x) for x in re.findall(r"time\.sleep\(([0-9.]+)\)", text)]


def test_cli_matches_api(client):
    r = run("schedule", "--t0", "2022-01-01 12:00", "--t1", "2022-01-01 14:00", "--policy", "dummy", "--set", "seed=5")
    assert r.exit_code == 0, r.output
    body = {"t0": "2022-01-01 12:00", "t1": "2022-01-01 14:00", "policy": {"policy": "dummy", "config": {"seed": 5}}}
    api = client.post("/api/v1/schedule/", json=body).get_json()["commands"]
    assert sleeps(r.output) == sleeps(api) and sleeps(api)
    assert r.output.splitlines()[0] == "import time"


def test_policy_file_and_set_override(tmp_path):
    f = tmp_path / "policy.json"
    f.write_text(json.dumps({"policy": "dummy", "config": {"seed": 1}}))
    a = run("schedule", "--t0", "2022-01-01 12:00", "--t1", "2022-01-01 14:00", "--policy-file", str(f))
    b = run(
        "schedule", "--t0", "2022-01-01 12:00", "--t1", "2022-01-01 14:00", "--policy-file", str(f), "--set", "seed=2"
    )
    c = run("schedule", "--t0", "2022-01-01 12:00", "--t1", "2022-01-01 14:00", "--policy", "dummy", "--set", "seed=1")
    assert sleeps(a.output) == sleeps(c.output)
    assert sleeps(a.output) != sleeps(b.output)


def test_json_format_has_blocks():
    r = run("schedule", "--t0", "2022-01-01 12:00", "--t1", "2022-01-01 13:00", "--set", "seed=3", "--format", "json")
    data = json.loads(r.output)
    assert data["status"] == "ok" and data["blocks"][0]["kind"] == "sleep"


def test_cli_errors_name_the_problem():
    r = run("schedule", "--t0", "nope", "--t1", "2022-01-01 13:00")
    assert r.exit_code == 2 and "is not a date and time" in r.output
    r = run("schedule", "--t0", "2022-01-01 14:00", "--t1", "2022-01-01 13:00")
    assert r.exit_code == 2 and "--t1" in r.output
    r = run("schedule", "--t0", "2022-01-01 12:00", "--t1", "2022-01-01 13:00", "--set", "bogus=1")
    assert r.exit_code == 1 and "policy.config.bogus: unknown config key" in r.output
    r = run("schedule", "--t0", "2022-01-01 12:00", "--t1", "2022-01-01 13:00", "--set", "novalue")
    assert r.exit_code == 2 and "is not key=value" in r.output
    r = run("schedule", "--t0", "2022-01-01 12:00", "--t1", "2022-01-01 13:00", "--policy", "zzz")
    assert r.exit_code == 1 and "unknown policy 'zzz'" in r.output


def test_config_check_masks_nothing_it_should_not_show(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("SSH_PASSWORD: hunter2\n")
    r = run("config-check", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    assert "hunter2" not in r.output and "configuration OK" in r.output
