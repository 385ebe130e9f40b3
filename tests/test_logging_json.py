"""``logging.format: json``: one JSON object per line, with request_id, pipeline_id and instance where they apply."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import requests

from scheduler_server.logging_setup import JsonFormatter, LoggingSettings, RequestIdFilter, log_context
from tests.pipelines.server import ServeProcess
from tests.waiting import wait_until


@pytest.fixture
def captured():
    """A handler as ``configure_logging`` builds it for ``format: json``, on a logger of the test's own."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tests.logging_json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_the_format_is_text_by_default_and_takes_json_only():
    assert LoggingSettings().format == "text"
    assert LoggingSettings(format="json").format == "json"
    with pytest.raises(ValueError, match="format"):
        LoggingSettings(format="yaml")


def test_log_context_fields_and_an_exception_are_keys_of_one_line(captured):
    logger, lines = captured
    with log_context(pipeline_id=42):
        logger.info("started %s", "it")
        with log_context(instance="local-abc"):
            try:
                raise RuntimeError("boom\nsecond line")
            except RuntimeError:
                logger.exception("failed")
    logger.warning("outside")
    first, second, third = lines()
    assert first["message"] == "started it" and first["pipeline_id"] == 42 and "instance" not in first
    assert first["level"] == "INFO" and first["logger"] == "tests.logging_json"
    assert first["time"].endswith("Z") and first["time"][10] == "T"
    assert "request_id" not in first  # no request: no key, rather than "-"
    assert second["pipeline_id"] == 42 and second["instance"] == "local-abc"
    assert "RuntimeError: boom\nsecond line" in second["exception"] and "Traceback" in second["exception"]
    assert "pipeline_id" not in third and third["level"] == "WARNING"


def test_a_secret_masked_in_text_is_masked_in_json_too(captured):
    """The XNAT client's filter rewrites urllib3's line before any formatter sees it."""
    import scheduler_server.pipelines.xnat.client  # noqa: F401  (installs the filter)

    logger, lines = captured
    urllib3 = logging.getLogger("urllib3.connectionpool")
    handler = logger.handlers[0]
    urllib3.addHandler(handler)
    level = urllib3.level
    urllib3.setLevel(logging.DEBUG)
    try:
        urllib3.debug('"GET /data/services/tokens/validate/%s/%s HTTP/1.1" 200 10', "alias-1", "the-secret-part")
    finally:
        urllib3.removeHandler(handler)
        urllib3.setLevel(level)
    (line,) = lines()
    assert "the-secret-part" not in json.dumps(line) and "/tokens/validate/alias-1/********" in line["message"]


def test_a_serve_process_writes_json_lines_with_request_and_pipeline_ids(tmp_path):
    home = tmp_path / "home"
    scripts = home / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "fail.sh").write_text("exit 3\n")
    log_file = home / "server.jsonl"
    config = home / "config.yaml"
    settings = {
        "logging": {"format": "json", "file": str(log_file)},
        "pipelines": {"local_scripts_folder": str(scripts), "poll_interval": 0.05},
    }
    config.write_text(json.dumps(settings))
    server = ServeProcess(home, config).start()
    try:
        answer = requests.post(
            f"{server.url}/api/v1/pipelines",
            json={"type": "script", "script": "fail.sh"},
            headers={"X-Request-ID": "req42abc"},
            timeout=10,
        )
        pipeline_id = answer.json()["pipelines"][0]["id"]
        url = f"{server.url}/api/v1/pipelines/{pipeline_id}"
        wait_until(lambda: requests.get(url, timeout=5).json()["status"] == "failed", 30, message="failed")
        wait_until(lambda: _ended_line(log_file, pipeline_id), 10, message="the line of its end")
    finally:
        server.stop()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]  # every line is one object
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    access = [line for line in lines if line["logger"] == "scheduler_server.access" and "POST" in line["message"]]
    assert access and access[0]["request_id"] == "req42abc", access
    assert _ended_line(log_file, pipeline_id)["pipeline_id"] == pipeline_id


def _ended_line(log_file: Path, pipeline_id: int) -> dict | None:
    """The dispatcher's line about the pipeline's end ("pipeline N failed: script exited 3")."""
    for text in log_file.read_text().splitlines() if log_file.exists() else []:
        line = json.loads(text)
        if line["message"].startswith(f"pipeline {pipeline_id} failed"):
            return line
    return None
