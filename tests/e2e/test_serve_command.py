"""`scheduler-server serve --host --port --config` runs the real service."""

from __future__ import annotations

import subprocess

import requests

from devtools.sshd import free_port
from tests.e2e.conftest import wait_for_http


def test_serve_answers_schedule_docs_and_health(tmp_path, isolated_env):
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nobserving:\n  max_window_hours: 3\n")
    proc = subprocess.Popen(
        ["scheduler-server", "serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(config)],
        env=isolated_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/", proc)
        assert requests.get(base + "/").json()["content"]["status"] == "ok"
        body = {
            "t0": "2022-01-01 12:00",
            "t1": "2022-01-01 14:00",
            "policy": {"policy": "dummy", "config": {"seed": 1}},
        }
        r = requests.post(base + "/api/v1/schedule/", json=body)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        body["t1"] = "2022-01-01 16:00"  # 4 h > the 3 h this config allows
        r = requests.post(base + "/api/v1/schedule/", json=body)
        assert r.status_code == 400 and "longer than the 3 hours" in r.json()["message"]
        assert requests.get(base + "/api/v1/openapi.json").json()["openapi"].startswith("3.1")
        assert "swagger-ui" in requests.get(base + "/api/v1/docs").text
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert proc.returncode == 0  # a clean shutdown on SIGTERM
