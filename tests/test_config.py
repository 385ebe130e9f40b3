"""Configuration: file + environment, validated into one Settings; errors on one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scheduler_server.config import Settings, find_config_file, load_settings
from scheduler_server.config_template import render_template
from scheduler_server.startup_error import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_no_file_gives_embedded_defaults(tmp_path):
    settings = load_settings(env={"HOME": str(tmp_path)})
    assert settings.server.port == 8010 and settings.pipelines.backend == "local"
    assert settings.source is None


def test_file_and_environment_override(tmp_path):
    path = write(tmp_path, "server:\n  port: 9000\nobserving:\n  max_window_hours: 2\n")
    settings = load_settings(
        path, env={"SCHEDULER_SERVER__SERVER__PORT": "9100", "SCHEDULER_SERVER__SERVER__CORS_ORIGINS": "[a, b]"}
    )
    assert settings.server.port == 9100
    assert settings.server.cors_origins == ["a", "b"]
    assert settings.observing.max_window_hours == 2
    assert settings.source == str(path)


def test_config_path_from_environment_variable(tmp_path):
    path = write(tmp_path, "server:\n  port: 9001\n")
    assert find_config_file(None, {"SCHEDULER_SERVER_CONFIG": str(path)}) == path
    assert load_settings(env={"SCHEDULER_SERVER_CONFIG": str(path)}).server.port == 9001


def test_seed_location_and_upper_case_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    seed_dir = tmp_path / ".pipeline-scheduler"
    seed_dir.mkdir()
    (seed_dir / "config.yaml").write_text("MAX_ACTIVE_PIPELINES: 5\nVM_INSTANCE_TTL: 3\nPORT: 8123\n")
    settings = load_settings(env={})
    assert settings.pipelines.max_active_pipelines == 5
    assert settings.pipelines.virtual_server_ttl == 3
    assert settings.server.port == 8123


@pytest.mark.parametrize(
    "text,fragments",
    [
        ("server:\n  port: eighty\n", ["config.yaml: key server.port", "valid integer"]),
        ("server:\n  prot: 80\n", ["key server.prot", "unknown key"]),
        (
            "MAX_ACTIVE_PIPELINES: 0\n",
            ["key MAX_ACTIVE_PIPELINES", "pipelines.max_active_pipelines", "greater than or equal to 1"],
        ),
        ("server: [1\n", ["not valid YAML at line"]),
        ("- 1\n- 2\n", ["top level must be a mapping"]),
        ("logging:\n  level: LOUD\n", ["logging.level"]),
    ],
)
def test_bad_file_names_file_key_and_problem_on_one_line(tmp_path, text, fragments):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ""), env={"SCHEDULER_SERVER__SERVER__PORT": "x"})
    assert "environment variable SCHEDULER_SERVER__SERVER__PORT" in str(info.value)


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_committed_template_is_current_and_loads_as_the_defaults(tmp_path):
    template = REPO / "config.yaml.template"
    assert template.read_text() == render_template(), (
        "config.yaml.template is stale: run `scheduler-server config-template > config.yaml.template`"
    )
    loaded = load_settings(template, env={})
    assert loaded.model_dump() == Settings().model_dump()


def test_every_settings_field_has_a_description():
    from pydantic import BaseModel

    def walk(model, prefix=""):
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            assert field.description, f"{prefix}{name} has no description"
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")

    walk(Settings)


def test_serve_with_bad_config_stops_with_one_line(tmp_path):
    path = write(tmp_path, "server:\n  port: 99999\n")
    exe = Path(sys.executable).with_name("scheduler-server")
    result = subprocess.run([str(exe), "serve", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and "server.port" in lines[0] and "less than or equal to 65535" in lines[0]


def test_gunicorn_with_bad_config_stops_instead_of_respawning(tmp_path):
    path = write(tmp_path, "server:\n  port: nope\n")
    exe = Path(sys.executable).with_name("gunicorn")
    env = {"PATH": str(exe.parent), "SCHEDULER_SERVER_CONFIG": str(path), "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(exe), "--bind", "127.0.0.1:0", "scheduler_server.app:app"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode != 0
    assert f"bad configuration: {path}: key server.port" in result.stderr
    assert "Traceback" not in result.stderr
