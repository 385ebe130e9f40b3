"""The observing seed's own curl command against the seed's own gunicorn line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import SHARED

SEED = SHARED / "seeds" / "scheduler-server.md"


def seed_curl_command() -> str:
    if not SEED.exists():
        pytest.skip(f"{SEED} is not here (the project's shared/ folder is absent); the seed's curl cannot be read")
    lines = [line for line in SEED.read_text().splitlines() if line.strip().startswith("curl ")]
    assert len(lines) == 1, lines
    return lines[0].strip()


def test_seed_curl_verbatim_against_seed_gunicorn_line(seed_gunicorn):
    assert shutil.which("curl"), "curl is needed for this test"
    command = seed_curl_command()
    assert ":8010/" in command
    command = command.replace(":8010/", f":{seed_gunicorn}/")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "ok" and answer["message"] == "Success"
    lines = answer["commands"].splitlines()
    assert lines[0] == "import time"
    total = sum(float(x) for x in re.findall(r"time\.sleep\(([0-9.]+)\)", answer["commands"]))
    assert abs(total - 7200) <= 0.01
