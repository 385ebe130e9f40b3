"""GET /metrics of a real ``scheduler-server serve`` and of gunicorn with two workers (their series merged)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devtools.sshd import free_port
from scheduler_server.metrics.directory import start_time
from tests.pipelines.server import ServeProcess, clean_env
from tests.waiting import wait_until

TOKEN = "metrics-test-token"
DOCS = Path(__file__).resolve().parents[2] / "docs"
WINDOW = {"t0": "2022-01-01 00:00", "t1": "2022-01-01 01:00", "policy": {"policy": "dummy"}}


def _home(tmp_path: Path, **pipelines) -> tuple[Path, Path]:
    home = tmp_path / "home"
    scripts = home / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "ok.sh").write_text("echo ok\n")
    (scripts / "fail.sh").write_text("exit 3\n")
    settings = {"local_scripts_folder": str(scripts), "poll_interval": 0.05, **pipelines}
    config = home / "config.yaml"
    config.write_text(json.dumps({"data_dir": str(home / "data"), "pipelines": settings}))
    return home, config


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value, as Prometheus reads the exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, name: str, **labels) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def scrape(url: str, **kw) -> dict:
    answer = requests.get(f"{url}/metrics", timeout=10, **kw)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(answer.text)


@pytest.fixture
def server(tmp_path):
    home, config = _home(tmp_path)
    server = ServeProcess(home, config).start()
    yield server
    server.stop()


def test_a_submitted_pipeline_moves_the_counters_histograms_and_database_gauges(server):
    url = server.url
    before = scrape(url)
    assert value(before, "scheduler_server_pipelines", status="queued") == 0
    assert ("scheduler_server_pipelines", frozenset({("status", "succeeded")})) in before  # zero, present
    answer = requests.post(
        f"{url}/api/v1/pipelines",
        json=[{"type": "script", "script": "ok.sh"}, {"type": "nonsense", "script": "ok.sh"}],
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    pipeline_id = answer.json()["pipelines"][0]["id"]
    wait_until(
        lambda: requests.get(f"{url}/api/v1/pipelines/{pipeline_id}", timeout=5).json()["status"] == "succeeded",
        timeout=30,
        message="the pipeline to succeed",
    )
    after = scrape(url)
    submissions = "scheduler_server_pipeline_submissions_total"
    assert value(after, submissions, kind="script", outcome="accepted") == 1
    assert value(after, submissions, kind="other", outcome="refused") == 1
    assert value(after, "scheduler_server_pipeline_starts_total") == 1
    assert value(after, "scheduler_server_pipeline_ends_total", outcome="succeeded") == 1
    waited = value(after, "scheduler_server_pipeline_submit_to_start_seconds_sum")
    assert value(after, "scheduler_server_pipeline_submit_to_start_seconds_count") == 1 and 0 < waited < 30
    assert value(after, "scheduler_server_pipeline_submit_to_start_seconds_bucket", le="+Inf") == 1
    assert value(after, "scheduler_server_instance_boot_seconds_count", backend="local") >= 1
    assert value(after, "scheduler_server_pipelines", status="succeeded") == 1
    families = {family.name for family in text_string_to_metric_families(requests.get(f"{url}/metrics").text)}
    for document in (
        "metrics.md",
        "grafana-dashboard.json",
        "prometheus.yml",
        "scheduler-server-rules.yml",
    ):  # every series the docs name
        named = set(re.findall(r"scheduler_server_[a-z_]+[a-z]", (DOCS / document).read_text()))
        assert named and {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in named} <= families, document
    live = sum(v for (name, labels), v in after.items() if name == "scheduler_server_instances")
    assert live >= 1 and ("backend", "local") in next(k for k in after if k[0] == "scheduler_server_instances")[1]


def test_schedule_requests_are_timed_by_policy_and_outcome_and_metrics_is_no_api_operation(server):
    url = server.url
    for body in (WINDOW, WINDOW, {"t0": "nonsense"}, {**WINDOW, "policy": {"policy": "no-such-policy"}}):
        requests.post(f"{url}/api/v1/schedule/", json=body, timeout=30)
    found = scrape(url)
    count = "scheduler_server_schedule_request_duration_seconds_count"
    assert value(found, count, policy="dummy", outcome="ok") == 2
    assert value(found, count, policy="none", outcome="client_error") == 1  # refused before a policy was read
    assert value(found, count, policy="other", outcome="client_error") == 1  # a name that is no policy: no label
    assert value(found, "scheduler_server_schedule_request_duration_seconds_sum", policy="dummy", outcome="ok") > 0
    document = requests.get(f"{url}/api/v1/openapi.json", timeout=10).json()  # it is not JSON, nor an API call
    assert "/api/v1/schedule/" in document["paths"] and "/metrics" not in document["paths"]


def test_with_tokens_configured_a_scrape_needs_one(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    home, config = _home(tmp_path, tokens_file=str(tokens))
    server = ServeProcess(home, config).start()
    try:
        refused = requests.get(f"{server.url}/metrics", timeout=10)
        assert refused.status_code == 401 and "token" in refused.json()["message"]
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert requests.get(f"{server.url}/metrics", params={"token": "wrong"}, timeout=10).status_code == 401
        scrape(server.url, headers={"Authorization": f"Bearer {TOKEN}"})
        found = scrape(server.url, params={"token": TOKEN})
        assert value(found, "scheduler_server_pipelines", status="queued") == 0
    finally:
        server.stop()


def test_two_gunicorn_workers_answer_with_the_same_merged_counts(tmp_path):
    home, config = _home(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "gunicorn.log"
    env = {**clean_env(home), "SCHEDULER_SERVER_CONFIG": str(config)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    args = [str(gunicorn), "-w", "2", "--bind", f"127.0.0.1:{port}", "scheduler_server.app:app"]
    process = subprocess.Popen(args, cwd=home, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(url, process, log), timeout=60, message="gunicorn to answer")
        directory = home / "data" / "metrics" / f"gunicorn-{process.pid}-{start_time(process.pid)}"
        with ThreadPoolExecutor(8) as pool:  # at once: both sync workers take some
            list(pool.map(lambda _: requests.post(f"{url}/api/v1/schedule/", json=WINDOW, timeout=30), range(24)))
        pids = {f.stem.rpartition("_")[2] for f in directory.glob("histogram_*.db")}
        assert len(pids) == 2, (pids, sorted(p.name for p in directory.iterdir()))
        count = "scheduler_server_schedule_request_duration_seconds_count"
        wait_until(lambda: _leaders(scrape(url)) == [1, 0], timeout=30, message="one worker leading, one not")
        for _ in range(6):  # whichever worker answers, it counts every worker's requests
            assert value(scrape(url), count, policy="dummy", outcome="ok") == 24
        worker = int(next(iter(pids)))
        os.kill(worker, 9)  # a worker dies: gunicorn starts another; what the dead one counted stays
        wait_until(lambda: len(_workers(process.pid)) == 2 and worker not in _workers(process.pid), timeout=30)
        assert value(scrape(url), count, policy="dummy", outcome="ok") == 24
    finally:
        process.terminate()
        process.wait(30)


def test_serve_workers_2_one_leader_and_a_killed_leaders_gauge_goes_its_counts_stay(tmp_path):
    home, config = _home(tmp_path)
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "server": {"workers": 2}}))
    server = ServeProcess(home, config)
    try:
        try:
            server.start(timeout=60)
        except requests.ReadTimeout:  # a worker still building the app took the first probe
            wait_until(lambda: _answers(server.url, server.process, server.log), timeout=60, message="serve")
        for _ in range(6):
            requests.post(f"{server.url}/api/v1/pipelines", json={"type": "nonsense"}, timeout=10)
        leaders = wait_until(lambda: _leading(scrape(server.url)), timeout=30, message="one worker leading")
        (leader,) = [pid for pid, v in leaders.items() if v == 1]
        os.kill(int(leader), 9)  # the master respawns it and tells the metrics it ended
        after = wait_until(lambda: (g := _leading(scrape(server.url))) and leader not in g and g, timeout=45)
        assert sorted(after.values()) == [0, 1], after
        refused = value(
            scrape(server.url), "scheduler_server_pipeline_submissions_total", kind="other", outcome="refused"
        )
        assert refused == 6  # whichever worker counted them, the dead one included
    finally:
        server.stop()


def _leading(found) -> dict[str, float] | None:
    """pid -> leadership gauge, once exactly two workers report and one of them leads."""
    gauges = {
        dict(labels)["pid"]: v for (name, labels), v in found.items() if name == "scheduler_server_dispatcher_leading"
    }
    return gauges if sorted(gauges.values()) == [0, 1] else None


def _answers(url: str, process: subprocess.Popen, log: Path) -> bool:
    assert process.poll() is None, log.read_text()[-3000:]
    try:
        return requests.get(url + "/", timeout=5).status_code == 200
    except requests.RequestException:  # a worker still loading the app: the master's socket takes it
        return False


def _leaders(found) -> list[float]:
    """The leadership gauge of each live worker (one series per pid), highest first."""
    return sorted((v for (name, _), v in found.items() if name == "scheduler_server_dispatcher_leading"), reverse=True)


def _workers(master: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(master).children()]


LEADER = """
import os, sys
from pathlib import Path
from scheduler_server import metrics
metrics.setup(Path(sys.argv[1]))
if sys.argv[2] == "lead":
    metrics.set_leading(True)
    metrics.pipeline_ended("succeeded")
