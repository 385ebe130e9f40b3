"""End to end: `kill -9` the service in the middle of 50 pipelines, restart it, and nothing is lost or run twice."""

from __future__ import annotations

import collections
import time

import pytest
import requests
import yaml

from .conftest import wait_until
from .server import ServeProcess

COUNT = 50


@pytest.mark.slow
def test_kill9_mid_run_then_restart_runs_each_pipeline_exactly_once(tmp_path):
    home, config, marker = _home(tmp_path)
    server = ServeProcess(home, config).start()
    try:
        items = [{"type": "script", "script": "mark.sh", "args": [f"line-{n}"]} for n in range(COUNT)]
        answer = requests.post(server.url + "/pipeline", json=items, timeout=30)
        assert answer.status_code == 200 and all(r["request"] == "success" for r in answer.json()["content"])

        def progress() -> dict[str, int]:
            return collections.Counter(p["status"] for p in _pipelines(server))

        # Mid-run: some finished, some running, some still queued.
        wait_until(
            lambda: (c := progress())["succeeded"] >= 10 and c["running"] >= 5 and c["queued"] >= 5,
            timeout=60,
            message="mid-run",
        )
        crashed_at = time.time()
        server.kill9()
        at_crash = marker.read_text().splitlines()
        assert 10 <= len(at_crash) < COUNT

        time.sleep(0.5)
        server = ServeProcess(home, config, port=server.port).start()

        def all_done():
            items = _pipelines(server)
            return items if all(p["status"] in ("succeeded", "failed", "cancelled") for p in items) else None

        items = wait_until(all_done, timeout=120, interval=0.5, message="all 50 finished after the restart")
        _assert_each_ran_once(server, items, marker.read_text().splitlines(), crashed_at)
    finally:
        server.stop()


def _home(tmp_path):
    """A server's home with a script that marks each run; its config; the marker file."""
    home = tmp_path / "home"
    scripts = home / "scripts"
    scripts.mkdir(parents=True)
    marker = tmp_path / "marker.txt"
    (scripts / "mark.sh").write_text(f'echo "$1" >> {marker}; sleep 1.5\n')
    config = home / "config.yaml"
    pipelines = {
        "local_scripts_folder": str(scripts),
        "max_active_pipelines": 10,
        "virtual_server_ttl": 4,
        "poll_interval": 0.2,
    }
    config.write_text(yaml.safe_dump({"data_dir": str(home / "data"), "pipelines": pipelines}))
    return home, config, marker


def _pipelines(server) -> list[dict]:
    return requests.get(server.url + "/api/v1/pipelines", params={"limit": 1000}, timeout=10).json()["items"]


def _assert_each_ran_once(server, items: list[dict], lines: list[str], crashed_at: float) -> None:
    assert [p["status"] for p in items] == ["succeeded"] * COUNT
    # Running ones were re-attached, not retried; a retry is only allowed for an attempt that never ran.
    for p in items:
        if p["attempt"] > 1:
            history = requests.get(f"{server.url}/api/v1/pipelines/{p['id']}", timeout=10).json()["history"]
            retried = [h["reason"] for h in history if h["to"] == "queued"]
            assert retried and all(r.startswith("lost") or "before staging" in r for r in retried), history
    counts = collections.Counter(lines)
    assert sorted(counts) == sorted(f"line-{n}" for n in range(COUNT))
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    # Pipelines that started before the crash and finished after it, on their first attempt, were re-attached.
    reattached = [p for p in items if _ts(p["timings"]["script_started"]) < crashed_at < _ts(p["timings"]["finished"])]
    assert reattached, "some pipeline should have been running at the crash and re-attached"


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