else:
    metrics.process_ended(int(sys.argv[3]))
    sys.stdout.write(metrics.render().decode())
"""


def test_a_dead_process_gauge_is_dropped_and_its_counts_stay(tmp_path):
    """A worker's leadership gauge goes with it (setup, or process_ended from 16W's master); its counts stay."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "mp")}
    (tmp_path / "mp").mkdir()
    leader = subprocess.run([sys.executable, "-c", LEADER, str(tmp_path), "lead"], env=env, check=True)
    assert leader.returncode == 0
    files = sorted(p.name for p in (tmp_path / "mp").iterdir())
    gauge = next(name for name in files if name.startswith("gauge_liveall_"))
    dead = gauge.removeprefix("gauge_liveall_").removesuffix(".db")
    shown = subprocess.run(
        [sys.executable, "-c", LEADER, str(tmp_path), "show", dead], env=env, check=True, capture_output=True, text=True
    ).stdout
    found = samples(shown)
    assert value(found, "scheduler_server_pipeline_ends_total", outcome="succeeded") == 1
    leading = {
        dict(labels)["pid"]: v for (name, labels), v in found.items() if name == "scheduler_server_dispatcher_leading"
    }
    assert dead not in leading and list(leading.values()) == [0], shown  # the showing process only, not leading
    assert not (tmp_path / "mp" / gauge).exists()
